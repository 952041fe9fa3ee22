// Version: a dotted numeric version ("1.5.10", "470.161.03", "5.10") compared component by
// component as numbers, so 1.5.10 > 1.5.9 and 470.161.03 > 470.82.01.
//
// VersionRange holds the seed's ranges. Its bounds match by prefix: an upper bound "1.17" admits
// every 1.17.x, a lower bound "5" every 5.x, which is how the seed writes "5.x <= 5.15" or
// "1.11 - 1.17". Plain values; parsing never throws.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cgpu {

class Version {
 public:
  Version() = default;
  explicit Version(std::vector<int> components, std::string spelling = "")
      : components_(std::move(components)), spelling_(std::move(spelling)) {}

  // Accepts "1.5.10", "v1.5.10", "470.161.03"; at most 6 components of at most 9 digits each.
  static std::optional<Version> Parse(std::string_view text);
  // The leading dotted number of a longer string: "5.10.134-18.al8.x86_64" -> 5.10.134,
  // "4.14.127+" -> 4.14.127. Needs at least major.minor.
  static std::optional<Version> ParsePrefix(std::string_view text);

  const std::vector<int>& components() const { return components_; }
  int major() const { return components_.empty() ? 0 : components_[0]; }
  bool empty() const { return components_.empty(); }
  // As written when parsed ("470.161.03" keeps its zero, "v1.5.10" loses its v); otherwise the
  // components joined by dots.
  std::string ToString() const;

  // Missing components count as zero: 1.11 == 1.11.0.
  std::strong_ordering operator<=>(const Version& other) const;
  bool operator==(const Version& other) const { return (*this <=> other) == 0; }

  // Compares only as many components as `bound` has: 1.17.3 against 1.17 is equal.
  std::strong_ordering ComparePrefix(const Version& bound) const;

 private:
  std::vector<int> components_;
  std::string spelling_;  // the parsed text, for messages; empty when built from components
};

struct VersionRange {
  std::optional<Version> low;   // inclusive, by prefix; absent: no lower bound
  std::optional<Version> high;  // inclusive, by prefix; absent: no upper bound

  bool Contains(const Version& version) const;
  bool IsAbove(const Version& version) const;  // version is past `high`
  // "1.5.3-1.5.20", "<=1.10", ">=1.5.10", "0.8.17"
  // As written when parsed ("470.161.03" keeps its zero, "v1.5.10" loses its v); otherwise the
  // components joined by dots.
  std::string ToString() const;

  // Parses the same forms, plus "1.5.3 - 1.5.20" with spaces or an en dash.
  static std::optional<VersionRange> Parse(std::string_view text);
};

}  // namespace cgpu
