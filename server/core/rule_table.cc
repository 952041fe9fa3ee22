#include "core/rule_table.h"

#include "core/text.h"

namespace cgpu {

VersionSet VersionSet::Family(Version family, std::optional<Version> bound) {
  VersionSet set;
  set.range.low = family;
  set.range.high = bound ? std::move(bound) : std::optional<Version>(family);
  set.family = std::move(family);
  return set;
}

VersionSet VersionSet::Range(VersionRange range) {
  VersionSet set;
  set.range = std::move(range);
  return set;
}

std::optional<VersionSet> VersionSet::Parse(std::string_view text) {
  text = TrimSpace(text);
  const bool range_form = text.substr(0, 2) == "<=" || text.substr(0, 2) == ">=" ||
                          text.find('-') != std::string_view::npos ||
                          text.find("\xE2\x80\x93") != std::string_view::npos;
  if (range_form) {
    std::optional<VersionRange> range = VersionRange::Parse(text);
    if (!range) return std::nullopt;
    return Range(*std::move(range));
  }
  const size_t bound_at = text.find("<=");
  std::string_view head = TrimSpace(text.substr(0, bound_at));
  if (head.size() > 2 && (head.substr(head.size() - 2) == ".x")) head.remove_suffix(2);
  std::optional<Version> family = Version::Parse(head);
  if (!family) return std::nullopt;
  if (bound_at == std::string_view::npos) return Family(*std::move(family));
  std::optional<Version> bound = Version::Parse(text.substr(bound_at + 2));
  // The bound lies inside the family and says more than the family does: "5.x <= 5.15".
  if (!bound || bound->ComparePrefix(*family) != 0 ||
      bound->components().size() <= family->components().size()) {
    return std::nullopt;
  }
  return Family(*std::move(family), std::move(bound));
}

std::optional<Version> VersionSet::Bound() const {
  if (!family || !range.high || *range.high == *family) return std::nullopt;
  return range.high;
}

bool VersionSet::PastBound(const Version& version) const {
  return family && version.ComparePrefix(*family) == 0 && range.IsAbove(version);
}

bool VersionSet::IsBelow(const Version& version) const {
  if (!range.IsAbove(version)) return false;
  return !family || version.ComparePrefix(*family) > 0;
}

std::string VersionSet::ToString() const {
  if (!family) return range.ToString();
  const std::optional<Version> bound = Bound();
  return family->ToString() + ".x" + (bound ? "<=" + bound->ToString() : "");
}

const RuleText& RuleTable::Text(const std::string& rule) const {
  static const RuleText kNone;
  auto it = texts.find(rule);
  return it == texts.end() ? kNone : it->second;
}

}  // namespace cgpu
