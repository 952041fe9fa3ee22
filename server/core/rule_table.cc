#include "core/rule_table.h"

namespace cgpu {

const RuleText& RuleTable::Text(const std::string& rule) const {
  static const RuleText kNone;
  auto it = texts.find(rule);
  return it == texts.end() ? kNone : it->second;
}

}  // namespace cgpu
