// Rules loader: rules/cgpu-rules.yaml (or an override) into a RuleTable.
//
// Strict on purpose: unknown keys, missing keys, bad versions, overlapping rows and empty texts
// are all errors, each naming the file, the line and the field ("rules.yaml:42:
// rules.driver.rows[1].supported[2]: \"470 <= 47x\" is not a driver series..."), so a typo in an
// override stops start-up instead of silently weakening a rule. Thread-safe; no globals.
#pragma once

#include <string>
#include <string_view>

#include "core/rule_table.h"
#include "core/status.h"

namespace cgpu {

StatusOr<RuleTable> LoadRules(std::string_view yaml_text, std::string_view source_name);
StatusOr<RuleTable> LoadRulesFile(const std::string& path);

}  // namespace cgpu
