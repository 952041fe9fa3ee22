// AdmissionController: the webhook's decision for one request, over the cluster cache.
//
// Each request goes to the enforcement point its route names (core/resource_routes.h), then the
// mode applies:
//   binding (pods/binding, bindings)  the pod onto the Binding's node, on the GPUs the scheduler
//                                      just wrote on the pod (or on the Binding);
//   pod CREATE with spec.nodeName      the pod onto that node (it skips the scheduler);
//   pod UPDATE                         only when a bound pod's GPU assignment changes;
//   node CREATE/UPDATE                 only when it newly enables cGPU isolation;
//   everything else                    allowed at once.
// Pods that request no cGPU resources and nodes without cGPU isolation are allowed without
// counting and without any live read. A dry-run request is judged but reserves nothing.
//
// The real ACK flow, and why a binding reads its pod. Both of ACK's GPU-sharing schedulers write
// the GPU they chose on the still-unbound pod and then post the Binding, milliseconds later:
// gpushare-scheduler-extender (pkg/cache/nodeinfo.go, Allocate) updates the pod with
// ALIYUN_COM_GPU_MEM_IDX and friends, then binds with a Binding of metadata.name, metadata.uid and
// target only; the scheduler-framework plugin writes scheduler.framework.gpushare.allocation in
// Reserve, then kube-scheduler's DefaultBinder posts a Binding of metadata.namespace, name, uid
// and target. A watch trails that write, so at the binding the cache may hold the pod without its
// allocation, with the allocation of an earlier attempt (a denied binding is retried, perhaps on
// another GPU), or an earlier pod of the same name (another uid). So, unless the Binding carries
// the allocation itself or the node has a single GPU (and the pod is one the cache knows), a
// binding of a cGPU (or not yet known) pod
// onto a cGPU node reads the pod from the API server (a quorum GET: the scheduler's write
// committed before it sent the Binding) and decides on that. When a GPU is down to its last slot
// the node's pods are read again too (served from the API server's watch cache, at least as new
// as ours), which narrows the window in which two replicas both give that slot away.
//
// Live reads: all the reads of one review share one deadline (LiveReadOptions::deadline, counted
// from the review's arrival). A read that fails or runs out of time leaves the GPU unknown: the
// unknown policy applies and the message says why. What a live read returns is used for this
// decision only and never written to the cache, so it can never roll the cache back.
//
// `stale_reason` (optional, injected) says why the cache cannot be trusted right now ("" when it
// can): a placement that needs pod counts is then answered by PolicyOptions::stale instead of from
// the cache. Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "adapters/cluster_cache.h"
#include "core/admission_plan.h"
#include "core/decision.h"
#include "core/gpu_claims.h"
#include "core/placement_policy.h"
#include "core/review_facts.h"
#include "core/status.h"

