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

struct DriverSeriesSupport {
  int series = 0;              // 470
  std::optional<Version> max;  // newest supported release of that series, if bounded
};

struct DriverRow {
  VersionRange cgpu;
  std::vector<DriverSeriesSupport> supported;
  std::vector<int> not_supported;
};

struct InstanceFamilyRow {
  VersionRange cgpu;
  std::vector<std::string> supported;
  std::vector<std::string> not_supported;
};

// Rows of version ranges: nvidia-container-toolkit and kernel tables.
struct VersionSetRow {
  VersionRange cgpu;
  std::vector<VersionRange> supported;
  std::vector<VersionRange> not_supported;
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
  std::vector<DriverSeriesSupport> last_safe;  // per series, the newest driver that is safe
  int newer_series_from = 0;                   // every series at or above this is too new
};

struct RuleTable {
  int max_pods_per_gpu = 20;
  std::vector<LabelMatch> cgpu_enabled_labels;
  LabelMatch isolation_disabled_label;

  std::vector<DriverRow> driver;
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
