// Several replicas, each with its own cache and controller, sharing one claim record per node
// with the compare-and-swap the API server gives a Lease (ClaimBoard below): bursts of concurrent
// bindings spread over them allow exactly the free slots; without claims they do not.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "adapters/admission_controller.h"
#include "adapters/cluster_state_file.h"
#include "adapters/embedded_rules.h"
#include "adapters/review_facts_reader.h"
#include "cluster/cluster_objects.h"
#include "core/gpu_claims.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::MakeBinding;
using testing::MakeList;
using testing::MakeNode;
using testing::MakePod;
using testing::MakeReview;

NodeFactsReader ReplicaFactsReader() {
  return NodeFactsReader::Create(FactSources{}, EmbeddedRules()).value();
}

// The claim records of every node, with the API server's optimistic concurrency: a write names
// the version it read and is refused (kAborted) when the record moved on since; a create of a
// record that exists is refused the same way.
class ClaimBoard {
 public:
  ClaimStore Store(const std::string& replica) {
    ClaimStore store;
    store.replica = replica;
    store.ttl = std::chrono::seconds(60);
    store.now_unix_ms = [this] { return now_unix_ms_.load(); };
    store.random = [] { return 0.5; };
    store.observe = [this](const ClaimReport& report) {
      std::lock_guard<std::mutex> lock(mu_);
      ++outcomes_[std::string(report.outcome)];
      conflicts_ += report.conflicts;
    };
    store.read = [this](const std::string& node, SteadyTime) -> StatusOr<NodeClaims> {
      std::lock_guard<std::mutex> lock(mu_);
      if (failing_reads_ > 0) {
        --failing_reads_;
        return Unavailable("GET lease: connection refused");
      }
      const auto found = records_.find(node);
      if (found == records_.end()) return NodeClaims{};
      return NodeClaims{found->second.claims, std::to_string(found->second.version), true};
    };
    store.write = [this](const std::string& node, const NodeClaims& claims, SteadyTime) -> Status {
      std::lock_guard<std::mutex> lock(mu_);
      if (refused_writes_ > 0) {
        --refused_writes_;
        return Aborted("update lease: HTTP 409: the object has been modified");
      }
      if (writes_lost_to_renewals_ > 0) {
        // Another write renewed one pod's claim: the record moved, but no new pod is claimed.
        --writes_lost_to_renewals_;
        Record& record = records_[node];
        record.claims = {RenewedClaim()};
        record.version = version_;
        return Aborted("update lease: HTTP 409: the object has been modified");
      }
      if (writes_lost_to_new_claims_ > 0) {
        // Another replica's claim for a pod of its own got in first.
        --writes_lost_to_new_claims_;
        Record& record = records_[node];
        record.claims.push_back(GpuClaim{"uid-other-" + std::to_string(++version_),
                                         "default/other",
                                         {0},
                                         now_unix_ms_ + 60'000,
                                         "other"});
        record.version = version_;
        return Aborted("update lease: HTTP 409: the object has been modified");
      }
      auto found = records_.find(node);
      if (!claims.exists && found != records_.end()) return Aborted("create: already exists");
      if (claims.exists &&
          (found == records_.end() || std::to_string(found->second.version) != claims.version)) {
        return Aborted("update: the object has been modified");
      }
      Record& record = records_[node];
      record.claims = claims.claims;
      record.version = ++version_;
      return OkStatus();
    };
    return store;
  }

  std::vector<GpuClaim> Claims(const std::string& node) {
    std::lock_guard<std::mutex> lock(mu_);
    return records_[node].claims;
  }
  int Outcomes(const std::string& outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_[outcome];
  }
  int conflicts() {
    std::lock_guard<std::mutex> lock(mu_);
    return conflicts_;
  }
  void FailReads(int count) {
    std::lock_guard<std::mutex> lock(mu_);
    failing_reads_ = count;
  }
  void RefuseWrites(int count) {
    std::lock_guard<std::mutex> lock(mu_);
    refused_writes_ = count;
  }
  // The next `count` writes lose to another replica's new claim on GPU 0 of the same node.
  void LoseWritesToNewClaims(int count) {
    std::lock_guard<std::mutex> lock(mu_);
    writes_lost_to_new_claims_ = count;
  }
  // `node` holds another pod's claim, and the next `count` writes lose to a renewal of it (no
  // new pod claimed).
  void LoseWritesToRenewals(const std::string& node, int count) {
    std::lock_guard<std::mutex> lock(mu_);
    Record& record = records_[node];
    record.claims = {RenewedClaim()};
    record.version = version_;
    writes_lost_to_renewals_ = count;
  }
  std::atomic<int64_t> now_unix_ms_{1'800'000'000'000};

