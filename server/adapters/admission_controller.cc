#include "adapters/admission_controller.h"

namespace cgpu {
namespace {

bool IsCoreResource(const AdmissionRequest& request, const char* resource) {
  return request.resource.group.empty() && request.resource.resource == resource;
}

}  // namespace

AdmissionController::AdmissionController(ClusterCache& cache, PolicyOptions options,
                                         ClusterReads reads,
                                         std::function<std::string()> stale_reason)
    : cache_(cache),
      options_(options),
      reads_(std::move(reads)),
      stale_reason_(std::move(stale_reason)) {}

Decision AdmissionController::Admit(const ReviewFacts& facts) const {
  return ApplyMode(Decide(facts), options_.mode);
}

Decision AdmissionController::Decide(const ReviewFacts& facts) const {
  const AdmissionRequest& request = facts.request;
  if (request.operation == Operation::kDelete || request.operation == Operation::kConnect) {
    return Allow("not-checked");
  }
  if (IsCoreResource(request, "pods")) {
    if (request.sub_resource == "binding") return AdmitBinding(facts);
    if (request.sub_resource.empty()) return AdmitPod(facts);
    return Allow("not-checked");
  }
  if (IsCoreResource(request, "nodes")) return AdmitNode(facts);
  return Allow("not-checked");
}

Decision AdmissionController::AdmitBinding(const ReviewFacts& facts) const {
  if (!facts.binding) {
    return Errored("bad-object", "cannot read the pods/binding request: " + facts.object_error,
                   400);
  }
  const BindingFacts& binding = *facts.binding;
  const std::optional<bool> node_is_cgpu = cache_.NodeIsCgpu(binding.node);
  if (node_is_cgpu == false) return Allow("not-cgpu-node");
  if (!cache_.synced()) {
    return Errored("cluster-state-not-synced",
                   "cgpu-guard has not finished reading the cluster's pods and nodes; cannot "
                   "count pods per GPU yet",
                   503);
  }

  const std::string pod_key = binding.PodKey();
  std::optional<ClusterCache::PodInfo> pod = cache_.FindPod(pod_key);
  if (!pod && reads_.get_pod) {
    // Created moments ago and not in the watch yet: ask the API server.
    StatusOr<std::optional<PodFacts>> fetched =
        reads_.get_pod(binding.pod_namespace, binding.pod_name);
    if (fetched.ok() && fetched->has_value()) {
      cache_.UpsertPodFacts(**fetched);
      pod = cache_.FindPod(pod_key);
    }
  }
  if (pod && !pod->shares_gpu) return Allow("not-cgpu-pod");

  Placement placement{pod_key, binding.node, binding.gpus};
  if (!placement.gpus.known() && pod) placement.gpus.indices = pod->gpus;
  if (!pod) {
    // Not in the cache and not to be read: it may or may not be a cGPU pod, and refusing a
    // DaemonSet's pod because its node is incompatible with cGPU would be wrong.
    Decision unknown = Allow("pod-unknown");
    if (options_.unknown == UnknownPolicy::kDeny) {
      return Deny("pod-unknown", "pod " + pod_key +
                                     " is not in cgpu-guard's cluster state, so "
                                     "its cGPU use on node " +
                                     binding.node + " cannot be checked");
    }
    if (options_.unknown == UnknownPolicy::kWarn) {
      unknown.warnings.push_back("cgpu-guard: pod " + pod_key +
                                 " is not in its cluster state; GPU limits were not checked");
    }
    return unknown;
  }
  return Place(placement, pod_key, facts.request.dry_run);
}

Decision AdmissionController::AdmitPod(const ReviewFacts& facts) const {
  if (!facts.pod) {
    return Errored("bad-object", "cannot read the pod: " + facts.object_error, 400);
  }
  const PodFacts& pod = *facts.pod;
  if (!pod.shares_gpu) return Allow("not-cgpu-pod");
  if (pod.node_name.empty()) return Allow("not-bound");
  if (facts.request.operation == Operation::kUpdate) {
    // Only a change of GPUs on a bound pod moves it; other updates (labels, status) do not.
    if (facts.old_pod && facts.old_pod->node_name == pod.node_name &&
        facts.old_pod->gpus.indices == pod.gpus.indices) {
      return Allow("gpus-unchanged");
    }
  }
  if (cache_.NodeIsCgpu(pod.node_name) == false) return Allow("not-cgpu-node");
  if (!cache_.synced()) {
    return Errored("cluster-state-not-synced",
                   "cgpu-guard has not finished reading the cluster's pods and nodes; cannot "
                   "count pods per GPU yet",
                   503);
  }
  std::string pod_key = pod.Key();
  if (pod.name.empty()) pod_key = pod.namespace_name + "/(generated " + facts.request.uid + ")";
  return Place(Placement{pod_key, pod.node_name, pod.gpus}, pod_key, facts.request.dry_run);
}

Decision AdmissionController::AdmitNode(const ReviewFacts& facts) const {
  if (!facts.node) {
    return Errored("bad-object", "cannot read the node: " + facts.object_error, 400);
  }
  const NodeEvaluation evaluation = EvaluateNode(*facts.node, cache_.rules());
  return DecideNodeChange(facts.request, facts.old_node ? &*facts.old_node : nullptr, *facts.node,
                          evaluation, options_);
}

Decision AdmissionController::Place(const Placement& placement, const std::string& pod_key,
                                    bool dry_run) const {
  if (stale_reason_) {
    if (const std::string why = stale_reason_(); !why.empty()) {
      return DecideOnStaleState(placement, why, options_.stale);
    }
  }
  if (reads_.list_pods_on_node) {
    const std::vector<int> gpus = placement.gpus.indices;
    std::optional<int> left = cache_.SlotsLeft(placement.node, gpus, pod_key, options_);
    if (left && *left <= 1) {
      // The last slot: another replica may have just given it away. Re-read the node's pods.
      StatusOr<std::vector<PodFacts>> pods = reads_.list_pods_on_node(placement.node);
      if (pods.ok()) {
        for (const PodFacts& pod : *pods) cache_.UpsertPodFacts(pod);
      }
    }
  }
  return cache_.Place(placement, pod_key, options_, /*reserve=*/!dry_run);
}

}  // namespace cgpu
