#include "shell/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>

namespace cgpu {
namespace {

template <typename Array, typename Value>
size_t IndexOf(const Array& values, const Value& value) {
  return static_cast<size_t>(std::find(values.begin(), values.end(), value) - values.begin());
}

}  // namespace

Metrics::Metrics(std::string_view version) : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;

  BuildGauge()
      .Name("cgpu_guard_build_info")
      .Help("Always 1; the version label names the running build.")
      .Register(*registry_)
      .Add({{"version", std::string(version)}})
      .Set(1);

  auto& requests = BuildCounter()
                       .Name("cgpu_guard_admission_requests_total")
                       .Help("Admission reviews answered, by resource, operation and verdict.")
                       .Register(*registry_);
  for (size_t r = 0; r < kResourceLabels; ++r) {
    const std::string resource(r < kResourceRoutes.size() ? kResourceRoutes[r].path : "other");
    for (size_t o = 0; o < kOperations.size(); ++o) {
      for (size_t v = 0; v < kVerdicts.size(); ++v) {
        requests_[(r * kOperations.size() + o) * kVerdicts.size() + v] =
            &requests.Add({{"resource", resource},
                           {"operation", std::string(ToString(kOperations[o]))},
                           {"verdict", std::string(ToString(kVerdicts[v]))}});
      }
    }
  }

  bad_requests_family_ = &BuildCounter()
                              .Name("cgpu_guard_admission_bad_requests_total")
                              .Help("Requests refused before a decision, by reason.")
                              .Register(*registry_);

