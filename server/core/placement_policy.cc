#include "core/placement_policy.h"

#include <algorithm>

namespace cgpu {
namespace {

std::string Join(const std::vector<int>& values) {
  std::string text;
  for (int value : values) text += (text.empty() ? "" : ", ") + std::to_string(value);
  return text;
}

// "driver: cGPU 1.5.2 does not support ... (2 more problems: kernel, nvml; see cgpu-guard check)"
std::string DescribeProblems(const NodeEvaluation& evaluation, RuleVerdict verdict) {
  std::string first;
  std::vector<std::string> others;
  for (const Finding& finding : evaluation.findings) {
    if (finding.verdict != verdict) continue;
    if (first.empty()) {
      first = finding.message;
    } else {
      others.push_back(finding.rule);
    }
  }
  if (others.empty()) return first;
  std::string rest;
  for (const std::string& rule : others) rest += (rest.empty() ? "" : ", ") + rule;
  return first + " (" + std::to_string(others.size()) + " more: " + rest +
         "; run cgpu-guard check for all)";
}

const Finding* FirstWith(const NodeEvaluation& evaluation, RuleVerdict verdict) {
  for (const Finding& finding : evaluation.findings) {
    if (finding.verdict == verdict) return &finding;
  }
  return nullptr;
}

// Carries the warnings of an earlier `unknown` outcome (and so its concern) into `decision`.
void AddWarnings(Decision& decision, std::vector<std::string> warnings) {
  if (!warnings.empty() && decision.concern == Concern::kNone)
    decision.concern = Concern::kUnchecked;
  for (std::string& warning : warnings) decision.warnings.push_back(std::move(warning));
}

Decision Concerning(Decision decision, Concern concern) {
  decision.concern = concern;
  return decision;
}

}  // namespace

Decision DecideUnknown(std::string reason, const std::string& message, const UnknownPolicy policy) {
  switch (policy) {
    case UnknownPolicy::kDeny: {
      Decision decision =
          Deny(std::move(reason), message + " (unknown compatibility is denied by policy)");
      decision.concern = Concern::kUnchecked;
      return decision;
    }
    case UnknownPolicy::kWarn: {
      Decision decision = Allow(std::move(reason));
      decision.warnings.push_back("cgpu-guard: " + message);
      decision.concern = Concern::kUnchecked;
      return decision;
    }
    case UnknownPolicy::kAllow:
      break;
  }
  return Allow(std::move(reason));
}

std::string_view ToString(EnforcementMode mode) {
  switch (mode) {
    case EnforcementMode::kEnforce:
      return "enforce";
    case EnforcementMode::kWarn:
      return "warn";
    case EnforcementMode::kDryRun:
      return "dry-run";
  }
  return "enforce";
}

std::string_view ToString(UnknownPolicy policy) {
  switch (policy) {
    case UnknownPolicy::kAllow:
      return "allow";
    case UnknownPolicy::kWarn:
      return "warn";
    case UnknownPolicy::kDeny:
      return "deny";
  }
  return "warn";
}

std::string_view ToString(StalePolicy policy) {
  return policy == StalePolicy::kFailOpen ? "fail-open" : "fail-closed";
}

PodLimit ConfiguredPodsPerGpuLimit(const RuleTable& rules, const PolicyOptions& options) {
  PodLimit limit{rules.max_pods_per_gpu, "the most cGPU supports on one GPU"};
  if (options.max_pods_per_gpu > 0 && options.max_pods_per_gpu < limit.value) {
    limit = {options.max_pods_per_gpu, "the limit set by --max-pods-per-gpu"};
  }
  return limit;
}

PodLimit PodsPerGpuLimit(const NodeFacts& node, const RuleTable& rules,
                         const PolicyOptions& options) {
  PodLimit limit = ConfiguredPodsPerGpuLimit(rules, options);
  if (node.max_pods_per_gpu && *node.max_pods_per_gpu < limit.value) {
    limit = {*node.max_pods_per_gpu, "the node's ack.node.gpu.max-pod limit"};
  }
  return limit;
}

std::vector<int> EffectiveGpus(const GpuAssignment& gpus, const NodeFacts* node) {
  if (gpus.known()) return gpus.indices;
  if (node != nullptr && node->gpu_count == 1) return {0};
  return {};
}

Decision DecidePlacement(const Placement& placement, const NodeView& node, const RuleTable& rules,
                         const PolicyOptions& options) {
  const std::string where = "pod " + placement.pod + " on node " + placement.node;
  if (node.facts == nullptr) {
    return DecideUnknown("node-unknown",
                         "node " + placement.node +
                             " is not in cgpu-guard's cluster state yet, so " + where +
                             " was not checked",
                         options.unknown);
  }
  const NodeFacts& facts = *node.facts;
  if (!facts.cgpu_enabled) return Allow("not-cgpu-node");

  std::vector<std::string> warnings;
  if (node.evaluation != nullptr) {
    const NodeEvaluation& evaluation = *node.evaluation;
    if (evaluation.verdict == NodeVerdict::kIncompatible) {
      return Concerning(
          Deny(FirstWith(evaluation, RuleVerdict::kIncompatible)->rule,
               "cannot run cGPU " + where + ": the node's cGPU setup is incompatible: " +
                   DescribeProblems(evaluation, RuleVerdict::kIncompatible)),
          Concern::kIncompatible);
    }
    if (evaluation.verdict == NodeVerdict::kUnknown) {
      Decision unknown = DecideUnknown(
          FirstWith(evaluation, RuleVerdict::kUnknown)->rule,
          "compatibility of node " + placement.node +
              " with cGPU is unknown: " + DescribeProblems(evaluation, RuleVerdict::kUnknown),
          options.unknown);
      if (!unknown.allowed()) return unknown;
      warnings = std::move(unknown.warnings);
    }
  }

  const PodLimit limit = PodsPerGpuLimit(facts, rules, options);
  const RuleText& text = rules.Text("pods-per-gpu");
  auto count_on = [&](int gpu) {
    return gpu >= 0 && static_cast<size_t>(gpu) < node.pods_per_gpu.size() ? node.pods_per_gpu[gpu]
                                                                           : 0;
  };
  const std::vector<int> gpus = EffectiveGpus(placement.gpus, node.facts);
  if (gpus.empty()) {
    // Which GPU is not written on the pod. If every GPU of the node is full it cannot fit anywhere.
    if (facts.gpu_count && *facts.gpu_count > 0) {
      bool all_full = true;
      for (int gpu = 0; gpu < *facts.gpu_count; ++gpu) all_full &= count_on(gpu) >= limit.value;
      if (all_full) {
        return Concerning(
            Deny("pods-per-gpu",
                 "cannot run cGPU " + where + ": every GPU of the node already runs " +
                     std::to_string(limit.value) + " cGPU pods and " + std::to_string(limit.value) +
                     " is " + limit.source + " (" + text.symptom + "); " + text.remedy +
                     ": schedule it to another node or add GPU capacity"),
            Concern::kGpuFull);
      }
    }
    Decision unknown = DecideUnknown(
        "gpu-unknown",
        "cannot tell which GPU " + where + " uses" +
            (placement.gpus.error.empty() ? " (no GPU allocation annotation on the pod)"
                                          : " (" + placement.gpus.error + ")") +
            ", so the " + std::to_string(limit.value) + "-pods-per-GPU limit was not checked",
        options.unknown);
    if (!unknown.allowed()) return unknown;
    AddWarnings(unknown, std::move(warnings));
    return unknown;
  }

  if (facts.gpu_count) {
    for (int gpu : gpus) {
      if (gpu < *facts.gpu_count) continue;
      Decision unknown = DecideUnknown(
          "gpu-unknown",
          where + " names GPU " + std::to_string(gpu) +
              (placement.gpus.source.empty() ? "" : " (" + placement.gpus.source + ")") +
              " but the node has " + std::to_string(*facts.gpu_count) + " GPUs, so the " +
              std::to_string(limit.value) + "-pods-per-GPU limit was not checked",
          options.unknown);
      if (!unknown.allowed()) return unknown;
      AddWarnings(unknown, std::move(warnings));
      return unknown;
    }
  }

  std::vector<int> full;
  for (int gpu : gpus) {
    if (count_on(gpu) + 1 > limit.value) full.push_back(gpu);
  }
  if (!full.empty()) {
    const bool one = full.size() == 1;
    return Concerning(
        Deny("pods-per-gpu", "cannot run cGPU " + where + ": GPU" + (one ? " " : "s ") +
                                 Join(full) + (one ? " already runs " : " already run ") +
                                 std::to_string(count_on(full.front())) + " cGPU pods and " +
                                 std::to_string(limit.value) + " is " + limit.source + " (" +
                                 text.symptom + "); " + text.remedy +
                                 ": schedule it to another GPU or node, or add GPU capacity"),
        Concern::kGpuFull);
  }
  Decision decision = Allow("within-limits");
  AddWarnings(decision, std::move(warnings));
  return decision;
}

Decision DecideNodeChange(const AdmissionRequest& request, const NodeFacts* old_node,
                          const NodeFacts& node, const NodeEvaluation& evaluation,
                          const PolicyOptions& options) {
  // Status updates come from the kubelet: refusing them would stop it reporting the node.
  if (request.sub_resource == "status") return Allow("node-status");
  if (!node.cgpu_enabled) return Allow("not-cgpu-node");
  const std::string name = node.name.empty() ? request.name : node.name;
  const bool newly_enabled = old_node == nullptr || !old_node->cgpu_enabled;

  if (evaluation.verdict == NodeVerdict::kIncompatible) {
    const std::string problems = DescribeProblems(evaluation, RuleVerdict::kIncompatible);
    const std::string rule = FirstWith(evaluation, RuleVerdict::kIncompatible)->rule;
    if (newly_enabled) {
      return Concerning(
          Deny(rule, "cannot enable cGPU isolation (" + node.cgpu_enabled_by + ") on node " + name +
                         ": its cGPU setup is incompatible: " + problems),
          Concern::kIncompatible);
    }
    Decision decision = Allow(rule);
    decision.concern = Concern::kIncompatible;
    decision.warnings.push_back("cgpu-guard: node " + name +
                                " has cGPU enabled but is incompatible: " + problems);
    return decision;
  }
  if (evaluation.verdict == NodeVerdict::kUnknown && newly_enabled) {
    const std::string rule = FirstWith(evaluation, RuleVerdict::kUnknown)->rule;
    const std::string unknown = "compatibility of node " + name + " with cGPU is unknown: " +
                                DescribeProblems(evaluation, RuleVerdict::kUnknown);
    if (request.operation == Operation::kCreate) {
      // A node registering with cGPU on (its node pool's labels): its facts cannot be known yet,
      // since the node-facts agent runs on it only once it has joined. Refusing would keep the
      // kubelet from ever registering it, whatever the unknown policy; its cGPU pods are still
      // judged when they are placed.
      Decision decision = Allow(rule);
      decision.concern = Concern::kUnchecked;
      decision.warnings.push_back("cgpu-guard: " + unknown +
                                  "; a registering node is let in, and its cGPU pods are judged "
                                  "when they are placed");
      return decision;
    }
    return DecideUnknown(rule, unknown, options.unknown);
  }
  return Allow("compatible-node");
}

Decision DecideOnStaleState(const Placement& placement, const std::string& why,
                            StalePolicy policy) {
  const std::string stale = "view of the cluster is stale (" + why + ")";
  if (policy == StalePolicy::kFailOpen) {
    Decision allowed = Allow("cluster-state-stale");
    // Essentials first: the API server may cut a long warning short.
    allowed.warnings.push_back(
        "cgpu-guard: pod " + placement.pod + " on node " + placement.node +
        " was allowed without checking GPU limits or node compatibility: its " + stale);
    allowed.concern = Concern::kUnchecked;
    return allowed;
  }
  return Concerning(Deny("cluster-state-stale",
                         "cannot check cGPU pod " + placement.pod + " on node " + placement.node +
                             ": cgpu-guard's " + stale +
                             ", so pods per GPU cannot be counted; retry once its watch of the API "
                             "server is back",
                         503),
                    Concern::kUnchecked);
}

Decision DecideUnrecorded(const Placement& placement, const std::string& why, StalePolicy policy) {
  const std::string unrecorded =
      "its placement could not be recorded in the API server, where cgpu-guard's replicas count "
      "each other's (" +
      why + ")";
  if (policy == StalePolicy::kFailOpen) {
    Decision allowed = Allow("placement-unrecorded");
    allowed.warnings.push_back("cgpu-guard: pod " + placement.pod + " on node " + placement.node +
                               " was allowed, but " + unrecorded +
                               ": other replicas may not count it for a while");
    allowed.concern = Concern::kUnchecked;
    return allowed;
  }
  return Concerning(Deny("placement-unrecorded",
                         "cannot place cGPU pod " + placement.pod + " on node " + placement.node +
                             ": " + unrecorded + "; retry",
                         503),
                    Concern::kUnchecked);
}

Decision ApplyMode(Decision decision, EnforcementMode mode) {
  if (decision.verdict != Verdict::kDenied || mode == EnforcementMode::kEnforce) return decision;
  Decision allowed = Allow(decision.reason);
  allowed.would_deny = true;
  allowed.concern = decision.concern;
  allowed.message = decision.message;
  allowed.warnings = std::move(decision.warnings);
  if (mode == EnforcementMode::kWarn) {
    allowed.warnings.insert(allowed.warnings.begin(),
                            "cgpu-guard (warn mode) would deny: " + decision.message);
  }
  return allowed;
}

}  // namespace cgpu
