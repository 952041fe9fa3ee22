#include "core/admission_plan.h"

namespace cgpu {

EnforcementPoint DecidingPoint(const ReviewFacts& facts) {
  if (facts.route == nullptr || facts.request.operation == Operation::kDelete ||
      facts.request.operation == Operation::kConnect) {
    return EnforcementPoint::kNone;
  }
  return facts.route->point;
}

Decision NotSyncedDecision() {
  return Errored("cluster-state-not-synced",
                 "cgpu-guard has not finished reading the cluster's pods and nodes; cannot "
                 "count pods per GPU yet",
                 503);
}

Decision BadObjectDecision(const ReviewFacts& facts) {
  std::string what = "the request";
  if (facts.route != nullptr) {
    switch (facts.route->object) {
      case ObjectKind::kPod:
        what = "the pod";
        break;
      case ObjectKind::kNode:
        what = "the node";
        break;
      case ObjectKind::kBinding:
        what = "the " + std::string(facts.route->path) + " request";
        break;
      case ObjectKind::kNone:
        break;
    }
  }
  return Errored("bad-object", "cannot read " + what + ": " + facts.object_error, 400);
}

BindingPlan PlanBinding(const ReviewFacts& facts, const BindingLookup& lookup) {
  BindingPlan plan;
  if (!facts.binding) {
    plan.decided = BadObjectDecision(facts);
    return plan;
  }
  const BindingFacts& binding = *facts.binding;
  if (lookup.node && !lookup.node->cgpu_enabled) {
    plan.decided = Allow("not-cgpu-node");
    return plan;
  }
  if (!lookup.synced) {
    plan.decided = NotSyncedDecision();
    return plan;
  }

  plan.placement = Placement{binding.PodKey(), binding.node, binding.gpus};
  plan.pod_uid = binding.pod_uid;
  const std::optional<KnownPod>& cached = lookup.pod;
  // The cluster state's copy is this pod unless the uids say otherwise (the Binding's uid is the
  // pod's).
  const bool same_pod =
      cached && (binding.pod_uid.empty() || cached->uid.empty() || cached->uid == binding.pod_uid);
  if (same_pod && !cached->shares_gpu) {
    plan.decided = Allow("not-cgpu-pod");
    return plan;
  }
  if (same_pod && !cached->node.empty()) {
    // The API server refuses to bind a pod that is bound already: nothing to place or reserve.
    plan.decided = Allow("pod-already-bound");
    return plan;
  }
  plan.pod_known = same_pod;
  if (plan.pod_uid.empty() && same_pod) plan.pod_uid = cached->uid;
  // The Binding names the GPU itself, or on a one-GPU node there is only GPU 0: nothing to read,
  // as long as the pod is one the cluster state knows, pending. A pod it does not know is read
  // whatever the Binding says: a reservation is only ever made for a pod that exists.
  if (same_pod && binding.gpus.known()) return plan;
  if (same_pod && lookup.node && lookup.node->gpu_count == 1) return plan;
  if (lookup.can_read_pod) {
    plan.read_pod = true;
  } else if (same_pod) {
    plan.placement.gpus.indices = cached->gpus;  // a cluster-state file: the file is all there is
  }
  return plan;
}

std::optional<Decision> ApplyPodRead(BindingPlan& plan, const BindingFacts& binding,
                                     const std::optional<PodFacts>& live) {
  // The API server refuses a binding of a pod that does not exist.
  if (!live) return Allow("pod-not-found");
  const PodFacts& pod = *live;
  if (!binding.pod_uid.empty() && !pod.uid.empty() && pod.uid != binding.pod_uid) {
    // The pod was deleted and created again under its name: the API server refuses a binding
    // whose uid is not the pod's, so there is nothing to place.
    return Allow("pod-replaced");
  }
  if (!pod.shares_gpu) return Allow("not-cgpu-pod");
  if (!pod.node_name.empty()) return Allow("pod-already-bound");
  // The API server copies the Binding's annotations onto the pod: the Binding's GPU wins.
  if (!binding.gpus.known()) plan.placement.gpus = pod.gpus;
  if (plan.pod_uid.empty()) plan.pod_uid = pod.uid;
  return std::nullopt;
}

std::optional<Decision> ApplyFailedPodRead(BindingPlan& plan, const std::string& why,
                                           UnknownPolicy policy) {
  if (!plan.pod_known) {
    // Whether it is a cGPU pod at all is not known: refusing a DaemonSet's pod because its node
    // is incompatible with cGPU would be wrong.
    return DecideUnknown(
        "pod-unknown",
        why + ", so its cGPU use on node " + plan.placement.node + " was not checked", policy);
  }
  // A cGPU pod: the node's compatibility can still be judged; its GPU cannot.
  plan.placement.gpus = GpuAssignment{};
  plan.placement.gpus.error = why;
  return std::nullopt;
}

std::optional<Decision> DecideUnreadPod(const BindingPlan& plan, const BindingFacts& binding,
                                        UnknownPolicy policy) {
  if (plan.read_pod || plan.pod_known || binding.gpus.known()) return std::nullopt;
  // Not in the cluster state and not to be read: it may or may not be a cGPU pod.
  return DecideUnknown("pod-unknown",
                       "pod " + plan.placement.pod +
                           " is not in cgpu-guard's cluster state, so its cGPU use on node " +
                           plan.placement.node + " was not checked",
                       policy);
}

PodPlan PlanPodAdmission(const ReviewFacts& facts, std::optional<bool> node_is_cgpu, bool synced) {
  PodPlan plan;
  if (!facts.pod) {
    plan.decided = BadObjectDecision(facts);
    return plan;
  }
  const PodFacts& pod = *facts.pod;
  if (!pod.shares_gpu) {
    plan.decided = Allow("not-cgpu-pod");
    return plan;
  }
  if (pod.node_name.empty()) {
    plan.decided = Allow("not-bound");
    return plan;
  }
  if (facts.request.operation == Operation::kUpdate && facts.old_pod &&
      facts.old_pod->node_name == pod.node_name &&
      facts.old_pod->gpus.indices == pod.gpus.indices) {
    // Only a change of GPUs on a bound pod moves it; other updates (labels, status) do not.
    plan.decided = Allow("gpus-unchanged");
    return plan;
  }
  if (node_is_cgpu == false) {
    plan.decided = Allow("not-cgpu-node");
    return plan;
  }
  if (!synced) {
    plan.decided = NotSyncedDecision();
    return plan;
  }
  // The API server names a generateName pod and gives it its uid before validating webhooks see
  // it (k8s.io/apiserver registry/generic/registry/store.go, (*Store).create: name generation and
  // FillObjectMetaSystemFields come before createValidation). Without a name, the uid keys it.
  std::string pod_key = pod.Key();
  if (pod.name.empty()) pod_key = pod.namespace_name + "/(uid " + pod.uid + ")";
  plan.placement = Placement{std::move(pod_key), pod.node_name, pod.gpus};
  return plan;
}

}  // namespace cgpu
