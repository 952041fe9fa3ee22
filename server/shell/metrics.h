// Metrics: the Prometheus families cgpu-guard exports, registered once.
//
// Label values come from closed sets (resource: a route of core/resource_routes.h or "other";
// operation; verdict; reason and outcome from the policy's own vocabulary), so cardinality is
// bounded whatever the cluster sends. Children for the hot path are created up front; recording a
// decision is an array lookup and two atomic adds. Thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "adapters/cluster_cache.h"
#include "core/admission_request.h"
#include "core/decision.h"
#include "core/resource_routes.h"

namespace cgpu {

class Metrics {
 public:
  explicit Metrics(std::string_view version);

  // `route`: the request's route (core/resource_routes.h), nullptr for any other resource.
  void RecordDecision(const ResourceRoute* route, Operation operation, Verdict verdict,
                      double seconds);
  void RecordBadRequest(std::string_view reason);
  // Load the webhook port turned away: "connections" (past --max-connections, closed on accept)
  // or "buffered-bytes" (past --max-buffered-bytes, answered 503).
  void RecordShed(std::string_view reason);
  // The policy's answer by reason (a rule name such as pods-per-gpu or driver, or why it was not
  // checked) and outcome: allowed, denied, would-deny (warn and dry-run modes), errored.
  void RecordPolicyDecision(const Decision& decision);
  // Cluster state, refreshed by a ticker: gauges, and counters moved on by what the informers
  // counted since the last call.
  void SetClusterState(bool synced, const ClusterStats& stats);
  // Stale: a watch has been down longer than --stale-after. Per collection, how long it has been
  // without an open watch (0 while one is open).
  void SetStaleness(bool stale, std::string_view collection, double seconds_without_watch);
  void SetWatchTotals(std::string_view collection, int64_t relists, int64_t restarts,
                      int64_t errors);
  // A read of the API server made to decide a review: `read` is get-pod or list-node-pods,
  // `outcome` ok, not-found, deadline or error (core of admission_controller.h's LiveReadReport).
  void RecordLiveRead(std::string_view read, std::string_view outcome, double seconds);
  // One placement's claim (--arbiter=claims): `outcome` as in admission_controller.h's
  // ClaimReport, the compare-and-swaps it lost, the expired claims its write dropped, and the
  // time the claim added to the review.
  void RecordClaim(std::string_view outcome, int conflicts, int expired, double seconds);
  // An Event write's outcome (adapters/event_recorder.h): created, updated, dropped, failed.
  void RecordEvent(std::string_view outcome);
  void SetCertificateExpiry(std::time_t not_after);
  void RecordCertificateReload(bool ok);
  prometheus::Gauge& in_flight() { return *in_flight_; }

  // The text exposition format (version 0.0.4), as served on /metrics.
  std::string Serialize() const;

  // The resource label's values: one per route, then "other".
  static constexpr size_t kResourceLabels = kResourceRoutes.size() + 1;
  static constexpr std::array<Operation, 4> kOperations = {Operation::kCreate, Operation::kUpdate,
                                                           Operation::kDelete, Operation::kConnect};
  static constexpr std::array<std::string_view, 2> kLiveReads = {"get-pod", "list-node-pods"};
  static constexpr std::array<std::string_view, 4> kLiveReadOutcomes = {"ok", "not-found",
                                                                        "deadline", "error"};
  static constexpr std::array<std::string_view, 5> kClaimOutcomes = {
      "claimed", "full", "conflict-exhausted", "deadline", "error"};
  static constexpr std::array<std::string_view, 4> kEventOutcomes = {"created", "updated",
                                                                     "dropped", "failed"};
  static constexpr std::array<Verdict, 3> kVerdicts = {Verdict::kAllowed, Verdict::kDenied,
                                                       Verdict::kErrored};

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* bad_requests_family_;
  std::mutex bad_requests_mu_;  // Family::Add is safe, the cache is ours to guard
  std::array<prometheus::Counter*, kResourceLabels * kOperations.size() * kVerdicts.size()>
      requests_{};
  prometheus::Histogram* decision_seconds_;
  prometheus::Counter* shed_connections_;
  prometheus::Counter* shed_buffered_bytes_;
  std::array<prometheus::Counter*, kLiveReads.size() * kLiveReadOutcomes.size()> live_reads_{};
  std::array<prometheus::Histogram*, kLiveReads.size()> live_read_seconds_{};
  std::array<prometheus::Counter*, kClaimOutcomes.size()> claims_{};
  std::array<prometheus::Counter*, kEventOutcomes.size()> events_{};
  prometheus::Counter* claim_conflicts_;
  prometheus::Counter* claims_expired_;
  prometheus::Histogram* claim_seconds_;
  prometheus::Gauge* in_flight_;
  prometheus::Gauge* certificate_expiry_;
  prometheus::Counter* reloads_ok_;
  prometheus::Counter* reloads_failed_;
  prometheus::Family<prometheus::Counter>* policy_family_;
  std::mutex policy_mu_;
  prometheus::Gauge* synced_;
  prometheus::Gauge* nodes_all_;
  prometheus::Gauge* nodes_cgpu_;
  prometheus::Gauge* nodes_incompatible_;
  prometheus::Gauge* pods_;
  prometheus::Gauge* reservations_;
  prometheus::Gauge* max_pods_on_a_gpu_;
  prometheus::Gauge* gpus_in_use_;
  prometheus::Gauge* gpus_at_limit_;
  prometheus::Gauge* nodes_without_max_pod_;
  prometheus::Gauge* stale_;
  prometheus::Family<prometheus::Gauge>* watch_down_family_;
  prometheus::Family<prometheus::Counter>* watch_family_;
  std::mutex watch_mu_;
  std::map<std::string, int64_t> watch_seen_;  // guarded by watch_mu_: totals already counted
};

}  // namespace cgpu
