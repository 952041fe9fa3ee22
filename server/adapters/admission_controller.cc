#include "adapters/admission_controller.h"

#include "core/backoff.h"

namespace cgpu {
namespace {

// The wait after a lost compare-and-swap: a random share of 1 ms, doubling up to 16 ms.
constexpr std::chrono::microseconds kFirstConflictWait = std::chrono::milliseconds(1);
constexpr std::chrono::microseconds kMaxConflictWait = std::chrono::milliseconds(16);

std::string Milliseconds(std::chrono::milliseconds duration) {
  return std::to_string(duration.count()) + " ms";
}

}  // namespace

std::string_view ToString(LiveRead read) {
  return read == LiveRead::kGetPod ? "get-pod" : "list-node-pods";
}

AdmissionController::AdmissionController(ClusterCache& cache, PolicyOptions options,
                                         ClusterReads reads,
                                         std::function<std::string()> stale_reason,
                                         LiveReadOptions live, ClaimStore claims)
    : cache_(cache),
      options_(options),
      reads_(std::move(reads)),
      stale_reason_(std::move(stale_reason)),
      live_(std::move(live)),
      claims_(std::move(claims)) {}

Decision AdmissionController::Admit(const ReviewFacts& facts) const {
  return ApplyMode(Decide(facts), options_.mode);
}

Decision AdmissionController::Decide(const ReviewFacts& facts) const {
  const AdmissionRequest& request = facts.request;
  if (facts.route == nullptr || request.operation == Operation::kDelete ||
      request.operation == Operation::kConnect) {
    return Allow("not-checked");
  }
  const SteadyTime received = facts.received == SteadyTime{} ? live_.now() : facts.received;
  const SteadyTime deadline = received + live_.deadline;
  switch (facts.route->point) {
    case EnforcementPoint::kBinding:
      return AdmitBinding(facts, deadline);
    case EnforcementPoint::kPod:
      return AdmitPod(facts, deadline);
    case EnforcementPoint::kNode:
      return AdmitNode(facts);
    case EnforcementPoint::kNone:
      break;
  }
  return Allow("not-checked");
}

bool AdmissionController::MayReadLive(const ReviewFacts& facts) const {
  if (!reads_.get_pod && !reads_.list_pods_on_node && !claims_.enabled()) return false;
  if (facts.route == nullptr || facts.request.operation == Operation::kDelete ||
      facts.request.operation == Operation::kConnect) {
    return false;
  }
  if (facts.route->point == EnforcementPoint::kBinding) {
    const BindingPlan plan = PlanBinding(facts);
    if (plan.decided) return false;
    // Claims are written for every cGPU placement that is not a dry run.
    if (claims_.enabled() && !facts.request.dry_run) return true;
    return plan.read_pod || (reads_.list_pods_on_node && AtLastSlot(plan.placement));
  }
  if (facts.route->point == EnforcementPoint::kPod && facts.pod && facts.pod->shares_gpu &&
      !facts.pod->node_name.empty()) {
    if (claims_.enabled() && !facts.request.dry_run) return true;
    if (!reads_.list_pods_on_node) return false;
    return AtLastSlot(Placement{facts.pod->Key(), facts.pod->node_name, facts.pod->gpus});
  }
  return false;
}

std::optional<Decision> AdmissionController::NotSynced() const {
  if (cache_.synced()) return std::nullopt;
  return Errored("cluster-state-not-synced",
                 "cgpu-guard has not finished reading the cluster's pods and nodes; cannot "
                 "count pods per GPU yet",
                 503);
}

AdmissionController::BindingPlan AdmissionController::PlanBinding(const ReviewFacts& facts) const {
  BindingPlan plan;
  if (!facts.binding) {
    plan.decided = Errored(
        "bad-object",
        "cannot read the " + std::string(facts.route->path) + " request: " + facts.object_error,
        400);
    return plan;
  }
  const BindingFacts& binding = *facts.binding;
  const std::optional<ClusterCache::NodeInfo> node = cache_.FindNode(binding.node);
  if (node && !node->cgpu_enabled) {
    plan.decided = Allow("not-cgpu-node");
    return plan;
  }
  if (std::optional<Decision> not_synced = NotSynced()) {
    plan.decided = std::move(not_synced);
    return plan;
  }

  plan.placement = Placement{binding.PodKey(), binding.node, binding.gpus};
  plan.pod_uid = binding.pod_uid;
  const std::optional<ClusterCache::PodInfo> cached = cache_.FindPod(plan.placement.pod);
  // The cache's copy is this pod unless the uids say otherwise (the Binding's uid is the pod's).
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
  // as long as the pod is one the cache knows, pending. A pod the cache does not know is read
  // whatever the Binding says: a reservation is only ever made for a pod that exists.
  if (same_pod && binding.gpus.known()) return plan;
  if (same_pod && node && node->gpu_count == 1) return plan;
  if (reads_.get_pod) {
    plan.read_pod = true;
  } else if (same_pod) {
    plan.placement.gpus.indices = cached->gpus;  // cluster-state file: the file is all there is
  }
  return plan;
}

Decision AdmissionController::AdmitBinding(const ReviewFacts& facts, SteadyTime deadline) const {
  BindingPlan plan = PlanBinding(facts);
  if (plan.decided) return std::move(*plan.decided);
  Placement& placement = plan.placement;
  const BindingFacts& binding = *facts.binding;

  if (plan.read_pod) {
    const SteadyTime started = live_.now();
    StatusOr<std::optional<PodFacts>> live =
        started < deadline
            ? reads_.get_pod(binding.pod_namespace, binding.pod_name, deadline)
            : StatusOr<std::optional<PodFacts>>(DeadlineExceeded(
                  "no time left of the " + Milliseconds(live_.deadline) + " live-read deadline"));
    if (!live.ok()) {
      const bool timed_out = live.status().code() == StatusCode::kDeadlineExceeded;
      Report(LiveRead::kGetPod, timed_out ? "deadline" : "error", started, placement.pod,
             live.status().message());
      // The API server cuts a warning at 256 characters: the essentials here, the details in the
      // log line that Report() leads to.
      const std::string why = "cannot read pod " + placement.pod + " from the API server" +
                              (timed_out ? " within " + Milliseconds(live_.deadline)
                                         : " (" + live.status().message() + ")");
      if (!plan.pod_known) {
        // Whether it is a cGPU pod at all is not known: refusing a DaemonSet's pod because its
        // node is incompatible with cGPU would be wrong.
        return DecideUnknown(
            "pod-unknown", why + ", so its cGPU use on node " + placement.node + " was not checked",
            options_.unknown);
      }
      // A cGPU pod: the node's compatibility can still be judged; its GPU cannot.
      placement.gpus = GpuAssignment{};
      placement.gpus.error = why;
      return Place(placement, plan.pod_uid, facts.request.dry_run, deadline);
    }
    if (!live->has_value()) {
      Report(LiveRead::kGetPod, "not-found", started, placement.pod);
      // The API server refuses a binding of a pod that does not exist.
      return Allow("pod-not-found");
    }
    Report(LiveRead::kGetPod, "ok", started, placement.pod);
    const PodFacts& pod = **live;
    if (!binding.pod_uid.empty() && !pod.uid.empty() && pod.uid != binding.pod_uid) {
      // The pod was deleted and created again under its name: the API server refuses a binding
      // whose uid is not the pod's, so there is nothing to place.
      return Allow("pod-replaced");
    }
    if (!pod.shares_gpu) return Allow("not-cgpu-pod");
    if (!pod.node_name.empty()) return Allow("pod-already-bound");
    // The API server copies the Binding's annotations onto the pod: the Binding's GPU wins.
    if (!binding.gpus.known()) placement.gpus = pod.gpus;
    if (plan.pod_uid.empty()) plan.pod_uid = pod.uid;
  } else if (!plan.pod_known && !binding.gpus.known()) {
    // Not in the cache and not to be read (a cluster-state file): it may or may not be a cGPU pod.
    return DecideUnknown("pod-unknown",
                         "pod " + placement.pod +
                             " is not in cgpu-guard's cluster state, so its "
                             "cGPU use on node " +
                             placement.node + " was not checked",
                         options_.unknown);
  }
  return Place(placement, plan.pod_uid, facts.request.dry_run, deadline);
}

Decision AdmissionController::AdmitPod(const ReviewFacts& facts, SteadyTime deadline) const {
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
  if (std::optional<Decision> not_synced = NotSynced()) return std::move(*not_synced);
  // The API server names a generateName pod and gives it its uid before validating webhooks see
  // it (k8s.io/apiserver registry/generic/registry/store.go, (*Store).create: name generation and
  // FillObjectMetaSystemFields come before createValidation). Without a name, the uid keys it.
  std::string pod_key = pod.Key();
  if (pod.name.empty()) pod_key = pod.namespace_name + "/(uid " + pod.uid + ")";
  return Place(Placement{pod_key, pod.node_name, pod.gpus}, pod.uid, facts.request.dry_run,
               deadline, ReservationKind::kUnconfirmed);
}

Decision AdmissionController::AdmitNode(const ReviewFacts& facts) const {
  if (!facts.node) {
    return Errored("bad-object", "cannot read the node: " + facts.object_error, 400);
  }
  const NodeEvaluation evaluation = EvaluateNode(*facts.node, cache_.rules());
  return DecideNodeChange(facts.request, facts.old_node ? &*facts.old_node : nullptr, *facts.node,
                          evaluation, options_);
}

bool AdmissionController::AtLastSlot(const Placement& placement) const {
  const std::optional<int> left =
      cache_.SlotsLeft(placement.node, placement.gpus.indices, placement.pod, options_);
  return left && *left <= 1;
}

Decision AdmissionController::Place(const Placement& placement, const std::string& pod_uid,
                                    bool dry_run, SteadyTime deadline, ReservationKind kind) const {
  if (stale_reason_) {
    if (const std::string why = stale_reason_(); !why.empty()) {
      return DecideOnStaleState(placement, why, options_.stale);
    }
  }
  std::optional<std::vector<PodFacts>> fresh;
  if (reads_.list_pods_on_node && AtLastSlot(placement)) {
    // The last slot: another replica may have just given it away. Count the node's pods again,
    // if there is time left; else the cache's count is what there is.
    const SteadyTime started = live_.now();
    if (started >= deadline) {
      Report(LiveRead::kListNodePods, "deadline", started, placement.node,
             "no time left of the " + Milliseconds(live_.deadline) + " live-read deadline");
    } else {
      StatusOr<std::vector<PodFacts>> pods = reads_.list_pods_on_node(placement.node, deadline);
      if (pods.ok()) {
        Report(LiveRead::kListNodePods, "ok", started, placement.node);
        fresh = std::move(pods).value();
      } else {
        const bool timed_out = pods.status().code() == StatusCode::kDeadlineExceeded;
        Report(LiveRead::kListNodePods, timed_out ? "deadline" : "error", started, placement.node,
               pods.status().message());
      }
    }
  }
  if (claims_.enabled() && !dry_run) {
    return PlaceClaimed(placement, pod_uid, fresh ? std::move(*fresh) : std::vector<PodFacts>{},
                        deadline, kind);
  }
  return cache_.Place(placement, placement.pod, pod_uid, options_, /*reserve=*/!dry_run,
                      fresh ? &*fresh : nullptr, kind);
}

Decision AdmissionController::PlaceClaimed(const Placement& placement, const std::string& pod_uid,
                                           std::vector<PodFacts> fresh, SteadyTime deadline,
                                           ReservationKind kind) const {
  const std::vector<int> gpus = cache_.CountedGpus(placement);
  if (gpus.empty()) {
    // Nothing would be counted (not a cGPU node the cache knows, or an unknown GPU): nothing to
    // record either.
    return cache_.Place(placement, placement.pod, pod_uid, options_, /*reserve=*/true, &fresh,
                        kind);
  }
  const SteadyTime started = live_.now();
  ClaimReport report;
  report.node = placement.node;
  const auto finish = [&](std::string_view outcome, std::string error = "") {
    if (!claims_.observe) return;
    report.outcome = outcome;
    report.error = std::move(error);
    report.took = live_.now() - started;
    claims_.observe(report);
  };
  // Without its claim written, a placement could be the one that overfills the GPU.
  const auto unrecorded = [&](const std::string& why) {
    return DecideUnrecorded(placement, why, options_.stale);
  };
  // One claim per pod: its uid, or its key when the uid is not known.
  const std::string claim_uid = pod_uid.empty() ? "key:" + placement.pod : pod_uid;
  const auto ttl = kind == ReservationKind::kPodExists ? claims_.ttl : claims_.unconfirmed_ttl;
  for (int attempt = 1;; ++attempt) {
    if (live_.now() >= deadline) {
      finish("deadline", "no time left");
      return unrecorded("no time left of the " + Milliseconds(live_.deadline) + " deadline");
    }
    StatusOr<NodeClaims> read = claims_.read(placement.node, deadline);
    if (!read.ok()) {
      const bool timed_out = read.status().code() == StatusCode::kDeadlineExceeded;
      finish(timed_out ? "deadline" : "error", read.status().message());
      return unrecorded(read.status().message());
    }
    const int64_t now = claims_.now_unix_ms();
    std::vector<GpuClaim> open = OpenClaims(read->claims, now);
    const std::vector<PodFacts> counted = WithClaimedPods(fresh, open, placement.node, claim_uid);
    Decision decision = cache_.Place(placement, placement.pod, pod_uid, options_,
                                     /*reserve=*/false, &counted, kind);
    if (!decision.allowed()) {
      finish("full");  // denied on the count with every replica's claims: nothing to record
      return decision;
    }
    const int expired = static_cast<int>(read->claims.size() - open.size());
    NodeClaims next;
    next.claims = WithClaim(std::move(open),
                            GpuClaim{claim_uid, placement.pod, gpus,
                                     now + static_cast<int64_t>(ttl.count()), claims_.replica});
    next.version = read->version;
    next.exists = read->exists;
    const Status written = claims_.write(placement.node, next, deadline);
    if (written.ok()) {
      cache_.Reserve(placement, placement.pod, pod_uid, kind);
      report.expired = expired;
      finish("claimed");
      return decision;
    }
    if (written.code() != StatusCode::kAborted) {
      const bool timed_out = written.code() == StatusCode::kDeadlineExceeded;
      finish(timed_out ? "deadline" : "error", written.message());
      return unrecorded(written.message());
    }
    ++report.conflicts;
    if (attempt >= claims_.max_attempts) {
      finish("conflict-exhausted", written.message());
      return unrecorded("another replica's write came first " + std::to_string(attempt) +
                        " times in a row");
    }
    // Another replica wrote first: read again and count its claim. A short random wait, growing
    // with each loss (1, 2, 4, 8, 16 ms at most), spreads the replicas that lost together.
    const double spread = claims_.random ? claims_.random() : 0.5;
    const std::chrono::microseconds wait =
        BackoffDelay(kFirstConflictWait, kMaxConflictWait, attempt - 1, spread);
    if (claims_.sleep) claims_.sleep(wait);
  }
}

void AdmissionController::Report(LiveRead read, std::string_view outcome, SteadyTime started,
                                 std::string target, std::string error) const {
  if (!live_.observe) return;
  live_.observe(
      LiveReadReport{read, outcome, live_.now() - started, std::move(target), std::move(error)});
}

}  // namespace cgpu
