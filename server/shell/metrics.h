// Metrics: the Prometheus families cgpu-guard exports, registered once.
//
// Label values come from closed sets (resource: pods, pods/binding, nodes, other; operation;
// verdict), so cardinality is bounded whatever the cluster sends. Children for the hot path are
// created up front; recording a decision is an array lookup and two atomic adds. Thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/admission_request.h"
#include "core/decision.h"

namespace cgpu {

class Metrics {
 public:
  explicit Metrics(std::string_view version);

  void RecordDecision(std::string_view resource_path, Operation operation, Verdict verdict,
                      double seconds);
  void RecordBadRequest(std::string_view reason);
  void SetCertificateExpiry(std::time_t not_after);
  void RecordCertificateReload(bool ok);
  prometheus::Gauge& in_flight() { return *in_flight_; }

  // The text exposition format (version 0.0.4), as served on /metrics.
  std::string Serialize() const;

  static constexpr std::array<std::string_view, 4> kResources = {"pods", "pods/binding", "nodes",
                                                                 "other"};
  static constexpr std::array<Operation, 4> kOperations = {Operation::kCreate, Operation::kUpdate,
                                                           Operation::kDelete, Operation::kConnect};
  static constexpr std::array<Verdict, 3> kVerdicts = {Verdict::kAllowed, Verdict::kDenied,
                                                       Verdict::kErrored};

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* bad_requests_family_;
  std::mutex bad_requests_mu_;  // Family::Add is safe, the cache is ours to guard
  std::array<prometheus::Counter*, kResources.size() * kOperations.size() * kVerdicts.size()>
      requests_{};
  prometheus::Histogram* decision_seconds_;
  prometheus::Gauge* in_flight_;
  prometheus::Gauge* certificate_expiry_;
  prometheus::Counter* reloads_ok_;
  prometheus::Counter* reloads_failed_;
};

}  // namespace cgpu
