// RuleTable: cGPU's compatibility tables and known issues as plain data.
//
// Loaded from rules/cgpu-rules.yaml (compiled into the binary, or --rules FILE) by
// adapters/rules_loader; read by EvaluateNode. Each table is a list of rows keyed by a range of
// cGPU versions; a cGPU version in no row is a gap and gives `unknown`. Immutable after loading,
// so one table may be shared by all threads.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/version.h"

namespace cgpu {

// What a rule says to a person: what goes wrong, and what to do about it.
struct RuleText {
  std::string symptom;
  std::string remedy;
};

// A label that turns cGPU isolation on, e.g. ack.node.gpu.schedule=cgpu.
struct LabelMatch {
  std::string key;
  std::string value;
};

// The versions one cell of the seed's tables names, written as the seed writes them:
//   a family          "470", "5.x"                    every version that begins with it
//   a bounded family  "470 <= 470.161.03", "5.x <= 5.15"
//   a range           "<= 1.10", "1.11 - 1.17", ">= 1.11"
// Only a bound inside a family speaks of what lies past it: "5.x <= 5.15" excludes 5.16, a later
// 5.x. Nothing here speaks of another family (kernel 6.1, driver series 580) or of what lies
// outside a range (toolkit 1.18 for "1.11 - 1.17"): the source does not mention those.
struct VersionSet {
  std::optional<Version> family;  // "5" of "5.x <= 5.15", "470" of "470"; absent for a range
  VersionRange range;             // the versions in the set: family up to its bound, or the range

  static VersionSet Family(Version family, std::optional<Version> bound = std::nullopt);
  static VersionSet Range(VersionRange range);
  // Any of the forms above, with or without spaces around "<=" and "-". A bound must lie in its
  // family ("5.x <= 6.1" is refused); a family has no lower and upper bound of its own.
  static std::optional<VersionSet> Parse(std::string_view text);

  // The bound inside a family: "5.15" of "5.x <= 5.15"; absent for "5.x" and for a range.
  std::optional<Version> Bound() const;
  bool Contains(const Version& version) const { return range.Contains(version); }
  // In the family but past its bound: the row that states the bound excludes it.
  bool PastBound(const Version& version) const;
  // `version` lies past everything the set names: past its upper bound and, for a family, past
  // the family itself (6.1 for "5.x <= 5.15", not 5.16). An open range (">= 1.11") never is.
  bool IsBelow(const Version& version) const;
  // "5.x", "5.x<=5.15", "470.x<=470.161.03", "<=1.10", "1.11-1.17"
  std::string ToString() const;
};

// One row of the driver, nvidia-container-toolkit or kernel table.
struct VersionSetRow {
  VersionRange cgpu;
  std::vector<VersionSet> supported;
  std::vector<VersionSet> not_supported;
};

struct InstanceFamilyRow {
  VersionRange cgpu;
  std::vector<std::string> supported;
  std::vector<std::string> not_supported;
};

// A known failure of some cGPU versions. `affected` is what the source names as affected;
// `fixed_from`, when the source names a fix, is the first version it says is free of the issue.
// A version between the two is neither: the source says nothing of it (unknown, never affected).
struct KnownIssue {
  VersionRange affected;
  std::optional<Version> fixed_from;  // past `affected`; absent: every later version is free
};

struct ContainerOsIssue {
  VersionRange affected;          // cGPU versions that have it
  Version fixed_by_ai_installer;  // ack-ai-installer version that resolves it
};

// NVML is blocked when an affected cGPU runs a driver newer than these.
struct NvmlIssue {
  VersionRange affected;
  // Per driver series, the drivers known to work with the affected cGPU versions ("470 <=
  // 470.161.03"): a driver of the series past the bound is newer than every one known to work.
  std::vector<VersionSet> last_safe;
  int newer_series_from = 0;  // no driver of this series or a later one is known to work
};

struct RuleTable {
  int max_pods_per_gpu = 20;
  std::vector<LabelMatch> cgpu_enabled_labels;
  LabelMatch isolation_disabled_label;

  std::vector<VersionSetRow> driver;  // every cell a driver series: "470", "470 <= 470.161.03"
  std::vector<InstanceFamilyRow> instance_family;
  std::vector<VersionSetRow> container_toolkit;
  std::vector<VersionSetRow> kernel;
  KnownIssue kernel_panic;
  ContainerOsIssue container_os;
  NvmlIssue nvml;

  // Keyed by rule name: driver, instance-family, container-toolkit, kernel, container-os,
  // kernel-panic, nvml, pods-per-gpu.
  std::map<std::string, RuleText> texts;

  const RuleText& Text(const std::string& rule) const;
};

}  // namespace cgpu