  decision_seconds_ =
      &BuildHistogram()
           .Name("cgpu_guard_decision_duration_seconds")
           .Help("Time from a complete request body to an encoded answer (decode, decide, encode).")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.00001, 0.000025, 0.00005, 0.0001,
                                                            0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                            0.01, 0.025, 0.1, 1});
  auto& shed = BuildCounter()
                   .Name("cgpu_guard_admission_shed_total")
                   .Help(
                       "Load the webhook port turned away, by reason: connections (past "
                       "--max-connections, closed on accept), buffered-bytes (past "
                       "--max-buffered-bytes, answered 503).")
                   .Register(*registry_);
  shed_connections_ = &shed.Add({{"reason", "connections"}});
  shed_buffered_bytes_ = &shed.Add({{"reason", "buffered-bytes"}});
  auto& live_reads =
      BuildCounter()
          .Name("cgpu_guard_live_reads_total")
          .Help(
              "Reads of the API server made to decide a review (the bound pod, a last-slot "
              "recount), by read and outcome: ok, not-found, deadline (past --live-read-deadline: "
              "the unknown policy answered), error.")
          .Register(*registry_);
  auto& live_read_seconds =
      BuildHistogram()
          .Name("cgpu_guard_live_read_duration_seconds")
          .Help("How long a read of the API server made to decide a review took.")
          .Register(*registry_);
  for (size_t r = 0; r < kLiveReads.size(); ++r) {
    for (size_t o = 0; o < kLiveReadOutcomes.size(); ++o) {
      live_reads_[r * kLiveReadOutcomes.size() + o] = &live_reads.Add(
          {{"read", std::string(kLiveReads[r])}, {"outcome", std::string(kLiveReadOutcomes[o])}});
    }
    live_read_seconds_[r] = &live_read_seconds.Add(
        {{"read", std::string(kLiveReads[r])}},
        prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1, 0.25, 0.5, 1, 2.5});
  }
  auto& claims = BuildCounter()
                     .Name("cgpu_guard_claims_total")
                     .Help(
                         "cGPU placements through the replicas' claims (--arbiter=claims), by "
                         "outcome: claimed (recorded, allowed), full (denied on the count with "
                         "every replica's claims), "
                         "conflict-exhausted, deadline, error (not recorded: --stale-policy "
                         "answered).")
                     .Register(*registry_);
  for (size_t o = 0; o < kClaimOutcomes.size(); ++o) {
    claims_[o] = &claims.Add({{"outcome", std::string(kClaimOutcomes[o])}});
  }
  claim_conflicts_ = &BuildCounter()
                          .Name("cgpu_guard_claim_conflicts_total")
                          .Help(
                              "Claim writes another replica's write beat (409 from the API "
                              "server); each was read again, recounted and decided again.")
                          .Register(*registry_)
                          .Add({});
  claims_expired_ = &BuildCounter()
                         .Name("cgpu_guard_claims_expired_total")
                         .Help(
                             "Claims found past --claim-ttl and dropped from their Lease by a "
                             "write (a pod bound long since, or a placement that never happened).")
                         .Register(*registry_)
                         .Add({});
  claim_seconds_ =
      &BuildHistogram()
           .Name("cgpu_guard_claim_duration_seconds")
           .Help(
               "Time a placement's claim added to its review: reading the node's "
               "Lease, writing it, and any retries.")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  in_flight_ = &BuildGauge()
                    .Name("cgpu_guard_in_flight_requests")
                    .Help("Admission reviews being decided right now.")
                    .Register(*registry_)
                    .Add({});
  certificate_expiry_ = &BuildGauge()
                             .Name("cgpu_guard_tls_certificate_expiry_timestamp_seconds")
                             .Help("notAfter of the serving certificate, seconds since the epoch.")
                             .Register(*registry_)
                             .Add({});
  auto& reloads = BuildCounter()
                      .Name("cgpu_guard_tls_certificate_reloads_total")
                      .Help("Attempts to load changed certificate files, by result.")
                      .Register(*registry_);
  reloads_ok_ = &reloads.Add({{"result", "success"}});
  reloads_failed_ = &reloads.Add({{"result", "failure"}});

  policy_family_ = &BuildCounter()
                        .Name("cgpu_guard_policy_decisions_total")
                        .Help(
                            "Policy answers by reason (rule name, or why nothing was checked) and "
                            "outcome (allowed, denied, would-deny, errored).")
                        .Register(*registry_);
  auto gauge = [this](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  };
  synced_ = gauge("cgpu_guard_cluster_state_synced",
                  "1 once pods and nodes have been read from the cluster, else 0.");
  stale_ = gauge("cgpu_guard_cluster_state_stale",
                 "1 while a watch of pods or nodes has been down longer than --stale-after: "
                 "placements are answered by --stale-policy, /readyz fails.");
  watch_down_family_ = &BuildGauge()
                            .Name("cgpu_guard_watch_down_seconds")
                            .Help(
                                "Seconds the collection has been without an open watch (0 while "
                                "one is open): how far behind the cluster state may be.")
                            .Register(*registry_);
  auto& nodes = BuildGauge()
                    .Name("cgpu_guard_cluster_nodes")
                    .Help(
                        "Nodes in the cluster state: all, cGPU-enabled, cGPU-enabled and "
                        "incompatible with the rules.")
                    .Register(*registry_);
  nodes_all_ = &nodes.Add({{"kind", "all"}});
  nodes_cgpu_ = &nodes.Add({{"kind", "cgpu"}});
  nodes_incompatible_ = &nodes.Add({{"kind", "incompatible"}});
  pods_ = gauge("cgpu_guard_cluster_pods", "Pods in the cluster state.");
  reservations_ = gauge("cgpu_guard_gpu_reservations",
                        "Allowed bindings counted before the watch has shown their pods.");
  max_pods_on_a_gpu_ =
      gauge("cgpu_guard_gpu_pods_max", "cGPU pods on the fullest GPU in the cluster.");
  gpus_in_use_ = gauge("cgpu_guard_gpus_in_use", "GPUs of cGPU nodes holding at least one pod.");
  gpus_at_limit_ =
      gauge("cgpu_guard_gpus_at_limit", "GPUs holding as many cGPU pods as their limit allows.");
  nodes_without_max_pod_ = gauge(
      "cgpu_guard_nodes_without_max_pod_label",
      "cGPU nodes whose ack.node.gpu.max-pod label is missing, unreadable or above their pod "
      "limit: ACK's GPU-sharing scheduler counts pods per GPU only where it is set, so it may keep "
      "offering a full GPU there.");
  auto& events = BuildCounter()
                     .Name("cgpu_guard_events_total")
                     .Help(
                         "Kubernetes Events about pods and nodes by outcome: created, updated "
                         "(a repeat counted on its series), dropped (the queue was full), failed "
                         "(the API server refused or could not be reached).")
                     .Register(*registry_);
  for (size_t i = 0; i < kEventOutcomes.size(); ++i) {
    events_[i] = &events.Add({{"outcome", std::string(kEventOutcomes[i])}});
  }
  watch_family_ = &BuildCounter()
                       .Name("cgpu_guard_watch_events_total")
                       .Help(
                           "Informer trouble by collection and kind: relist (after 410 Gone), "
                           "restart (a watch ended or dropped), error (a failed request).")
                       .Register(*registry_);
}

