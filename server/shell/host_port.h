// A listen address as the command line gives it: "0.0.0.0:8443", "[::1]:8443",
// "localhost:8443", or ":8443" for all interfaces. Parsing and printing are pure functions; a
// HostPort is a plain value.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace cgpu {

struct HostPort {
  std::string host;
  int port = 0;
};

// "0.0.0.0:8443", "[::1]:8443", "localhost:8443", ":8443" (all interfaces). Port 0 asks the
// kernel for a free port (tests).
StatusOr<HostPort> ParseHostPort(std::string_view text);

// The form ParseHostPort reads back: "0.0.0.0:8443", "[::1]:8443".
std::string ToString(const HostPort& address);

}  // namespace cgpu
