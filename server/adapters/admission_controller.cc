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
  const EnforcementPoint point = DecidingPoint(facts);
  if (point == EnforcementPoint::kNone) return Allow("not-checked");
  const SteadyTime received = facts.received == SteadyTime{} ? live_.now() : facts.received;
  const SteadyTime deadline = received + live_.deadline;
  switch (point) {
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
  const EnforcementPoint point = DecidingPoint(facts);
  if (point == EnforcementPoint::kBinding) {
    const BindingPlan plan = PlanBinding(facts, LookUp(facts));
    if (plan.decided) return false;
    // Claims are written for every cGPU placement that is not a dry run.
    if (claims_.enabled() && !facts.request.dry_run) return true;
    return plan.read_pod || (reads_.list_pods_on_node && AtLastSlot(plan.placement));
  }
  if (point == EnforcementPoint::kPod && facts.pod && facts.pod->shares_gpu &&
      !facts.pod->node_name.empty()) {
    if (claims_.enabled() && !facts.request.dry_run) return true;
    if (!reads_.list_pods_on_node) return false;
    return AtLastSlot(Placement{facts.pod->Key(), facts.pod->node_name, facts.pod->gpus});
  }
  return false;
}

BindingLookup AdmissionController::LookUp(const ReviewFacts& facts) const {
  BindingLookup lookup;
  lookup.synced = cache_.synced();
  lookup.can_read_pod = static_cast<bool>(reads_.get_pod);
  if (facts.binding) {
    lookup.node = cache_.FindNode(facts.binding->node);
    // The plan reads the pod only for a cGPU (or unknown) node once synced: no copy otherwise.
    if (lookup.synced && (!lookup.node || lookup.node->cgpu_enabled)) {
      lookup.pod = cache_.FindPod(facts.binding->PodKey());
    }
  }
  return lookup;
}

Decision AdmissionController::AdmitBinding(const ReviewFacts& facts, SteadyTime deadline) const {
  BindingPlan plan = PlanBinding(facts, LookUp(facts));
  if (plan.decided) return std::move(*plan.decided);
  const BindingFacts& binding = *facts.binding;
  if (std::optional<Decision> decided = DecideUnreadPod(plan, binding, options_.unknown)) {
    return std::move(*decided);
  }
  if (plan.read_pod) {
    if (std::optional<Decision> decided = ReadPod(plan, binding, deadline)) {
      return std::move(*decided);
    }
  }
  return Place(plan.placement, plan.pod_uid, facts.request.dry_run, deadline);
}

std::optional<Decision> AdmissionController::ReadPod(BindingPlan& plan, const BindingFacts& binding,
                                                     SteadyTime deadline) const {
  const std::string& pod_key = plan.placement.pod;
  const SteadyTime started = live_.now();
  StatusOr<std::optional<PodFacts>> live =
      started < deadline
          ? reads_.get_pod(binding.pod_namespace, binding.pod_name, deadline)
          : StatusOr<std::optional<PodFacts>>(DeadlineExceeded(
                "no time left of the " + Milliseconds(live_.deadline) + " live-read deadline"));
  if (!live.ok()) {
    const bool timed_out = live.status().code() == StatusCode::kDeadlineExceeded;
    Report(LiveRead::kGetPod, timed_out ? "deadline" : "error", started, pod_key,
           live.status().message());
    // The API server cuts a warning at 256 characters: the essentials here, the details in the
    // log line that Report() leads to.
    const std::string why = "cannot read pod " + pod_key + " from the API server" +
                            (timed_out ? " within " + Milliseconds(live_.deadline)
                                       : " (" + live.status().message() + ")");
    return ApplyFailedPodRead(plan, why, options_.unknown);
  }
  Report(LiveRead::kGetPod, live->has_value() ? "ok" : "not-found", started, pod_key);
  return ApplyPodRead(plan, binding, *live);
}

Decision AdmissionController::AdmitPod(const ReviewFacts& facts, SteadyTime deadline) const {
  const std::optional<bool> node_is_cgpu =
      facts.pod ? cache_.NodeIsCgpu(facts.pod->node_name) : std::nullopt;
  PodPlan plan = PlanPodAdmission(facts, node_is_cgpu, cache_.synced());
  if (plan.decided) return std::move(*plan.decided);
  return Place(plan.placement, facts.pod->uid, facts.request.dry_run, deadline,
               ReservationKind::kUnconfirmed);
}

Decision AdmissionController::AdmitNode(const ReviewFacts& facts) const {
  if (!facts.node) return BadObjectDecision(facts);
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
  // Lost compare-and-swaps in a row whose winners claimed no new pod. A loss to another pod's new
  // claim is progress (the count moved, and the GPU fills within its free slots), so only losses
  // that brought nothing new to count are capped; the deadline bounds the rest.
  int stalled = 0;
  std::vector<GpuClaim> last_read;
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
    if (attempt > 1 && HasClaimForANewPod(last_read, read->claims)) stalled = 0;
    last_read = read->claims;
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
    if (++stalled >= claims_.max_stalled_conflicts) {
      finish("conflict-exhausted", written.message());
      return unrecorded("another write came first " + std::to_string(stalled) +
                        " times in a row with no new claim to count");
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