 private:
  // One pod's claim, renewed: a later expiry, and the next version (taken here).
  GpuClaim RenewedClaim() {
    return GpuClaim{
        "uid-renewed", "default/renewed", {0}, now_unix_ms_ + 60'000 + ++version_, "other"};
  }
  struct Record {
    std::vector<GpuClaim> claims;
    int64_t version = 0;
  };
  std::mutex mu_;
  std::map<std::string, Record> records_;
  int64_t version_ = 0;
  std::map<std::string, int> outcomes_;
  int conflicts_ = 0;
  int failing_reads_ = 0;
  int refused_writes_ = 0;
  int writes_lost_to_new_claims_ = 0;
  int writes_lost_to_renewals_ = 0;
};

// One replica: its own cache, loaded from the same cluster state as the others, and its
// controller over the shared board (or none).
struct Replica {
  Replica(const std::string& state, ClaimStore store, PolicyOptions policy = {})
      : cache(EmbeddedRules(), ReplicaFactsReader(), {}) {
    EXPECT_TRUE(LoadClusterState(state, cache).ok());
    controller = std::make_unique<AdmissionController>(cache, policy, ClusterReads{},
                                                       std::function<std::string()>{},
                                                       LiveReadOptions{}, std::move(store));
  }
  ClusterCache cache;
  std::unique_ptr<AdmissionController> controller;
};

class ClaimsTest : public ::testing::Test {
 protected:
  ClaimsTest() : facts_(ReplicaFactsReader()) {}

  // Node `node` with `running` cGPU pods on GPU 0 and `pending` pods waiting for it, their GPU
  // already written on them (the scheduler's allocation, in every replica's cache).
  static std::vector<json> Burst(const std::string& node, int running, int pending) {
    std::vector<json> objects = {MakeNode({.name = node})};
    for (int i = 0; i < running; ++i) {
      objects.push_back(
          MakePod({.name = node + "-run-" + std::to_string(i), .node = node, .gpus = {0}}));
    }
    for (int i = 0; i < pending; ++i) {
      objects.push_back(
          MakePod({.name = node + "-new-" + std::to_string(i), .gpus = {0}, .phase = "Pending"}));
    }
    return objects;
  }

  Decision Bind(const Replica& replica, const std::string& pod, const std::string& node,
                bool dry_run = false) const {
    ReviewDecodeResult decoded =
        DecodeAdmissionReview(MakeReview("uid-bind-" + pod, "pods", "binding", "CREATE", pod,
                                         MakeBinding(pod, node), nullptr, dry_run));
    return replica.controller->Admit(facts_.Read(std::get<DecodedReview>(decoded)));
  }

  // `pending` bindings onto `node` at once, spread round-robin over `replicas`, each on its own
  // thread released together; returns how many were allowed.
  int RaceBurst(std::vector<std::unique_ptr<Replica>>& replicas, const std::string& node,
                int pending) const {
    std::atomic<int> allowed{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < pending; ++i) {
      threads.emplace_back([&, i] {
        while (!go) std::this_thread::yield();
        const Replica& replica = *replicas[static_cast<size_t>(i) % replicas.size()];
        if (Bind(replica, node + "-new-" + std::to_string(i), node).allowed()) ++allowed;
      });
    }
    go = true;
    for (auto& thread : threads) thread.join();
    return allowed;
  }

