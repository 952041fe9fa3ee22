// The rules compiled into the binary: rules/cgpu-rules.yaml as it was at build time.
//
// The build runs rules-compile, which validates the file with LoadRules and embeds its text; a
// malformed file fails the build, so EmbeddedRules() cannot fail at run time.
#pragma once

#include <string_view>

#include "core/rule_table.h"

namespace cgpu {

std::string_view EmbeddedRulesYaml();  // defined in the generated embedded_rules_data.cc
const RuleTable& EmbeddedRules();      // parsed once, on first use; thread-safe

}  // namespace cgpu
