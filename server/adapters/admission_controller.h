// AdmissionController: the webhook's decision for one request, over the cluster cache.
//
// Routes each request to its enforcement point and applies the mode:
//   pods/binding CREATE            the pod onto the Binding's node, on the GPUs written on the pod
//                                  (or on the Binding);
//   pod CREATE with spec.nodeName  the pod onto that node (it skips the scheduler);
//   pod UPDATE                     only when a bound pod's GPU assignment changes;
//   node CREATE/UPDATE             only when it newly enables cGPU isolation;
//   everything else                allowed at once.
// Pods that request no cGPU resources and nodes without cGPU isolation are allowed without
// counting. A dry-run request is judged but reserves nothing.
//
// Live reads (optional, injected) cover what a watch cannot promise: a pod bound moments after
// it was created may not be in the cache yet (`get_pod`), and when a GPU has one slot left the
// node's pods are re-read from the API server (`list_pods_on_node`), which narrows the window in
// which two replicas can both give away that slot.
//
// `stale_reason` (optional, injected) says why the cache cannot be trusted right now ("" when it
// can): a placement that needs pod counts is then answered by PolicyOptions::stale instead of from
// the cache. Thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "adapters/cluster_cache.h"
#include "core/decision.h"
#include "core/placement_policy.h"
#include "core/review_facts.h"
#include "core/status.h"

namespace cgpu {

struct ClusterReads {
  // The pod as the API server has it now; nullopt when it does not exist.
  std::function<StatusOr<std::optional<PodFacts>>(const std::string& pod_namespace,
                                                  const std::string& pod_name)>
      get_pod;
  // Every pod bound to `node`, read consistently.
  std::function<StatusOr<std::vector<PodFacts>>(const std::string& node)> list_pods_on_node;
};

class AdmissionController {
 public:
  AdmissionController(ClusterCache& cache, PolicyOptions options, ClusterReads reads = {},
                      std::function<std::string()> stale_reason = {});

  Decision Admit(const ReviewFacts& facts) const;
  const PolicyOptions& options() const { return options_; }

 private:
  Decision Decide(const ReviewFacts& facts) const;
  Decision AdmitBinding(const ReviewFacts& facts) const;
  Decision AdmitPod(const ReviewFacts& facts) const;
  Decision AdmitNode(const ReviewFacts& facts) const;
  // Places `placement` for `pod_key`, re-reading the node's pods first when a GPU is at its last
  // slot and live reads are available.
  Decision Place(const Placement& placement, const std::string& pod_key, bool dry_run) const;

  ClusterCache& cache_;
  const PolicyOptions options_;
  const ClusterReads reads_;
  const std::function<std::string()> stale_reason_;
};

}  // namespace cgpu
