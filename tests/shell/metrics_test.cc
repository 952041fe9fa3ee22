#include "shell/metrics.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

TEST(MetricsTest, DecisionsAreCountedByResourceOperationAndVerdict) {
  Metrics metrics("1.2.3");
  const ResourceRoute* binding = FindRoute("", "pods", "binding");
  const ResourceRoute* legacy_binding = FindRoute("", "bindings", "");
  metrics.RecordDecision(binding, Operation::kCreate, Verdict::kDenied, 0.00002);
  metrics.RecordDecision(binding, Operation::kCreate, Verdict::kDenied, 0.00002);
  metrics.RecordDecision(legacy_binding, Operation::kCreate, Verdict::kAllowed, 0.00002);
  metrics.RecordDecision(FindRoute("", "configmaps", ""), Operation::kUpdate, Verdict::kAllowed,
                         0.2);
  std::string text = metrics.Serialize();
  EXPECT_NE(text.find("cgpu_guard_admission_requests_total{operation=\"CREATE\",resource=\"pods/"
                      "binding\",verdict=\"denied\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("cgpu_guard_admission_requests_total{operation=\"CREATE\",resource=\"bindings\","
                "verdict=\"allowed\"} 1"),
      std::string::npos)
      << text;
  // Resources outside the closed set are "other": cardinality stays bounded.
  EXPECT_NE(text.find("cgpu_guard_admission_requests_total{operation=\"UPDATE\",resource=\"other\","
                      "verdict=\"allowed\"} 1"),
            std::string::npos);
  EXPECT_EQ(text.find("configmaps"), std::string::npos);
  EXPECT_NE(text.find("cgpu_guard_decision_duration_seconds_bucket{le=\"2.5e-05\"} 3"),
            std::string::npos);
  EXPECT_NE(text.find("cgpu_guard_build_info{version=\"1.2.3\"} 1"), std::string::npos);
}

TEST(MetricsTest, CertificateGauges) {
  Metrics metrics("x");
  metrics.SetCertificateExpiry(1'900'000'000);
  metrics.RecordCertificateReload(false);
  std::string text = metrics.Serialize();
  EXPECT_NE(text.find("cgpu_guard_tls_certificate_expiry_timestamp_seconds 1900000000"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("cgpu_guard_tls_certificate_reloads_total{result=\"failure\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace cgpu
