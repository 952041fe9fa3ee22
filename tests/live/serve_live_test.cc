// The real binary, as deployed: `cgpu-guard serve --kubeconfig` against the tests' local API
// server. Not ready until pods and nodes are listed; then bindings are judged on watched state.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <cstdio>

#include "live/live_serve_fixture.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::MakeNode;
using testing::MakePod;
using testing::WaitUntil;

class ServeLiveTest : public LiveServeTest {
 protected:
  // GPU 4 of gpu-1 full with 20 pods, "a" and "probe" pending for it and GPU 5; served with
  // --stale-after 1s, ready, and "a" refused.
  void StartOnAFullGpu() {
    api_.Add("nodes", MakeNode({.name = "gpu-1"}));
    for (int i = 0; i < 20; ++i) {
      api_.Add("pods", MakePod({.name = "p" + std::to_string(i), .node = "gpu-1", .gpus = {4}}));
    }
    api_.Add("pods", MakePod({.name = "a", .gpus = {4}, .phase = "Pending"}));
    api_.Add("pods", MakePod({.name = "probe", .gpus = {5}, .phase = "Pending"}));
    Serve({"--stale-after", "1s"});
    ASSERT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();
    EXPECT_EQ(Bind("a", "gpu-1")["allowed"], false);  // GPU 4 is full
    // The gauge follows a once-a-second ticker, not /readyz: wait for it too.
    EXPECT_TRUE(WaitUntil([&] { return Metric("cgpu_guard_cluster_state_stale") == 0; }));
  }

  // After a StaleWhile: the refusals were counted, and the log says when it went stale and when
  // it was current again.
  void StopSaysItWasStaleAndRecovered() {
    EXPECT_GE(Metric("cgpu_guard_policy_decisions_total{outcome=\"denied\",reason="
                     "\"cluster-state-stale\"}"),
              1);
    ASSERT_EQ(kill(process_->pid, SIGTERM), 0);
    EXPECT_EQ(process_->Wait(std::chrono::seconds(15)), 0) << process_->Log();
    EXPECT_NE(process_->Log().find("cluster state is stale"), std::string::npos);
    EXPECT_NE(process_->Log().find("cluster state current again"), std::string::npos);
  }

  // Brings the fault on, waits for /readyz to fail saying `why`, checks the stale answers, then
  // takes the fault away and waits for /readyz to pass again.
  // `brief`: the fault heals by itself within moments (slow answers), too soon for the metrics
  // ticker (every second) to be sure to see it.
  void StaleWhile(const std::string& name, const std::function<void()>& fault,
                  const std::string& why, const std::function<void()>& heal, bool brief = false) {
    SCOPED_TRACE(name);
    fault();
    ASSERT_TRUE(WaitUntil([&] { return Readyz() == 503; })) << process_->Log();
    // /readyz names the last error. The first may be the dropped watch itself; the fault's own
    // error follows at the next attempt, after a back-off that a loaded machine stretches.
    std::string readyz;
    EXPECT_TRUE(WaitUntil(
        [&] {
          readyz = OpsBody("/readyz");
          return readyz.find(why) != std::string::npos;
        },
        std::chrono::seconds(30)))
        << readyz;
    EXPECT_NE(readyz.find("watch has been down for"), std::string::npos) << readyz;
    if (!brief) {
      EXPECT_TRUE(WaitUntil([&] { return Metric("cgpu_guard_cluster_state_stale") == 1; }));
    }
    json stale = Bind("probe", "gpu-1");  // a pod that stays pending throughout
    EXPECT_EQ(stale["allowed"], false) << stale.dump();
    EXPECT_EQ(stale["status"]["code"], 503) << stale.dump();
    EXPECT_NE(stale["status"]["message"].get<std::string>().find("view of the cluster is stale"),
              std::string::npos)
        << stale.dump();
    heal();
    // Each retry waits an exponential back-off with jitter, capped at 30 s.
    EXPECT_TRUE(WaitUntil([&] { return Readyz() == 200; }, std::chrono::seconds(45)))
        << OpsBody("/readyz") << process_->Log();
    EXPECT_TRUE(WaitUntil([&] { return Metric("cgpu_guard_cluster_state_stale") == 0; }));
  }
};

// Pods near etcd's 1.5 MiB object limit: 60 of them are 84 MB of list. Listed in pages kept
// under 4 MiB, the server stays small; buffered and parsed as one page, the list is held whole.
TEST_F(ServeLiveTest, HugePodsAreListedInPagesThatFitInMemory) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
#ifndef CGPU_SANITIZED
  constexpr int kHugePods = 60;
