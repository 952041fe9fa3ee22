// EvaluateNode: a node's cGPU facts against the rule table, as findings and a verdict.
//
// Pure: no I/O, no clock, no globals; the same facts and table always give the same verdict.
// Every rule gives one finding: compatible, incompatible or unknown. Incompatible only where the
// seed says so: a row excludes the value, the value lies past a bound the row states inside a
// family ("5.x <= 5.15": kernel 5.16), or the seed names the cGPU version as affected by a known
// issue. Unknown wherever the seed says nothing: a cGPU version in no row, a value no row names,
// a value newer than everything its row names (kernel 6.1, toolkit 1.18, driver series 580: the
// seed predates it), a version between an issue's last affected one and its fix, or a fact that
// is missing or unreadable. The node is incompatible if any finding is, else unknown if any
// finding is, else compatible; a node without cGPU isolation is not-cgpu and has no findings.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/node_facts.h"
#include "core/rule_table.h"

namespace cgpu {

enum class RuleVerdict { kCompatible, kUnknown, kIncompatible };
enum class NodeVerdict { kNotCgpu, kCompatible, kUnknown, kIncompatible };

std::string_view ToString(RuleVerdict verdict);  // "compatible", "unknown", "incompatible"
std::string_view ToString(NodeVerdict verdict);  // ... and "not-cgpu"

struct Finding {
  std::string rule;  // driver, instance-family, container-toolkit, kernel, container-os, ...
  RuleVerdict verdict = RuleVerdict::kUnknown;
  std::string message;
};

struct NodeEvaluation {
  NodeVerdict verdict = NodeVerdict::kNotCgpu;
  // Most severe first: incompatible, then unknown, then compatible; rule order within each.
  std::vector<Finding> findings;

  // The first incompatible or unknown finding, or nullptr when there is none.
  const Finding* FirstProblem() const;
};

NodeEvaluation EvaluateNode(const NodeFacts& facts, const RuleTable& table);

}  // namespace cgpu
