#include "core/compatibility.h"

#include <algorithm>

namespace cgpu {
namespace {

Finding Make(std::string rule, RuleVerdict verdict, std::string message) {
  return Finding{std::move(rule), verdict, std::move(message)};
}

// "cGPU version unknown: label cgpu-guard.io/cgpu-version is not set" or
// "label cgpu-guard.io/cgpu-version is \"1.5.x\", which is not a version".
std::string Unreadable(const VersionFact& fact, std::string_view what) {
  if (fact.unparseable()) {
    return fact.source + " is \"" + fact.raw + "\", which is not a " + std::string(what) +
           " version";
  }
  return std::string(what) + " version unknown: " + fact.source + " is not set";
}

std::string WithRemedy(std::string message, const RuleTable& table, const std::string& rule) {
  const std::string& remedy = table.Text(rule).remedy;
  return remedy.empty() ? message : message + "; " + remedy;
}

template <typename Row>
const Row* RowFor(const std::vector<Row>& rows, const Version& cgpu) {
  for (const Row& row : rows) {
    if (row.cgpu.Contains(cgpu)) return &row;
  }
  return nullptr;
}

template <typename Row>
std::string RowList(const std::vector<Row>& rows) {
  std::string text;
  for (const Row& row : rows) text += (text.empty() ? "" : ", ") + row.cgpu.ToString();
  return text;
}

template <typename Row>
Finding Gap(const std::vector<Row>& rows, const Version& cgpu, const std::string& rule,
            std::string_view table_name) {
  return Make(rule, RuleVerdict::kUnknown,
              "cGPU " + cgpu.ToString() + " is in no row of the " + std::string(table_name) +
                  " table (rows: " + RowList(rows) + "); its compatibility is not documented");
}

// The cGPU versions whose rows accept something, as "1.5.3-1.5.20"; "" when none do.
template <typename Row, typename Accepts>
std::string NeededCgpu(const std::vector<Row>& rows, Accepts accepts) {
  std::optional<Version> low;
  std::optional<Version> high;
  for (const Row& row : rows) {
    if (!accepts(row)) continue;
    if (row.cgpu.low && (!low || *row.cgpu.low < *low)) low = row.cgpu.low;
    if (row.cgpu.high && (!high || *row.cgpu.high > *high)) high = row.cgpu.high;
  }
  if (!low && !high) return "";
  return VersionRange{low, high}.ToString();
}

// Where a value stands in a row of the driver, nvidia-container-toolkit or kernel table. The one
// place that decides between `incompatible` and `unknown` for all three.
enum class Standing {
  kSupported,  // a supported cell holds it
  kExcluded,   // a not_supported cell holds it
  kPastBound,  // past the bound a supported cell states inside its family: 5.16 for "5.x <= 5.15"
  kNewer,      // past everything the row names (6.1, toolkit 1.18, driver series 580)
  kUnnamed,    // anything else the row does not name: an older value, a value between cells
};

struct RowMatch {
  Standing standing = Standing::kUnnamed;
  const VersionSet* set = nullptr;  // the cell that decided, for kSupported .. kPastBound
};

RowMatch MatchRow(const VersionSetRow& row, const Version& value) {
  for (const VersionSet& set : row.supported) {
    if (set.Contains(value)) return {Standing::kSupported, &set};
  }
  for (const VersionSet& set : row.not_supported) {
    if (set.Contains(value)) return {Standing::kExcluded, &set};
  }
  for (const VersionSet& set : row.supported) {
    if (set.PastBound(value)) return {Standing::kPastBound, &set};
  }
  const auto below = [&](const VersionSet& set) { return set.IsBelow(value); };
  if (std::all_of(row.supported.begin(), row.supported.end(), below) &&
      std::all_of(row.not_supported.begin(), row.not_supported.end(), below) &&
      !(row.supported.empty() && row.not_supported.empty())) {
    return {Standing::kNewer, nullptr};
  }
  return {Standing::kUnnamed, nullptr};
}

bool AnyContains(const std::vector<VersionSet>& sets, const Version& version) {
  return std::any_of(sets.begin(), sets.end(),
                     [&](const VersionSet& set) { return set.Contains(version); });
}

std::string SetList(const std::vector<VersionSet>& sets) {
  std::string text;
  for (const auto& set : sets) text += (text.empty() ? "" : ", ") + set.ToString();
  return text;
}

// The cGPU versions whose rows support `value`, as " (WHO needs cGPU 1.5.3-1.5.20)".
std::string NeedsCgpu(const std::vector<VersionSetRow>& rows, const Version& value,
                      const std::string& who) {
  const std::string needed =
      NeededCgpu(rows, [&](const VersionSetRow& row) { return AnyContains(row.supported, value); });
  return needed.empty() ? " (no cGPU version in the table supports it)"
                        : " (" + who + " needs cGPU " + needed + ")";
}

Finding CheckDriver(const NodeFacts& facts, const Version& cgpu, const RuleTable& table) {
  const std::string rule = "driver";
  if (!facts.driver_version.value) {
    return Make(rule, RuleVerdict::kUnknown, Unreadable(facts.driver_version, "NVIDIA driver"));
  }
  const Version& driver = *facts.driver_version.value;
  const VersionSetRow* row = RowFor(table.driver, cgpu);
  if (row == nullptr) return Gap(table.driver, cgpu, rule, "driver");

  const std::string series = std::to_string(driver.major());
  const std::string subject =
      "cGPU " + cgpu.ToString() + " does not support NVIDIA driver " + driver.ToString();
  const RowMatch at = MatchRow(*row, driver);
  switch (at.standing) {
    case Standing::kSupported:
      return Make(rule, RuleVerdict::kCompatible,
                  "cGPU " + cgpu.ToString() + " supports NVIDIA driver " + driver.ToString());
    case Standing::kPastBound:
      return Make(rule, RuleVerdict::kIncompatible,
                  WithRemedy(subject + ": it supports the " + series + " series only up to " +
                                 at.set->Bound()->ToString() +
                                 NeedsCgpu(table.driver, driver, driver.ToString()),
                             table, rule));
    case Standing::kExcluded:
      return Make(
          rule, RuleVerdict::kIncompatible,
          WithRemedy(subject + NeedsCgpu(table.driver, driver, series + " series"), table, rule));
    case Standing::kNewer:
      return Make(rule, RuleVerdict::kUnknown,
                  "NVIDIA driver series " + series + " (driver " + driver.ToString() +
                      ") is newer than every series the driver table names for cGPU " +
                      row->cgpu.ToString() +
                      ": the source predates it, so its compatibility is not documented");
    case Standing::kUnnamed:
      break;
  }
  return Make(rule, RuleVerdict::kUnknown,
              "NVIDIA driver series " + series + " (driver " + driver.ToString() +
                  ") is not in the driver table for cGPU " + row->cgpu.ToString() +
                  "; its compatibility is not documented");
}

bool Listed(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

Finding CheckInstanceFamily(const NodeFacts& facts, const Version& cgpu, const RuleTable& table) {
  const std::string rule = "instance-family";
  if (facts.instance_type.empty()) {
    return Make(rule, RuleVerdict::kUnknown,
                "instance type unknown: " + facts.instance_type_source + " is not set");
  }
  if (!facts.instance_family) {
    return Make(rule, RuleVerdict::kUnknown,
                facts.instance_type_source + " is \"" + facts.instance_type +
                    "\", which is not an ECS instance type (ecs.<family>-<size>.<spec>)");
  }
  const std::string& family = *facts.instance_family;
  const InstanceFamilyRow* row = RowFor(table.instance_family, cgpu);
  if (row == nullptr) return Gap(table.instance_family, cgpu, rule, "instance-family");
  const std::string described = "instance family " + family + " (" + facts.instance_type + ")";
  if (Listed(row->supported, family)) {
    return Make(rule, RuleVerdict::kCompatible,
                "cGPU " + cgpu.ToString() + " supports " + described);
  }
  if (Listed(row->not_supported, family)) {
    const std::string needed = NeededCgpu(table.instance_family, [&](const InstanceFamilyRow& r) {
      return Listed(r.supported, family);
    });
    return Make(
        rule, RuleVerdict::kIncompatible,
        WithRemedy("cGPU " + cgpu.ToString() + " does not support " + described +
                       (needed.empty() ? "" : " (" + family + " needs cGPU " + needed + ")"),
                   table, rule));
  }
  return Make(rule, RuleVerdict::kUnknown,
              described + " is not in the instance-family table for cGPU " + row->cgpu.ToString() +
                  "; its compatibility is not documented");
}

Finding CheckVersionSet(const std::string& rule, std::string_view what,
                        const std::vector<VersionSetRow>& rows, const VersionFact& fact,
                        const Version& cgpu, const RuleTable& table) {
  if (!fact.value) return Make(rule, RuleVerdict::kUnknown, Unreadable(fact, what));
  const Version& version = *fact.value;
  const VersionSetRow* row = RowFor(rows, cgpu);
  if (row == nullptr) return Gap(rows, cgpu, rule, std::string(what));
  const std::string described = std::string(what) + " " + version.ToString();
  const std::string cells = " (" + SetList(row->supported) + ")";
  switch (MatchRow(*row, version).standing) {
    case Standing::kSupported:
      return Make(rule, RuleVerdict::kCompatible,
                  "cGPU " + cgpu.ToString() + " supports " + described);
    case Standing::kExcluded:
    case Standing::kPastBound: {
      const std::string needed = NeededCgpu(
          rows, [&](const VersionSetRow& r) { return AnyContains(r.supported, version); });
      std::string message = "cGPU " + cgpu.ToString() + " does not support " + described +
                            " (it supports " + SetList(row->supported) + "; ";
      message += needed.empty()
                     ? "no cGPU version in the table supports " + version.ToString() + ")"
                     : version.ToString() + " needs cGPU " + needed + ")";
      return Make(rule, RuleVerdict::kIncompatible, WithRemedy(message, table, rule));
    }
    case Standing::kNewer:
      return Make(rule, RuleVerdict::kUnknown,
                  described + " is newer than every version the " + std::string(what) +
                      " table names for cGPU " + row->cgpu.ToString() + cells +
                      ": the source predates it, so its compatibility is not documented");
    case Standing::kUnnamed:
      break;
  }
  return Make(rule, RuleVerdict::kUnknown,
              described + " is not covered by the " + std::string(what) + " table for cGPU " +
                  row->cgpu.ToString() + cells + "; its compatibility is not documented");
}

Finding CheckKernelPanic(const Version& cgpu, const RuleTable& table) {
  const std::string rule = "kernel-panic";
  const KnownIssue& issue = table.kernel_panic;
  if (issue.affected.Contains(cgpu)) {
    return Make(rule, RuleVerdict::kIncompatible,
                WithRemedy("cGPU " + cgpu.ToString() +
                               " is affected by the kernel-driver deadlock "
                               "that panics the Linux kernel (affected: " +
                               issue.affected.ToString() + ")",
                           table, rule));
  }
  // A remedy is not an affected range: between the last affected version and the fix the source
  // says nothing.
  if (issue.fixed_from && issue.affected.IsAbove(cgpu) && cgpu < *issue.fixed_from) {
    return Make(rule, RuleVerdict::kUnknown,
                WithRemedy("cGPU " + cgpu.ToString() +
                               " lies between the versions named as affected by the kernel-panic "
                               "deadlock (" +
                               issue.affected.ToString() +
                               ") and the fix (>=" + issue.fixed_from->ToString() +
                               "); whether it has the deadlock is not documented",
                           table, rule));
  }
  return Make(rule, RuleVerdict::kCompatible,
              "cGPU " + cgpu.ToString() + " is not affected by the kernel-panic deadlock");
}

Finding CheckContainerOs(const NodeFacts& facts, const Version& cgpu, const RuleTable& table) {
  const std::string rule = "container-os";
  if (!facts.container_optimized_os) {
    return Make(rule, RuleVerdict::kCompatible, "not a container-optimized OS image");
  }
  const ContainerOsIssue& issue = table.container_os;
  if (!issue.affected.Contains(cgpu)) {
    return Make(rule, RuleVerdict::kCompatible,
                "cGPU " + cgpu.ToString() + " is not affected by the container-optimized OS issue");
  }
  const std::string fix = issue.fixed_by_ai_installer.ToString();
  if (facts.ai_installer_version.unparseable()) {
    return Make(rule, RuleVerdict::kUnknown,
                Unreadable(facts.ai_installer_version, "ack-ai-installer"));
  }
  if (facts.ai_installer_version.value &&
      *facts.ai_installer_version.value >= issue.fixed_by_ai_installer) {
    return Make(rule, RuleVerdict::kCompatible,
                "ack-ai-installer " + facts.ai_installer_version.value->ToString() +
                    " resolves the container-optimized OS issue of cGPU " + cgpu.ToString());
  }
  const std::string installer =
      facts.ai_installer_version.value
          ? "ack-ai-installer " + facts.ai_installer_version.value->ToString()
          : "ack-ai-installer version not given";
  return Make(rule, RuleVerdict::kIncompatible,
              WithRemedy("cGPU " + cgpu.ToString() + " on a container-optimized OS image (\"" +
                             facts.os_image + "\") may fail to start the node's first cGPU pod (" +
                             installer + "; fixed by >=" + fix + ")",
                         table, rule));
}

Finding CheckNvml(const NodeFacts& facts, const Version& cgpu, const RuleTable& table) {
  const std::string rule = "nvml";
  const NvmlIssue& issue = table.nvml;
  if (!issue.affected.Contains(cgpu)) {
    return Make(rule, RuleVerdict::kCompatible,
                "cGPU " + cgpu.ToString() + " is not affected by the NVML access issue");
  }
  if (!facts.driver_version.value) {
    return Make(rule, RuleVerdict::kUnknown, Unreadable(facts.driver_version, "NVIDIA driver"));
  }
  const Version& driver = *facts.driver_version.value;
  const std::string series = std::to_string(driver.major());
  const std::string affected = "cGPU " + issue.affected.ToString();
  // The source dates the issue ("drivers released after July 2023"); the rules know versions,
  // not dates, so the message says which of the two it rests on.
  const std::string seed_link = "; the source links NVML failures of " + affected +
                                " (nvidia-smi in pods: \"GPU access blocked by operating "
                                "system\") to drivers released after July 2023";
  const VersionSet* safe = nullptr;
  for (const VersionSet& set : issue.last_safe) {
    if (set.family && driver.ComparePrefix(*set.family) == 0) safe = &set;
  }
  if (driver.major() >= issue.newer_series_from) {
    return Make(
        rule, RuleVerdict::kIncompatible,
        WithRemedy("cGPU " + cgpu.ToString() + " with NVIDIA driver " + driver.ToString() +
                       ": no driver of the " + std::to_string(issue.newer_series_from) +
                       " series or a later one is known to work with " + affected + seed_link,
                   table, rule));
  }
  if (safe != nullptr && safe->PastBound(driver)) {
    return Make(
        rule, RuleVerdict::kIncompatible,
        WithRemedy("cGPU " + cgpu.ToString() + " with NVIDIA driver " + driver.ToString() +
                       ": the driver is newer than " + safe->Bound()->ToString() + ", the newest " +
                       series + " driver known to work with " + affected + seed_link,
                   table, rule));
  }
  if (safe == nullptr) {
    return Make(rule, RuleVerdict::kUnknown,
                "NVIDIA driver " + driver.ToString() + " is of a series (" + series +
                    ") the NVML rule does not name, so whether it works with cGPU " +
                    cgpu.ToString() + " is not known" + seed_link);
  }
  const std::optional<Version> bound = safe->Bound();
  const std::string known =
      "the " + series + " series" + (bound ? " up to " + bound->ToString() : "");
  return Make(rule, RuleVerdict::kCompatible,
              "NVIDIA driver " + driver.ToString() + " is known to work with " + affected + " (" +
                  known + ")");
}

}  // namespace

std::string_view ToString(RuleVerdict verdict) {
  switch (verdict) {
    case RuleVerdict::kCompatible:
      return "compatible";
    case RuleVerdict::kUnknown:
      return "unknown";
    case RuleVerdict::kIncompatible:
      return "incompatible";
  }
  return "unknown";
}

std::string_view ToString(NodeVerdict verdict) {
  switch (verdict) {
    case NodeVerdict::kNotCgpu:
      return "not-cgpu";
    case NodeVerdict::kCompatible:
      return "compatible";
    case NodeVerdict::kUnknown:
      return "unknown";
    case NodeVerdict::kIncompatible:
      return "incompatible";
  }
  return "unknown";
}

const Finding* NodeEvaluation::FirstProblem() const {
  if (findings.empty() || findings.front().verdict == RuleVerdict::kCompatible) return nullptr;
  return &findings.front();
}

NodeEvaluation EvaluateNode(const NodeFacts& facts, const RuleTable& table) {
  NodeEvaluation evaluation;
  if (!facts.cgpu_enabled) return evaluation;

  static const char* const kRules[] = {"driver", "instance-family", "container-toolkit",
                                       "kernel", "container-os",    "kernel-panic",
                                       "nvml"};
  if (!facts.cgpu_version.value) {
    const std::string reason = Unreadable(facts.cgpu_version, "cGPU");
    for (const char* rule : kRules) {
      // A container-optimized OS check needs no version when the image is not one.
      if (std::string_view(rule) == "container-os" && !facts.container_optimized_os) {
        evaluation.findings.push_back(CheckContainerOs(facts, Version(), table));
      } else {
        evaluation.findings.push_back(Make(rule, RuleVerdict::kUnknown, reason));
      }
    }
  } else {
    const Version& cgpu = *facts.cgpu_version.value;
    evaluation.findings = {
        CheckDriver(facts, cgpu, table),
        CheckInstanceFamily(facts, cgpu, table),
        CheckVersionSet("container-toolkit", "nvidia-container-toolkit", table.container_toolkit,
                        facts.toolkit_version, cgpu, table),
        CheckVersionSet("kernel", "kernel", table.kernel, facts.kernel_version, cgpu, table),
        CheckContainerOs(facts, cgpu, table),
        CheckKernelPanic(cgpu, table),
        CheckNvml(facts, cgpu, table),
    };
  }
  std::stable_sort(evaluation.findings.begin(), evaluation.findings.end(),
                   [](const Finding& a, const Finding& b) { return a.verdict > b.verdict; });
  switch (evaluation.findings.front().verdict) {
    case RuleVerdict::kIncompatible:
      evaluation.verdict = NodeVerdict::kIncompatible;
      break;
    case RuleVerdict::kUnknown:
      evaluation.verdict = NodeVerdict::kUnknown;
      break;
    case RuleVerdict::kCompatible:
      evaluation.verdict = NodeVerdict::kCompatible;
      break;
  }
  return evaluation;
}

}  // namespace cgpu