#else
  // Shadow memory makes the figure meaningless (below), and a sanitizer makes the list slow:
  // 14 MB, still pages of under 4 MiB, prove the paging there.
  constexpr int kHugePods = 10;
#endif
  for (int i = 0; i < kHugePods; ++i) {
    json pod = MakePod({.name = "huge-" + std::to_string(i), .node = "gpu-1", .gpus = {i % 8}});
    pod["metadata"]["annotations"]["filler"] = std::string(1'400'000, 'x');
    api_.Add("pods", pod);
  }
  Serve();
  ASSERT_TRUE(WaitUntil([&] { return Readyz() == 200; }, std::chrono::seconds(60)))
      << process_->Log();
  EXPECT_TRUE(WaitUntil([&] { return Metric("cgpu_guard_cluster_pods") == kHugePods; }));
  const long peak_kb = process_->PeakRssKb();
  std::printf("peak RSS listing %d pods of 1.4 MB: %ld MB\n", kHugePods, peak_kb / 1024);
  EXPECT_GT(peak_kb, 0);
#ifndef CGPU_SANITIZED  // shadow memory would make the figure meaningless
  // About 20 MB in pages of 4 MiB; the whole list as one page is twice its size, 170 MB.
  EXPECT_LT(peak_kb / 1024, 100) << "a list page was held whole";
#endif
}

TEST_F(ServeLiveTest, NotReadyUntilListedThenEnforcesOnWatchedState) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  for (int i = 0; i < 19; ++i) {
    api_.Add("pods", MakePod({.name = "p" + std::to_string(i), .node = "gpu-1", .gpus = {4}}));
  }
  api_.Add("pods", MakePod({.name = "a", .gpus = {4}, .phase = "Pending"}));
  api_.Add("pods", MakePod({.name = "b", .gpus = {4}, .phase = "Pending"}));
  api_.FailNext(4, 503, testing::RequestKind::kList);  // the API server is slow to come up
  Serve();
  EXPECT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();

  json first = Bind("a", "gpu-1");
  EXPECT_EQ(first["allowed"], true) << first.dump();
  // "a" is reserved until the watch shows it bound; "b" would be the 21st.
  json second = Bind("b", "gpu-1");
  EXPECT_EQ(second["allowed"], false) << second.dump();
  EXPECT_NE(second["status"]["message"].get<std::string>().find("GPU 4 already runs 20"),
            std::string::npos);

  // The scheduler's binding lands; then a pod goes away: "b" fits.
  api_.Update("pods", MakePod({.name = "a", .node = "gpu-1", .gpus = {4}}));
  api_.Delete("pods", "p0", "default");
  EXPECT_TRUE(WaitUntil([&] { return Bind("b", "gpu-1")["allowed"] == true; })) << process_->Log();
  EXPECT_GE(api_.CountRequests(testing::RequestKind::kWatch, "/api/v1/pods"), 1);

  ASSERT_EQ(kill(process_->pid, SIGTERM), 0);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(15)), 0) << process_->Log();
}

// Each fault the API server can show: while a watch is down longer than --stale-after, /readyz
// says why and placements are refused (fail-closed, the default) instead of counted on a state
// that may be missing pods; afterwards the cache has caught up with what happened meanwhile.
TEST_F(ServeLiveTest, FailingWatchesMakeItStaleAndWhatTheyMissedIsReplayed) {
  StartOnAFullGpu();
  StaleWhile(
      "500s",
      [&] {
        api_.FailNext(1'000'000, 500, testing::RequestKind::kWatch);
        api_.DropWatches();
      },
      "HTTP 500",
      [&] {
        api_.Delete("pods", "p0", "default");  // missed while down, replayed on the next watch
        api_.ClearFaults();
      });
  EXPECT_TRUE(WaitUntil([&] { return Bind("a", "gpu-1")["allowed"] == true; }));
  StopSaysItWasStaleAndRecovered();
}

TEST_F(ServeLiveTest, AnExpiredTokenMakesItStaleUntilTheRotatedOneIsRead) {
  StartOnAFullGpu();
  StaleWhile(
      "expired token",
      [&] {
        api_.RequireToken("rotated");
        api_.DropWatches();
      },
      "401", [&] { testing::WriteFile(dir_ + "/token", "rotated"); });
  StopSaysItWasStaleAndRecovered();
}