  ReviewFactsReader facts_;
};

TEST_F(ClaimsTest, BurstsOverThreeReplicasAllowExactlyTheFreeSlots) {
  struct Case {
    int running;
    int pending;
  };
  for (const Case c : {Case{15, 60}, Case{10, 30}}) {
    for (int round = 0; round < 20; ++round) {
      const std::string node = "gpu-" + std::to_string(c.running) + "-" + std::to_string(round);
      SCOPED_TRACE(node);
      const std::string state = MakeList(Burst(node, c.running, c.pending));
      ClaimBoard board;
      std::vector<std::unique_ptr<Replica>> replicas;
      for (const char* name : {"a", "b", "c"}) {
        replicas.push_back(std::make_unique<Replica>(state, board.Store(name)));
      }
      EXPECT_EQ(RaceBurst(replicas, node, c.pending), 20 - c.running);
      EXPECT_EQ(board.Claims(node).size(), static_cast<size_t>(20 - c.running));
      EXPECT_EQ(board.Outcomes("claimed"), 20 - c.running);
      EXPECT_EQ(board.Outcomes("full"), c.pending - (20 - c.running));
    }
  }
}

// The same burst with each replica counting only itself: every replica gives the free slots
// away, so the test above can fail.
TEST_F(ClaimsTest, WithoutClaimsEachReplicaGivesTheFreeSlotsAway) {
  const std::string state = MakeList(Burst("gpu-1", 15, 60));
  std::vector<std::unique_ptr<Replica>> replicas;
  for (int i = 0; i < 3; ++i) replicas.push_back(std::make_unique<Replica>(state, ClaimStore{}));
  EXPECT_EQ(RaceBurst(replicas, "gpu-1", 60), 15);  // 5 on each of the 3
}

// Another replica's claim counts until it expires; then it no longer counts, and the next write
// drops it from the record.
TEST_F(ClaimsTest, ClaimsCountUntilTheyExpireAndAreThenDropped) {
  const std::string state = MakeList(Burst("gpu-1", 19, 2));
  ClaimBoard board;
  Replica a(state, board.Store("a"));
  Replica b(state, board.Store("b"));
  EXPECT_TRUE(Bind(a, "gpu-1-new-0", "gpu-1").allowed());
  const Decision full = Bind(b, "gpu-1-new-1", "gpu-1");
  EXPECT_FALSE(full.allowed());
  EXPECT_NE(full.message.find("GPU 0 already runs 20"), std::string::npos) << full.message;

  board.now_unix_ms_ += 61'000;  // a's claim has lapsed and b's watch never showed its pod
  EXPECT_TRUE(Bind(b, "gpu-1-new-1", "gpu-1").allowed());
  const std::vector<GpuClaim> claims = board.Claims("gpu-1");
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].pod, "default/gpu-1-new-1");
  EXPECT_EQ(claims[0].replica, "b");
  EXPECT_EQ(claims[0].gpus, std::vector<int>{0});
}

// A retried binding of the same pod is not counted against itself, on any replica, and
// replaces its claim instead of adding one.
TEST_F(ClaimsTest, ARetriedBindingReplacesItsOwnClaim) {
  const std::string state = MakeList(Burst("gpu-1", 19, 1));
  ClaimBoard board;
  Replica a(state, board.Store("a"));
  Replica b(state, board.Store("b"));
  EXPECT_TRUE(Bind(a, "gpu-1-new-0", "gpu-1").allowed());
  EXPECT_TRUE(Bind(b, "gpu-1-new-0", "gpu-1").allowed());
  EXPECT_EQ(board.Claims("gpu-1").size(), 1u);
}

// A pod counted both by a replica's watch and by a claim counts once.
TEST_F(ClaimsTest, APodTheWatchShowsAndAClaimHoldsCountsOnce) {
  std::vector<json> objects = Burst("gpu-1", 18, 2);
  ClaimBoard board;
  Replica a(MakeList(objects), board.Store("a"));
  EXPECT_TRUE(Bind(a, "gpu-1-new-0", "gpu-1").allowed());
  // b's watch has already shown new-0 bound: 19 on GPU 0, and a claim for the same pod.
  objects.back() = MakePod({.name = "gpu-1-new-1", .gpus = {0}, .phase = "Pending"});
  objects[objects.size() - 2] = MakePod({.name = "gpu-1-new-0", .node = "gpu-1", .gpus = {0}});
  Replica b(MakeList(objects), board.Store("b"));
  EXPECT_TRUE(Bind(b, "gpu-1-new-1", "gpu-1").allowed()) << "the 20th";
}

