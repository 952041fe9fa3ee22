// Flags shared by `serve` and `check`: the rules file and where node facts come from; the label
// keys of node facts, shared by every command.
#pragma once

#include <string>
#include <vector>

#include "adapters/node_facts_reader.h"
#include "core/rule_table.h"
#include "shell/flags.h"

namespace cgpu {

struct FactOptions {
  std::string rules_file;  // empty: the rules compiled into the binary
  FactSources sources;
};

std::vector<FlagSpec> FactFlagSpecs(FactOptions& options);

// --cgpu-version-label, --driver-version-label, --toolkit-version-label: the label keys the agent
// writes and the webhook and `check` read, the same flags on every command (FactFlagSpecs has
// them too).
std::vector<FlagSpec> FactLabelFlagSpecs(FactLabelKeys& keys);

// The embedded rules, or the --rules file; a bad file is an error naming file, line and field.
StatusOr<RuleTable> LoadConfiguredRules(const FactOptions& options);

}  // namespace cgpu
