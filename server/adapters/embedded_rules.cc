#include "adapters/embedded_rules.h"

#include <cstdio>
#include <cstdlib>

#include "adapters/rules_loader.h"

namespace cgpu {

const RuleTable& EmbeddedRules() {
  static const RuleTable* const kTable = [] {
    StatusOr<RuleTable> table = LoadRules(EmbeddedRulesYaml(), "rules/cgpu-rules.yaml (embedded)");
    if (!table.ok()) {
      // Only reachable if the build's validation step was bypassed.
      std::fprintf(stderr, "embedded rules are invalid: %s\n", table.status().message().c_str());
      std::abort();
    }
    return new RuleTable(std::move(table).value());
  }();
  return *kTable;
}

}  // namespace cgpu
