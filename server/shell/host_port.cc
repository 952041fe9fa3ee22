#include "shell/host_port.h"

#include <charconv>

namespace cgpu {

StatusOr<HostPort> ParseHostPort(std::string_view text) {
  const auto bad = [&] {
    return InvalidArgument("expected HOST:PORT (e.g. 0.0.0.0:8443 or [::1]:8443), got \"" +
                           std::string(text) + "\"");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad();
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad();  // an IPv6 address needs brackets
  }
  const std::string_view digits = text.substr(colon + 1);
  int port = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || port < 0 ||
      port > 65535) {
    return bad();
  }
  return HostPort{host.empty() ? "0.0.0.0" : std::string(host), port};
}

std::string ToString(const HostPort& address) {
  const bool bracket = address.host.find(':') != std::string::npos;
  return (bracket ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

}  // namespace cgpu
