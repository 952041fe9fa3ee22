// The claims' Lease through a KubeApi answered in memory by the tests' API server (FakeApiStore),
// which answers creates and
// updates with the API server's optimistic concurrency: 201, 409 AlreadyExists, 200, 409
// Conflict on a resourceVersion that moved on, 404.
#include "adapters/claim_lease.h"

#include <gtest/gtest.h>

#include "support/fake_api_store.h"
#include "support/memory_kube_api.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::FakeApiStore;
using testing::RequestKind;

class ClaimLeaseTest : public ::testing::Test {
 protected:
  ClaimLeaseTest() {
    client_ = std::make_unique<testing::MemoryKubeApi>(api_);
    store_ = LeaseClaimStore(*client_, "cgpu-guard", "replica-a", std::chrono::seconds(60),
                             [] { return int64_t{1'800'000'000'123}; });
  }

  SteadyTime Deadline() const {
    return std::chrono::steady_clock::now() + std::chrono::seconds(20);
  }

  FakeApiStore api_;
  std::unique_ptr<KubeApi> client_;
  ClaimStore store_;
};

TEST_F(ClaimLeaseTest, CreateThenCompareAndSwapUpdates) {
  StatusOr<NodeClaims> none = store_.read("gpu-1", Deadline());
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_FALSE(none->exists);
  EXPECT_TRUE(none->claims.empty());

  NodeClaims first = *none;
  first.claims = {GpuClaim{"uid-a", "default/a", {0, 2}, 1'800'000'060'000, "replica-a"}};
  ASSERT_TRUE(store_.write("gpu-1", first, Deadline()).ok());
  // A second create of the same Lease: AlreadyExists, another replica came first.
  const Status again = store_.write("gpu-1", first, Deadline());
  EXPECT_EQ(again.code(), StatusCode::kAborted) << again.message();
  EXPECT_NE(again.message().find("already exists"), std::string::npos) << again.message();

  StatusOr<NodeClaims> read = store_.read("gpu-1", Deadline());
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(read->exists);
  EXPECT_EQ(read->claims, first.claims);
  ASSERT_FALSE(read->version.empty());

  NodeClaims second = *read;
  second.claims.push_back(GpuClaim{"uid-b", "default/b", {1}, 1'800'000'061'000, "replica-a"});
  ASSERT_TRUE(store_.write("gpu-1", second, Deadline()).ok());
  // The same version once more: the Lease moved on, so the write is refused and nothing changes.
  NodeClaims stale = *read;
  stale.claims.clear();
  const Status conflict = store_.write("gpu-1", stale, Deadline());
  EXPECT_EQ(conflict.code(), StatusCode::kAborted);
  EXPECT_NE(conflict.message().find("the object has been modified"), std::string::npos)
      << conflict.message();
  EXPECT_EQ(store_.read("gpu-1", Deadline())->claims.size(), 2u);

  // What the API server holds: a coordination.k8s.io/v1 Lease in the namespace, its claims in
  // an annotation, who wrote it last in its spec.
  const std::optional<json> lease = api_.Find("leases", ClaimLeaseName("gpu-1"), "cgpu-guard");
  ASSERT_TRUE(lease);
  EXPECT_EQ((*lease)["apiVersion"], "coordination.k8s.io/v1");
  EXPECT_EQ((*lease)["metadata"]["annotations"][kClaimNodeAnnotation], "gpu-1");
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "replica-a");
  EXPECT_EQ((*lease)["spec"]["leaseDurationSeconds"], 60);
  EXPECT_EQ((*lease)["spec"]["renewTime"], "2027-01-15T08:00:00.123000Z");
  // Every update named the version it was based on.
  for (const testing::RecordedRequest& request : api_.requests()) {
    if (request.kind != RequestKind::kUpdate) continue;
    EXPECT_EQ(request.method, "PUT");
    EXPECT_FALSE(
        json::parse(request.body)["metadata"]["resourceVersion"].get<std::string>().empty());
  }
  EXPECT_EQ(api_.CountRequests(RequestKind::kCreate), 2);
  EXPECT_EQ(api_.CountRequests(RequestKind::kUpdate), 2);
}

TEST_F(ClaimLeaseTest, ErrorsAreNotConflicts) {
  api_.FailNext(1, 503, RequestKind::kGet);
  StatusOr<NodeClaims> read = store_.read("gpu-1", Deadline());
  EXPECT_EQ(read.status().code(), StatusCode::kUnavailable);
  api_.FailNext(1, 403, RequestKind::kCreate);
  const Status forbidden = store_.write("gpu-1", NodeClaims{}, Deadline());
  EXPECT_EQ(forbidden.code(), StatusCode::kUnavailable);
  EXPECT_NE(forbidden.message().find("403"), std::string::npos) << forbidden.message();
  // An update of a Lease deleted meanwhile: read again (it will be created).
  const Status gone = store_.write("gpu-1", NodeClaims{{}, "7", true}, Deadline());
  EXPECT_EQ(gone.code(), StatusCode::kAborted) << gone.message();
}

TEST(ClaimLeaseNameTest, ShortNamesReadLongNamesFitAndStayDistinct) {
  EXPECT_EQ(ClaimLeaseName("cn-hangzhou.192.168.0.12"),
            "cgpu-guard-claims-cn-hangzhou.192.168.0.12");
  const std::string long_a = std::string(240, 'a') + ".x";
  const std::string long_b = std::string(240, 'a') + ".y";
  EXPECT_LE(ClaimLeaseName(long_a).size(), 253u);
  EXPECT_NE(ClaimLeaseName(long_a), ClaimLeaseName(long_b));
  EXPECT_EQ(ClaimLeaseName(long_a), ClaimLeaseName(long_a));
}

TEST(ClaimLeaseCodecTest, UnreadableClaimsCountAsNoneAndBadEntriesAreSkipped) {
  EXPECT_TRUE(DecodeClaimLease("not json").claims.empty());
  EXPECT_FALSE(DecodeClaimLease("not json").exists);
  const json lease = {
      {"metadata",
       {{"resourceVersion", "42"},
        {"annotations",
         {{kClaimsAnnotation,
           R"([{"uid":"u","pod":"ns/p","gpus":[3,1,3],"expiresUnixMs":5,"replica":"r"},
               {"uid":"","gpus":[1],"expiresUnixMs":5},{"uid":"v","gpus":"x","expiresUnixMs":5},
               {"uid":"w","gpus":[-1,99999],"expiresUnixMs":5}, 7])"}}}}}};
  const NodeClaims claims = DecodeClaimLease(lease.dump());
  EXPECT_TRUE(claims.exists);
  EXPECT_EQ(claims.version, "42");
  ASSERT_EQ(claims.claims.size(), 1u);
  EXPECT_EQ(claims.claims[0].gpus, (std::vector<int>{1, 3}));
  const NodeClaims garbled = DecodeClaimLease(
      json{{"metadata", {{"resourceVersion", "1"}, {"annotations", {{kClaimsAnnotation, "{"}}}}}}
          .dump());
  EXPECT_TRUE(garbled.exists);
  EXPECT_TRUE(garbled.claims.empty());
}

}  // namespace
}  // namespace cgpu
