// `cgpu-guard check`: audit nodes against the rule table before an upgrade.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "adapters/node_facts_reader.h"
#include "core/compatibility.h"

namespace cgpu {

// Exit code 0: no node incompatible; 1: some node incompatible; 2: bad input or usage.
int RunCheckCommand(const std::vector<std::string>& args);

// The pieces RunCheckCommand prints, exposed for tests.
struct CheckedNode {
  NodeFacts facts;
  NodeEvaluation evaluation;
};
std::string FormatCheckTable(const std::vector<CheckedNode>& nodes, bool colour);
std::string FormatCheckJson(const std::vector<CheckedNode>& nodes);

}  // namespace cgpu