TEST_F(ClaimsTest, LostCompareAndSwapsAreRetriedThenAnsweredByTheStalePolicy) {
  const std::string state = MakeList(Burst("gpu-1", 10, 3));
  ClaimBoard board;
  Replica a(state, board.Store("a"));
  board.RefuseWrites(3);
  EXPECT_TRUE(Bind(a, "gpu-1-new-0", "gpu-1").allowed());
  EXPECT_EQ(board.conflicts(), 3);

  board.RefuseWrites(1000);  // every write loses: the placement cannot be recorded
  const Decision closed = Bind(a, "gpu-1-new-1", "gpu-1");
  EXPECT_FALSE(closed.allowed());
  EXPECT_EQ(closed.reason, "placement-unrecorded");
  EXPECT_EQ(closed.code, 503);
  EXPECT_NE(closed.message.find("8 times in a row"), std::string::npos) << closed.message;
  EXPECT_EQ(board.Outcomes("conflict-exhausted"), 1);
}

// Losing to other replicas' new claims is progress: retried past 8 losses until the claim is
// written, or until their claims fill the GPU.
TEST_F(ClaimsTest, LossesToNewClaimsAreRetriedUntilWrittenOrFull) {
  {
    ClaimBoard board;
    Replica a(MakeList(Burst("gpu-1", 0, 1)), board.Store("a"));
    board.LoseWritesToNewClaims(12);
    EXPECT_TRUE(Bind(a, "gpu-1-new-0", "gpu-1").allowed());
    EXPECT_EQ(board.conflicts(), 12);
    EXPECT_EQ(board.Claims("gpu-1").size(), 13u);
  }
  {
    ClaimBoard board;
    Replica a(MakeList(Burst("gpu-1", 10, 1)), board.Store("a"));
    board.LoseWritesToNewClaims(12);
    const Decision denied = Bind(a, "gpu-1-new-0", "gpu-1");
    EXPECT_FALSE(denied.allowed());
    EXPECT_NE(denied.message.find("GPU 0 already runs 20"), std::string::npos) << denied.message;
    EXPECT_EQ(board.conflicts(), 10);
    EXPECT_EQ(board.Outcomes("full"), 1);
  }
}

// Losses to writes that claim no new pod (the same pod's claim renewed by a duplicate review, as
// a load test sends) are not progress: eight in a row end the tries.
TEST_F(ClaimsTest, LossesToTheSamePodsRenewedClaimAreCapped) {
  ClaimBoard board;
  Replica a(MakeList(Burst("gpu-1", 0, 1)), board.Store("a"));
  board.LoseWritesToRenewals("gpu-1", 12);
  const Decision unrecorded = Bind(a, "gpu-1-new-0", "gpu-1");
  EXPECT_FALSE(unrecorded.allowed());
  EXPECT_NE(unrecorded.message.find("8 times in a row"), std::string::npos) << unrecorded.message;
  EXPECT_EQ(board.conflicts(), 8);
}

// The waits between attempts are core/backoff.h's: a random share (here half) of 1 ms, doubling
// up to 16 ms; none after the last attempt.
TEST_F(ClaimsTest, TheWaitsAfterLostCompareAndSwapsBackOffFrom1To16Ms) {
  const std::string state = MakeList(Burst("gpu-1", 10, 3));
  ClaimBoard board;
  std::vector<std::chrono::microseconds> waits;
  ClaimStore store = board.Store("a");
  store.sleep = [&waits](std::chrono::microseconds wait) { waits.push_back(wait); };
  Replica a(state, store);

  board.RefuseWrites(2);
  EXPECT_TRUE(Bind(a, "gpu-1-new-0", "gpu-1").allowed());
  using std::chrono::microseconds;
  EXPECT_EQ(waits, (std::vector<microseconds>{microseconds(500), microseconds(1000)}));

  waits.clear();
  board.RefuseWrites(1000);
  EXPECT_FALSE(Bind(a, "gpu-1-new-1", "gpu-1").allowed());
  EXPECT_EQ(waits,
            (std::vector<microseconds>{microseconds(500), microseconds(1000), microseconds(2000),
                                       microseconds(4000), microseconds(8000), microseconds(8000),
                                       microseconds(8000)}));
}

