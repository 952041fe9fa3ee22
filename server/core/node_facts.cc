#include "core/node_facts.h"

#include <algorithm>
#include <cctype>

namespace cgpu {

std::optional<std::string> InstanceFamily(const std::string& instance_type) {
  constexpr std::string_view kPrefix = "ecs.";
  if (instance_type.rfind(kPrefix, 0) != 0) return std::nullopt;
  std::string_view rest = std::string_view(instance_type).substr(kPrefix.size());
  std::string_view name = rest.substr(0, rest.find('.'));
  if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) return std::nullopt;

  std::string family;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('-', start);
    std::string_view segment =
        name.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    const bool letters_only =
        !segment.empty() && std::all_of(segment.begin(), segment.end(), [](char c) {
          return std::isalpha(static_cast<unsigned char>(c));
        });
    if (family.empty()) {
      if (segment.empty()) return std::nullopt;
      family = std::string(segment);
    } else if (letters_only) {
      family += "-" + std::string(segment);
    } else {
      break;
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  std::transform(family.begin(), family.end(), family.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return family;
}

}  // namespace cgpu
