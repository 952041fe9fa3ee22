#include "core/version.h"

#include <algorithm>
#include <cctype>

#include "core/text.h"

namespace cgpu {
namespace {

constexpr size_t kMaxComponents = 6;
constexpr size_t kMaxDigits = 9;

// Parses "N(.N)*" exactly, or returns nullopt.
std::optional<Version> ParseDotted(std::string_view text) {
  std::vector<int> components;
  size_t i = 0;
  while (true) {
    size_t start = i;
    int value = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      // Checked before the digit is added: a tenth digit would overflow int.
      if (i - start == kMaxDigits) return std::nullopt;
      value = value * 10 + (text[i] - '0');
      ++i;
    }
    if (i == start) return std::nullopt;
    components.push_back(value);
    if (components.size() > kMaxComponents) return std::nullopt;
    if (i == text.size()) break;
    if (text[i] != '.') return std::nullopt;
    ++i;
  }
  return Version(std::move(components), std::string(text));
}

}  // namespace

std::optional<Version> Version::Parse(std::string_view text) {
  text = TrimSpace(text);
  if (!text.empty() && (text[0] == 'v' || text[0] == 'V')) text.remove_prefix(1);
  return ParseDotted(text);
}

std::optional<Version> Version::ParsePrefix(std::string_view text) {
  text = TrimSpace(text);
  size_t end = 0;
  while (end < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) {
    ++end;
  }
  std::string_view prefix = text.substr(0, end);
  while (!prefix.empty() && prefix.back() == '.') prefix.remove_suffix(1);
  std::optional<Version> version = ParseDotted(prefix);
  if (!version || version->components().size() < 2) return std::nullopt;
  return version;
}

std::string Version::ToString() const {
  if (!spelling_.empty()) return spelling_;
  std::string text;
  for (size_t i = 0; i < components_.size(); ++i) {
    if (i > 0) text += '.';
    text += std::to_string(components_[i]);
  }
  return text;
}

std::strong_ordering Version::operator<=>(const Version& other) const {
  const size_t n = std::max(components_.size(), other.components_.size());
  for (size_t i = 0; i < n; ++i) {
    int a = i < components_.size() ? components_[i] : 0;
    int b = i < other.components_.size() ? other.components_[i] : 0;
    if (a != b) return a <=> b;
  }
  return std::strong_ordering::equal;
}

std::strong_ordering Version::ComparePrefix(const Version& bound) const {
  for (size_t i = 0; i < bound.components_.size(); ++i) {
    int a = i < components_.size() ? components_[i] : 0;
    if (a != bound.components_[i]) return a <=> bound.components_[i];
  }
  return std::strong_ordering::equal;
}

bool VersionRange::Contains(const Version& version) const {
  if (low && version.ComparePrefix(*low) < 0) return false;
  if (high && version.ComparePrefix(*high) > 0) return false;
  return true;
}

bool VersionRange::IsAbove(const Version& version) const {
  return high && version.ComparePrefix(*high) > 0;
}

std::string VersionRange::ToString() const {
  if (low && high) {
    return *low == *high ? low->ToString() : low->ToString() + "-" + high->ToString();
  }
  if (high) return "<=" + high->ToString();
  if (low) return ">=" + low->ToString();
  return "any";
}

std::optional<VersionRange> VersionRange::Parse(std::string_view text) {
  text = TrimSpace(text);
  VersionRange range;
  if (text.substr(0, 2) == "<=") {
    range.high = Version::Parse(text.substr(2));
    return range.high ? std::optional(range) : std::nullopt;
  }
  if (text.substr(0, 2) == ">=") {
    range.low = Version::Parse(text.substr(2));
    return range.low ? std::optional(range) : std::nullopt;
  }
  // "a - b", "a-b", or "a – b" (en dash, as the seed writes it).
  size_t dash = text.find("\xE2\x80\x93");
  size_t dash_length = 3;
  if (dash == std::string_view::npos) {
    dash = text.find('-');
    dash_length = 1;
  }
  if (dash == std::string_view::npos) {
    range.low = range.high = Version::Parse(text);
    return range.low ? std::optional(range) : std::nullopt;
  }
  range.low = Version::Parse(text.substr(0, dash));
  range.high = Version::Parse(text.substr(dash + dash_length));
  if (!range.low || !range.high || *range.high < *range.low) return std::nullopt;
  return range;
}

}  // namespace cgpu
