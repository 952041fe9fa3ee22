// Flags shared by `serve` and `check`: the rules file and where node facts come from.
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

// The embedded rules, or the --rules file; a bad file is an error naming file, line and field.
StatusOr<RuleTable> LoadConfiguredRules(const FactOptions& options);

}  // namespace cgpu
