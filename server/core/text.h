// Small text helpers shared by the core's parsers.
#pragma once

#include <cctype>
#include <string_view>

namespace cgpu {

// `text` without leading and trailing whitespace (spaces, tabs, newlines).
inline std::string_view TrimSpace(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace cgpu