TEST_F(ServeLiveTest, SlowAnswersMakeItStaleWhileTheWatchesReopen) {
  StartOnAFullGpu();
  StaleWhile(
      "slow answers",
      [&] {
        // Every answer 2.5 s late (under the 5 s socket timeouts of the tests' API server): the
        // watches reopen late, and for that while the state is stale.
        api_.SetDelay(std::chrono::milliseconds(2'500));
        api_.DropWatches();
      },
      "", [&] { api_.SetDelay(std::chrono::milliseconds(0)); }, /*brief=*/true);
  StopSaysItWasStaleAndRecovered();
}

TEST_F(ServeLiveTest, AStormOf410sEndsInRelistsAndAnExactCache) {
  StartOnAFullGpu();
  // A storm of 410s: every watch expired, every one a relist. The cache comes out exact.
  const int lists_before = api_.CountRequests(testing::RequestKind::kList);
  api_.FailNext(5, 410, testing::RequestKind::kWatch);
  api_.DropWatches();
  api_.Add("pods", MakePod({.name = "b", .node = "gpu-1", .gpus = {4}}));  // now 21 on GPU 4
  EXPECT_TRUE(
      WaitUntil([&] { return api_.CountRequests(testing::RequestKind::kList) >= lists_before + 5; },
                std::chrono::seconds(30)))
      << process_->Log();
  // Back-off after failure upon failure grows toward its 30 s cap (with jitter): allow for it.
  EXPECT_TRUE(WaitUntil([&] { return Readyz() == 200; }, std::chrono::seconds(45)))
      << OpsBody("/readyz");
  api_.Delete("pods", "p1", "default");
  api_.Delete("pods", "p2", "default");
  api_.Add("pods", MakePod({.name = "c", .gpus = {4}, .phase = "Pending"}));
  // 21 - 2 = 19 on GPU 4: "c" fits once the watch has shown all of it.
  EXPECT_TRUE(
      WaitUntil([&] { return Bind("c", "gpu-1")["allowed"] == true; }, std::chrono::seconds(45)))
      << process_->Log();
  ASSERT_EQ(kill(process_->pid, SIGTERM), 0);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(15)), 0) << process_->Log();
}

TEST_F(ServeLiveTest, FailOpenAllowsPlacementsOnAStaleStateWithAWarning) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  for (int i = 0; i < 20; ++i) {
    api_.Add("pods", MakePod({.name = "p" + std::to_string(i), .node = "gpu-1", .gpus = {4}}));
  }
  api_.Add("pods", MakePod({.name = "a", .gpus = {4}, .phase = "Pending"}));
  Serve({"--stale-after", "1s", "--stale-policy", "fail-open"});
  ASSERT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();
  api_.FailNext(1'000'000, 503, testing::RequestKind::kWatch);
  api_.DropWatches();
  ASSERT_TRUE(WaitUntil([&] { return Readyz() == 503; })) << process_->Log();
  json allowed = Bind("a", "gpu-1");  // the stale state says GPU 4 is full; it is not used
  EXPECT_EQ(allowed["allowed"], true) << allowed.dump();
  ASSERT_TRUE(allowed["warnings"].is_array()) << allowed.dump();
  EXPECT_NE(allowed["warnings"][0].get<std::string>().find("allowed without checking GPU limits"),
            std::string::npos)
      << allowed.dump();
  EXPECT_TRUE(WaitUntil(
      [&] { return Metric("cgpu_guard_watch_down_seconds{collection=\"pods\"}") >= 1.0; }));
  EXPECT_EQ(Metric("cgpu_guard_policy_decisions_total{outcome=\"allowed\",reason="
                   "\"cluster-state-stale\"}"),
            1);
}

TEST_F(ServeLiveTest, UnreachableApiServerKeepsItNotReadyAndSaysWhy) {
  api_.Stop();
  Serve();
  // Once both lists have been tried and failed, it is still not ready, and says why.
  EXPECT_TRUE(WaitUntil([&] {
    const std::string body = OpsBody("/readyz");
    return body.find("/api/v1/nodes: list") != std::string::npos &&
           body.find("/api/v1/pods: list") != std::string::npos;
  })) << OpsBody("/readyz");
  EXPECT_EQ(Readyz(), 503);
  httplib::Client ops("127.0.0.1", metrics_port_);
  auto result = ops.Get("/readyz");
  ASSERT_TRUE(result);
  EXPECT_NE(result->body.find("cluster state not synced"), std::string::npos) << result->body;
  // Bindings onto nodes it does not know cannot be counted: an error the failurePolicy decides.
  EXPECT_EQ(Bind("x", "gpu-1")["httpStatus"], 503);
}

}  // namespace
}  // namespace cgpu
