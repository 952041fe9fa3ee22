// EvaluateNode: a node's cGPU facts against the rule table, as findings and a verdict.
//
// Pure: no I/O, no clock, no globals; the same facts and table always give the same verdict.
// Every rule gives one finding: compatible, incompatible (the seed excludes the combination or it
// lies past a bound the seed states) or unknown (the seed says nothing, or a fact is missing or
// unreadable). The node is incompatible if any finding is, else unknown if any finding is, else
// compatible; a node without cGPU isolation is not-cgpu and has no findings.
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
