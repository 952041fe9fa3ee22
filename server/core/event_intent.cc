#include "core/event_intent.h"

namespace cgpu {
namespace {

std::string JoinWarnings(const std::vector<std::string>& warnings) {
  std::string text;
  for (const std::string& warning : warnings) text += (text.empty() ? "" : "; ") + warning;
  return text;
}

std::string ActionOf(const ReviewFacts& facts) {
  if (facts.route->point == EnforcementPoint::kBinding) return "Bind";
  return facts.request.operation == Operation::kUpdate ? "Update" : "Create";
}

std::optional<ObjectRef> PodOf(const ReviewFacts& facts) {
  ObjectRef pod;
  pod.kind = "Pod";
  if (facts.binding) {
    pod.namespace_name = facts.binding->pod_namespace;
    pod.name = facts.binding->pod_name;
    pod.uid = facts.binding->pod_uid;
  } else if (facts.pod) {
    pod.namespace_name = facts.pod->namespace_name;
    pod.name = facts.pod->name;
    pod.uid = facts.pod->uid;
  }
  if (pod.namespace_name.empty()) pod.namespace_name = facts.request.namespace_name;
  if (pod.name.empty()) pod.name = facts.request.name;
  if (pod.namespace_name.empty() || pod.name.empty()) return std::nullopt;
  return pod;
}

// "driver: ...; kernel: ..." for every rule the node does not pass.
std::string Problems(const NodeEvaluation& evaluation) {
  std::string text;
  for (const Finding& finding : evaluation.findings) {
    if (finding.verdict == RuleVerdict::kCompatible) continue;
    text += (text.empty() ? "" : "; ") + finding.message;
  }
  return text;
}

std::string FailingRules(const NodeEvaluation& evaluation) {
  std::string rules;
  for (const Finding& finding : evaluation.findings) {
    if (finding.verdict == RuleVerdict::kCompatible) continue;
    rules += (rules.empty() ? "" : ",") + finding.rule;
  }
  return rules;
}

}  // namespace

std::optional<EventIntent> PodEventFor(const ReviewFacts& facts, const Decision& decision) {
  if (facts.route == nullptr || facts.request.dry_run) return std::nullopt;
  const EnforcementPoint point = facts.route->point;
  if (point != EnforcementPoint::kBinding && point != EnforcementPoint::kPod) return std::nullopt;
  if (facts.request.operation == Operation::kDelete) return std::nullopt;
  if (decision.verdict == Verdict::kErrored) return std::nullopt;
  const bool denied = decision.verdict == Verdict::kDenied;
  if (!denied && !decision.would_deny && decision.warnings.empty()) return std::nullopt;

  std::optional<ObjectRef> pod = PodOf(facts);
  if (!pod) return std::nullopt;
  EventIntent event;
  event.regarding = std::move(*pod);
  event.action = ActionOf(facts);
  if (decision.would_deny) {
    event.reason = kReasonWouldDeny;
    event.note = "cgpu-guard would deny this in enforce mode: " + decision.message;
  } else if (denied) {
    switch (decision.concern) {
      case Concern::kGpuFull:
        event.reason = kReasonGpuFull;
        break;
      case Concern::kIncompatible:
        event.reason = kReasonNodeIncompatible;
        break;
      case Concern::kUnchecked:
      case Concern::kNone:
        event.reason = kReasonUnchecked;
        break;
    }
    event.note = "denied: " + decision.message;
  } else {
    // Allowed with warnings: unknown facts under --unknown-policy=warn, fail-open on a stale
    // cache, a claim that could not be recorded.
    event.reason = kReasonUnchecked;
    event.note = "allowed, not fully checked: " + JoinWarnings(decision.warnings);
  }
  return event;
}

std::optional<EventIntent> NodeVerdictTracker::Observe(const NodeFacts& node,
                                                       const NodeEvaluation& evaluation) {
  if (!node.cgpu_enabled || evaluation.verdict == NodeVerdict::kNotCgpu) {
    last_.erase(node.name);
    return std::nullopt;
  }
  Seen now{evaluation.verdict, FailingRules(evaluation)};
  const auto found = last_.find(node.name);
  const bool first = found == last_.end();
  if (!first && found->second.verdict == now.verdict && found->second.failing == now.failing) {
    return std::nullopt;
  }
  last_[node.name] = now;
  // A node first seen compatible is the quiet, common case: nothing to tell.
  if (first && now.verdict == NodeVerdict::kCompatible) return std::nullopt;

  EventIntent event;
  event.regarding.kind = "Node";
  event.regarding.name = node.name;
  event.regarding.uid = node.uid;
  event.action = "Evaluate";
  event.state_report = true;
  switch (now.verdict) {
    case NodeVerdict::kIncompatible:
      event.reason = kReasonNodeIncompatible;
      event.note = "cGPU pods are refused on this node: " + Problems(evaluation) +
                   " (cgpu-guard check lists every finding)";
      break;
    case NodeVerdict::kUnknown:
      event.reason = kReasonNodeUnknown;
      event.note = "cGPU compatibility of this node cannot be judged: " + Problems(evaluation);
      break;
    default:
      event.warning = false;
      event.reason = kReasonNodeCompatible;
      event.note = "the node's cGPU setup is now compatible with the rules";
      break;
  }
  return event;
}

void NodeVerdictTracker::Forget(const std::string& node_name) { last_.erase(node_name); }

}  // namespace cgpu