void Metrics::RecordPolicyDecision(const Decision& decision) {
  const char* outcome = decision.would_deny ? "would-deny" : ToString(decision.verdict).data();
  std::lock_guard<std::mutex> lock(policy_mu_);
  // Reasons come from the policy's own vocabulary (rule names, fixed words), never from input.
  policy_family_->Add({{"reason", decision.reason}, {"outcome", outcome}}).Increment();
}

void Metrics::SetClusterState(bool synced, const ClusterStats& stats) {
  synced_->Set(synced ? 1 : 0);
  nodes_all_->Set(static_cast<double>(stats.nodes));
  nodes_cgpu_->Set(static_cast<double>(stats.cgpu_nodes));
  nodes_incompatible_->Set(static_cast<double>(stats.incompatible_nodes));
  nodes_without_max_pod_->Set(static_cast<double>(stats.cgpu_nodes_without_max_pod));
  pods_->Set(static_cast<double>(stats.pods));
  reservations_->Set(static_cast<double>(stats.reservations));
  max_pods_on_a_gpu_->Set(stats.max_pods_on_a_gpu);
  gpus_in_use_->Set(static_cast<double>(stats.gpus_in_use));
  gpus_at_limit_->Set(static_cast<double>(stats.gpus_at_limit));
}

void Metrics::RecordEvent(std::string_view outcome) {
  for (size_t i = 0; i < kEventOutcomes.size(); ++i) {
    if (kEventOutcomes[i] == outcome) events_[i]->Increment();
  }
}

void Metrics::SetStaleness(bool stale, std::string_view collection, double seconds_without_watch) {
  stale_->Set(stale ? 1 : 0);
  std::lock_guard<std::mutex> lock(watch_mu_);
  // Family::Add returns the existing child for labels it has seen.
  watch_down_family_->Add({{"collection", std::string(collection)}}).Set(seconds_without_watch);
}

void Metrics::SetWatchTotals(std::string_view collection, int64_t relists, int64_t restarts,
                             int64_t errors) {
  std::lock_guard<std::mutex> lock(watch_mu_);
  for (auto [kind, total] : {std::pair<const char*, int64_t>{"relist", relists},
                             {"restart", restarts},
                             {"error", errors}}) {
    int64_t& seen = watch_seen_[std::string(collection) + "/" + kind];
    if (total > seen) {
      watch_family_->Add({{"collection", std::string(collection)}, {"kind", kind}})
          .Increment(static_cast<double>(total - seen));
      seen = total;
    }
  }
}

void Metrics::RecordDecision(const ResourceRoute* route, Operation operation, Verdict verdict,
                             double seconds) {
  const size_t r = route != nullptr ? static_cast<size_t>(route - kResourceRoutes.data())
                                    : kResourceRoutes.size();
  size_t o = IndexOf(kOperations, operation);
  size_t v = IndexOf(kVerdicts, verdict);
  requests_[(r * kOperations.size() + o) * kVerdicts.size() + v]->Increment();
  decision_seconds_->Observe(seconds);
}

void Metrics::RecordLiveRead(std::string_view read, std::string_view outcome, double seconds) {
  const size_t r = IndexOf(kLiveReads, read);
  const size_t o = IndexOf(kLiveReadOutcomes, outcome);
  if (r >= kLiveReads.size() || o >= kLiveReadOutcomes.size()) return;  // not ours: not counted
  live_reads_[r * kLiveReadOutcomes.size() + o]->Increment();
  live_read_seconds_[r]->Observe(seconds);
}

void Metrics::RecordClaim(std::string_view outcome, int conflicts, int expired, double seconds) {
  const size_t o = IndexOf(kClaimOutcomes, outcome);
  if (o < kClaimOutcomes.size()) claims_[o]->Increment();
  claim_conflicts_->Increment(conflicts);
  claims_expired_->Increment(expired);
  claim_seconds_->Observe(seconds);
}

void Metrics::RecordShed(std::string_view reason) {
  (reason == "connections" ? shed_connections_ : shed_buffered_bytes_)->Increment();
}

void Metrics::RecordBadRequest(std::string_view reason) {
  std::lock_guard<std::mutex> lock(bad_requests_mu_);
  // Reasons come from our own fixed vocabulary (the codec and the server), never from input.
  bad_requests_family_->Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::SetCertificateExpiry(std::time_t not_after) {
  certificate_expiry_->Set(static_cast<double>(not_after));
}

void Metrics::RecordCertificateReload(bool ok) {
  (ok ? reloads_ok_ : reloads_failed_)->Increment();
}

std::string Metrics::Serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace cgpu
