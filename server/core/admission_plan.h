// Admission plans: what a request needs before it can be decided, as pure functions.
//
// Every request takes the same first step: its route and operation say whether it is judged at
// all (DecidingPoint), and what the cluster state already knows settles most requests at once (a
// pod without cGPU resources, a node without cGPU isolation, a pod bound already). What is left is
// a placement to count, perhaps after reading the pod from the API server first. These functions
// make those choices; the caller (adapters/admission_controller) looks up the cluster state,
// performs the reads and counts. No I/O, no clock, no locks.
//
// Why a binding may read its pod: ACK's GPU-sharing schedulers write the GPU they chose on the
// still-unbound pod and then post the Binding, milliseconds later, and a watch trails that write
// (adapters/admission_controller.h has the sources). So, unless the Binding carries the GPU
// itself or the node has a single GPU (and the pod is one the cache knows, pending), the pod is
// read from the API server and the decision made on what it says.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/decision.h"
#include "core/placement_policy.h"
#include "core/review_facts.h"

namespace cgpu {

// What the cluster state knows of a pod.
struct KnownPod {
  std::string uid;
  bool shares_gpu = false;
  std::string node;       // spec.nodeName: empty while pending
  std::vector<int> gpus;  // the GPU indices written on it
};

// What the cluster state knows of a node.
struct KnownNode {
  bool cgpu_enabled = false;
  std::optional<int> gpu_count;  // aliyun.com/gpu-count capacity, when the node reports it
};

// The enforcement point that decides `facts`: its route's, or kNone (allowed at once) for a
// resource without a route, and for DELETE and CONNECT, which never place anything.
EnforcementPoint DecidingPoint(const ReviewFacts& facts);

// The answer while the cluster state has not been read in full yet: pods per GPU cannot be
// counted, so the API server is asked to retry (503).
Decision NotSyncedDecision();

// The request's object could not be read into facts (`facts.object_error` says why).
Decision BadObjectDecision(const ReviewFacts& facts);

// A binding as far as the cluster state takes it: decided, or a placement still to be made,
// after reading the pod from the API server when `read_pod`.
struct BindingPlan {
  std::optional<Decision> decided;
  bool read_pod = false;
  bool pod_known = false;  // the cluster state holds this very pod (same uid), a cGPU pod
  Placement placement;
  std::string pod_uid;
};

// What the cluster state knows for a binding, looked up by the caller.
struct BindingLookup {
  std::optional<KnownNode> node;  // the Binding's target node
  std::optional<KnownPod> pod;    // the pod of the Binding's namespace/name
  bool synced = false;            // the cluster state has been read in full
  bool can_read_pod = false;      // the API server can be asked for the pod
};

BindingPlan PlanBinding(const ReviewFacts& facts, const BindingLookup& lookup);

// The plan once the pod was read from the API server: `live` is the pod as it is now, nullopt
// when it does not exist. Returns the answer when the read settles it (the pod is gone, was
// replaced, shares no GPU, is bound already); otherwise fills in the pod's GPUs and uid.
std::optional<Decision> ApplyPodRead(BindingPlan& plan, const BindingFacts& binding,
                                     const std::optional<PodFacts>& live);

// The plan when the pod could not be read (`why`, a sentence: "cannot read pod ns/x from the API
// server within 1000 ms"). A pod the cluster state does not know may not be a cGPU pod at all:
// it is `unknown`, answered by `policy`. A known cGPU pod is still placed, its GPU unknown, so the
// node's compatibility is judged all the same.
std::optional<Decision> ApplyFailedPodRead(BindingPlan& plan, const std::string& why,
                                           UnknownPolicy policy);

// The plan when the pod is neither known nor to be read (a cluster-state file is all there is)
// and the Binding names no GPU: `unknown`, answered by `policy`. nullopt when that is not so.
std::optional<Decision> DecideUnreadPod(const BindingPlan& plan, const BindingFacts& binding,
                                        UnknownPolicy policy);

// A pod CREATE with spec.nodeName (it skips the scheduler), or an UPDATE that may move a bound
// pod's GPUs: decided at once, or the placement to count.
struct PodPlan {
  std::optional<Decision> decided;
  Placement placement;
};

// `node_is_cgpu`: nullopt when the pod's node is not known (yet).
PodPlan PlanPodAdmission(const ReviewFacts& facts, std::optional<bool> node_is_cgpu, bool synced);

}  // namespace cgpu