TEST_F(ClaimsTest, AnUnreachableRecordIsAnsweredByTheStalePolicy) {
  const std::string state = MakeList(Burst("gpu-1", 10, 2));
  ClaimBoard board;
  Replica closed(state, board.Store("a"));
  board.FailReads(1);
  const Decision denied = Bind(closed, "gpu-1-new-0", "gpu-1");
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.code, 503);
  EXPECT_NE(denied.message.find("connection refused"), std::string::npos) << denied.message;
  EXPECT_TRUE(board.Claims("gpu-1").empty());

  PolicyOptions open;
  open.stale = StalePolicy::kFailOpen;
  Replica lenient(state, board.Store("b"), open);
  board.FailReads(1);
  const Decision allowed = Bind(lenient, "gpu-1-new-1", "gpu-1");
  EXPECT_TRUE(allowed.allowed());
  ASSERT_EQ(allowed.warnings.size(), 1u);
  EXPECT_NE(allowed.warnings[0].find("could not be recorded"), std::string::npos);
  EXPECT_EQ(board.Outcomes("error"), 2);
}

// Decisions that take no slot write nothing: dry runs, denials, non-cGPU pods and nodes.
TEST_F(ClaimsTest, OnlyAllowedPlacementsThatTakeASlotAreClaimed) {
  std::vector<json> objects = Burst("gpu-1", 20, 2);
  objects.push_back(MakeNode({.name = "plain", .schedule = ""}));
  objects.push_back(MakePod({.name = "cpu-only", .phase = "Pending", .cgpu = false}));
  const std::string state = MakeList(objects);
  ClaimBoard board;
  Replica a(state, board.Store("a"));
  EXPECT_FALSE(Bind(a, "gpu-1-new-0", "gpu-1").allowed());  // full
  EXPECT_TRUE(Bind(a, "gpu-1-new-1", "plain").allowed());   // not a cGPU node
  EXPECT_TRUE(Bind(a, "cpu-only", "gpu-1").allowed());      // not a cGPU pod
  EXPECT_FALSE(Bind(a, "gpu-1-new-1", "gpu-1", /*dry_run=*/true).allowed());
  EXPECT_TRUE(board.Claims("gpu-1").empty());
  EXPECT_EQ(board.Outcomes("claimed"), 0);
}

TEST(GpuClaimsTest, ANewPodsClaimIsNewsARenewedOrDroppedOneIsNot) {
  const std::vector<GpuClaim> before = {{"u1", "ns/a", {0}, 100, "r1"},
                                        {"u2", "ns/b", {1}, 50, "r2"}};
  EXPECT_FALSE(HasClaimForANewPod(before, before));
  EXPECT_FALSE(HasClaimForANewPod(before, {{"u1", "ns/a", {0}, 300, "r2"}}));  // renewed, dropped
  EXPECT_FALSE(HasClaimForANewPod(before, {}));
  EXPECT_TRUE(
      HasClaimForANewPod(before, {{"u1", "ns/a", {0}, 100, "r1"}, {"u3", "ns/c", {0}, 100, "r1"}}));
  EXPECT_TRUE(HasClaimForANewPod({}, {{"u3", "ns/c", {0}, 100, "r1"}}));
}

TEST(GpuClaimsTest, OpenClaimsWithClaimAndClaimedPods) {
  const std::vector<GpuClaim> claims = {{"u1", "ns/a", {0}, 100, "r1"},
                                        {"u2", "ns/b", {1}, 50, "r2"},
                                        {"u3", "ns/c", {0, 1}, 200, "r1"}};
  EXPECT_EQ(OpenClaims(claims, 50).size(), 2u);  // expiring at 50 is expired at 50
  const std::vector<GpuClaim> replaced = WithClaim(claims, {"u1", "ns/a", {2}, 300, "r2"});
  ASSERT_EQ(replaced.size(), 3u);
  EXPECT_EQ(replaced.back().gpus, std::vector<int>{2});

  PodFacts shown;
  shown.namespace_name = "ns";
  shown.name = "c";
  shown.uid = "u3";
  const std::vector<PodFacts> pods = WithClaimedPods({shown}, claims, "n", "u1");
  ASSERT_EQ(pods.size(), 2u);  // u3 is shown already, u1 is the pod being placed
  EXPECT_EQ(pods[1].Key(), "ns/b");
  EXPECT_EQ(pods[1].node_name, "n");
  EXPECT_TRUE(pods[1].HoldsGpu());
  EXPECT_EQ(pods[1].gpus.indices, std::vector<int>{1});
}

}  // namespace
}  // namespace cgpu
