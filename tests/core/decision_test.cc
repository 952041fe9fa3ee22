#include "core/decision.h"

#include <gtest/gtest.h>

#include "core/admission_request.h"
#include "core/policy.h"

namespace cgpu {
namespace {

TEST(DecisionTest, DenyDefaultsToForbidden) {
  Decision decision = Deny("pods-per-gpu", "too many pods", 0);
  EXPECT_EQ(decision.verdict, Verdict::kDenied);
  EXPECT_FALSE(decision.allowed());
  EXPECT_EQ(decision.code, 403);
  EXPECT_EQ(decision.message, "too many pods");
}

TEST(DecisionTest, ErroredKeepsItsHttpStatus) {
  Decision decision = Errored("cache-stale", "cluster state unknown", 503);
  EXPECT_EQ(decision.verdict, Verdict::kErrored);
  EXPECT_FALSE(decision.allowed());
  EXPECT_EQ(decision.code, 503);
}

TEST(DecisionTest, VerdictNamesAreStable) {
  EXPECT_EQ(ToString(Verdict::kAllowed), "allowed");
  EXPECT_EQ(ToString(Verdict::kDenied), "denied");
  EXPECT_EQ(ToString(Verdict::kErrored), "errored");
}

TEST(AdmissionRequestTest, ResourcePathJoinsSubresource) {
  AdmissionRequest request;
  request.resource.resource = "pods";
  EXPECT_EQ(request.ResourcePath(), "pods");
  request.sub_resource = "binding";
  EXPECT_EQ(request.ResourcePath(), "pods/binding");
}

TEST(AdmissionRequestTest, OperationNames) {
  EXPECT_EQ(ToString(Operation::kCreate), "CREATE");
  EXPECT_EQ(ToString(Operation::kUpdate), "UPDATE");
  EXPECT_EQ(ToString(Operation::kDelete), "DELETE");
  EXPECT_EQ(ToString(Operation::kConnect), "CONNECT");
}

TEST(PolicyTest, AllowEverythingAllows) {
  ReviewFacts facts;
  facts.request.operation = Operation::kDelete;
  Decision decision = AllowEverything(facts);
  EXPECT_TRUE(decision.allowed());
  EXPECT_TRUE(decision.message.empty());
}

}  // namespace
}  // namespace cgpu
