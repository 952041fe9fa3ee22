// The admission decisions of cgpu-guard, as pure functions over plain facts.
//
//   DecidePlacement:  may this cGPU pod run on this node, on these GPUs? (pods/binding, pod
//                     CREATE with spec.nodeName, pod UPDATE that moves a bound pod's GPUs)
//   DecideNodeChange: may this node become cGPU-enabled with the facts it has?
//   ApplyMode:        what enforce / warn / dry-run make of a decision.
//
// No I/O, no clock, no locks: the caller looks up the node's facts and the per-GPU pod counts
// (adapters/cluster_cache) and passes them in. Messages stand alone in kubectl's "admission
// webhook ... denied the request: <message>": what, where, why and what to upgrade.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/admission_request.h"
#include "core/compatibility.h"
#include "core/decision.h"
#include "core/node_facts.h"
#include "core/pod_facts.h"
#include "core/rule_table.h"

namespace cgpu {

enum class EnforcementMode { kEnforce, kWarn, kDryRun };
// What an `unknown` verdict (the rules say nothing, or a fact is missing) leads to.
enum class UnknownPolicy { kAllow, kWarn, kDeny };
// What a placement is answered with while the cluster state is known to be stale (a watch has
// been down too long): fail-closed denies it, fail-open allows it with a warning. Either way the
// answer says why; pod counts from a stale cache are never used as if they were current.
enum class StalePolicy { kFailClosed, kFailOpen };

std::string_view ToString(EnforcementMode mode);  // "enforce", "warn", "dry-run"
std::string_view ToString(UnknownPolicy policy);  // "allow", "warn", "deny"
std::string_view ToString(StalePolicy policy);    // "fail-closed", "fail-open"

struct PolicyOptions {
  EnforcementMode mode = EnforcementMode::kEnforce;
  UnknownPolicy unknown = UnknownPolicy::kWarn;
  StalePolicy stale = StalePolicy::kFailClosed;
  // Pods per GPU, when lower than the rules' limit (20). 0: the rules' limit.
  int max_pods_per_gpu = 0;
};

// What the cache knows of the target node. A GPU index at or past the node's GPU count
// (aliyun.com/gpu-count) is a GPU that does not exist: a placement naming one is `unknown`
// ("gpu-unknown"), never counted.
struct NodeView {
  const NodeFacts* facts = nullptr;  // nullptr: the node is not known (yet)
  const NodeEvaluation* evaluation = nullptr;
  // cGPU pods per GPU index on the node now, reservations included, the pod being placed left
  // out. Indices past the end hold no pod.
  std::vector<int> pods_per_gpu;
};

struct Placement {
  std::string pod;   // "namespace/name", for messages
  std::string node;  // target node name
  GpuAssignment gpus;
};

// The limit for one node: the rules' limit, lowered by the options and the node's own
// ack.node.gpu.max-pod label. `source` says which of them set it.
struct PodLimit {
  int value = 20;
  std::string source;
};
PodLimit PodsPerGpuLimit(const NodeFacts& node, const RuleTable& rules,
                         const PolicyOptions& options);
// The same before any node's own label: the rules' limit, lowered by the options. What a node's
// ack.node.gpu.max-pod label should not exceed (core/max_pod_label.h).
PodLimit ConfiguredPodsPerGpuLimit(const RuleTable& rules, const PolicyOptions& options);

// The GPUs a placement will count on: its assignment, or GPU 0 on a node with one GPU.
std::vector<int> EffectiveGpus(const GpuAssignment& gpus, const NodeFacts* node);

// An `unknown` outcome (the rules or the cluster state cannot tell) under `policy`: allowed,
// allowed with "cgpu-guard: <message>" as a warning, or denied saying the policy denies it.
Decision DecideUnknown(std::string reason, const std::string& message, UnknownPolicy policy);

Decision DecidePlacement(const Placement& placement, const NodeView& node, const RuleTable& rules,
                         const PolicyOptions& options);

Decision DecideNodeChange(const AdmissionRequest& request, const NodeFacts* old_node,
                          const NodeFacts& node, const NodeEvaluation& evaluation,
                          const PolicyOptions& options);

// A placement that needs pod counts while they are stale (`why`, e.g. "the pods watch has been
// down for 42 s"): denied with code 503 (fail-closed) or allowed with a warning (fail-open),
// reason "cluster-state-stale" either way.
Decision DecideOnStaleState(const Placement& placement, const std::string& why, StalePolicy policy);

// A placement whose claim could not be written (the API server unreachable, the review's deadline
// passed, or other replicas winning every compare-and-swap): without it the replicas cannot be
// sure to count it, so it is answered like a stale state, by `policy`. `why` says what failed.
Decision DecideUnrecorded(const Placement& placement, const std::string& why, StalePolicy policy);

// enforce: unchanged. warn: a denial becomes an allow carrying the message as a warning.
// dry-run: a denial becomes a plain allow; `would_deny` stays set for logs and metrics.
Decision ApplyMode(Decision decision, EnforcementMode mode);

}  // namespace cgpu