namespace cgpu {

// Reads of the API server on the request path. Each must return by `deadline` (a transport
// timeout, or DeadlineExceeded).
struct ClusterReads {
  // The pod as the API server has it now (a quorum read); nullopt when it does not exist.
  std::function<StatusOr<std::optional<PodFacts>>(const std::string& pod_namespace,
                                                  const std::string& pod_name, SteadyTime deadline)>
      get_pod;
  // Every pod bound to `node`, from a state at least as new as the cache's.
  std::function<StatusOr<std::vector<PodFacts>>(const std::string& node, SteadyTime deadline)>
      list_pods_on_node;
};

// One claim attempt sequence, as it went: for metrics and logs.
struct ClaimReport {
  // "claimed" (written, placement allowed), "full" (the count with every claim says no),
  // "conflict-exhausted" (lost every compare-and-swap), "deadline", "error".
  std::string_view outcome;
  int conflicts = 0;  // compare-and-swaps lost on the way
  int expired = 0;    // claims found expired and dropped by this write
  std::chrono::duration<double> took{0};
  std::string node;
  std::string error;
};

// Where the replicas record the placements they allow (core/gpu_claims.h says why): a node's
// claims, read and written with a compare-and-swap. Both must return by `deadline`.
struct ClaimStore {
  // The node's claims as the API server has them now (a quorum read).
  std::function<StatusOr<NodeClaims>(const std::string& node, SteadyTime deadline)> read;
  // Replaces the node's claims with `claims.claims` if they are still at `claims.version`
  // (created when `claims.exists` is false). kAborted when another write came first.
  std::function<Status(const std::string& node, const NodeClaims& claims, SteadyTime deadline)>
      write;
  std::string replica;  // this replica's name, written on its claims
  // How long a claim counts: longer than any replica's watch may trail the API server. A claim
  // for a pod that is not known to exist yet (pod CREATE) counts for `unconfirmed_ttl`.
  std::chrono::milliseconds ttl{30'000};
  std::chrono::milliseconds unconfirmed_ttl{5'000};
  // A lost compare-and-swap is retried after a short random wait, within the deadline. A loss to
  // a new pod's claim (another replica's, or another binding's of this one) is progress and is
  // retried until the deadline; this many losses in a row that claimed no new pod end the tries.
  int max_stalled_conflicts = 8;
  std::function<int64_t()> now_unix_ms;             // the wall clock: claims expire at an instant
  std::function<double()> random;                   // in [0, 1), for the waits between attempts
  std::function<void(const ClaimReport&)> observe;  // may be empty
  // Waits between attempts (tests count the waits instead of taking them).
  std::function<void(std::chrono::microseconds)> sleep = [](std::chrono::microseconds wait) {
    std::this_thread::sleep_for(wait);
  };

  bool enabled() const { return read && write; }
};

enum class LiveRead { kGetPod, kListNodePods };
std::string_view ToString(LiveRead read);  // "get-pod", "list-node-pods"

// One live read, as it went: for metrics and logs.
struct LiveReadReport {
  LiveRead read = LiveRead::kGetPod;
  // "ok", "not-found" (get-pod: no such pod), "deadline" (no answer in time, or no time left to
  // ask), "error" (the API server could not be reached or refused).
  std::string_view outcome;
  std::chrono::duration<double> took{0};
  std::string target;  // "namespace/pod" or the node
  std::string error;   // for deadline and error
};

struct LiveReadOptions {
  // The time all the live reads of one review may take together, counted from its arrival. Keep
  // it well under the webhook's timeoutSeconds: past it the unknown policy answers.
  std::chrono::milliseconds deadline{1'000};
  std::function<SteadyTime()> now = [] { return std::chrono::steady_clock::now(); };
  // Told of every live read (may be empty).
  std::function<void(const LiveReadReport&)> observe;
};

class AdmissionController {
 public:
  AdmissionController(ClusterCache& cache, PolicyOptions options, ClusterReads reads = {},
                      std::function<std::string()> stale_reason = {}, LiveReadOptions live = {},
                      ClaimStore claims = {});

  Decision Admit(const ReviewFacts& facts) const;
  // Whether deciding `facts` may wait on the API server: the server then decides it off its event
  // loop. Cache lookups only; requests of non-cGPU pods and nodes always answer false.
  bool MayReadLive(const ReviewFacts& facts) const;
  const PolicyOptions& options() const { return options_; }

 private:
  Decision Decide(const ReviewFacts& facts) const;
  // What the cache knows for a binding request.
  BindingLookup LookUp(const ReviewFacts& facts) const;
  Decision AdmitBinding(const ReviewFacts& facts, SteadyTime deadline) const;
  // Reads the pod of `binding` live and applies what it says to `plan`: the answer when that
  // settles it.
  std::optional<Decision> ReadPod(BindingPlan& plan, const BindingFacts& binding,
                                  SteadyTime deadline) const;
  Decision AdmitPod(const ReviewFacts& facts, SteadyTime deadline) const;
  Decision AdmitNode(const ReviewFacts& facts) const;
  // A placement for `pod_uid`, counted on the cache, re-reading the node's pods first when a GPU
  // is at its last slot and there is time left.
  Decision Place(const Placement& placement, const std::string& pod_uid, bool dry_run,
                 SteadyTime deadline, ReservationKind kind = ReservationKind::kPodExists) const;
  // Place() with the replicas' claims counted too, allowing only once this placement's claim is
  // written (ClaimStore). `fresh`: the node's pods from a live read, when there was one.
  Decision PlaceClaimed(const Placement& placement, const std::string& pod_uid,
                        std::vector<PodFacts> fresh, SteadyTime deadline,
                        ReservationKind kind) const;
  bool AtLastSlot(const Placement& placement) const;
  void Report(LiveRead read, std::string_view outcome, SteadyTime started, std::string target,
              std::string error = "") const;

  ClusterCache& cache_;
  const PolicyOptions options_;
  const ClusterReads reads_;
  const std::function<std::string()> stale_reason_;
  const LiveReadOptions live_;
  const ClaimStore claims_;
};

}  // namespace cgpu
