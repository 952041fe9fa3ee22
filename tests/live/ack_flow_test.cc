// The real ACK scheduling flow against the real binary: the scheduler writes the GPU it chose on
// the pending pod, then posts the Binding; the webhook's watch trails that write. Paused watches
// pin the race at its worst (the watch has delivered nothing since the write) so each outcome is
// deterministic; with the watch caught up the answers must be the same.
#include <gtest/gtest.h>

#include <future>

#include "live/live_serve_fixture.h"
#include "support/ack_scheduler.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::AckScheduler;
using testing::AckSchedulerDriver;
using testing::BindingEndpoint;
using testing::BindOutcome;
using testing::MakeNode;
using testing::MakePod;
using testing::WaitUntil;

std::string Describe(AckScheduler scheduler, BindingEndpoint endpoint) {
  return std::string(scheduler == AckScheduler::kExtender ? "extender" : "framework") + " via " +
         (endpoint == BindingEndpoint::kPodsBinding ? "pods/binding" : "bindings");
}

class AckFlowTest : public LiveServeTest {
 protected:
  // Adds a pod to the store, counting the pods there (see WaitForWatch).
  void AddPod(json pod) {
    api_.Add("pods", std::move(pod));
    ++pods_in_store_;
  }

  // gpu-1: 8 GPUs, GPU 1 full (20 running cGPU pods), the rest empty.
  void FillGpuOne() {
    api_.Add("nodes", MakeNode({.name = "gpu-1"}));
    for (int i = 0; i < 20; ++i) {
      AddPod(MakePod({.name = "full-" + std::to_string(i), .node = "gpu-1", .gpus = {1}}));
    }
  }

  // A pending cGPU pod with no GPU written on it yet, as the scheduler finds it.
  void AddPending(const std::string& name) {
    AddPod(MakePod({.name = name, .scheme = testing::GpuScheme::kNone, .phase = "Pending"}));
  }

  // A generous deadline unless a test is about the deadline: under sanitizers on a busy machine a
  // read can take far longer than in production, and these outcomes must not depend on it.
  void ServeAndWaitReady(const std::vector<std::string>& extra = {"--live-read-deadline", "20s"}) {
    Serve(extra);
    ASSERT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();
    driver_ = std::make_unique<AckSchedulerDriver>(api_, webhook_port_, dir_ + "/ca.crt");
  }

  // Waits until the watch has shown the webhook every change made so far: events arrive in order,
  // so once a pod added last is counted (cgpu_guard_cluster_pods, refreshed every second), every
  // change before it has been applied.
  void WaitForWatch() {
    AddPod(MakePod({.name = "sentinel-" + std::to_string(sentinels_++), .cgpu = false}));
    ASSERT_TRUE(WaitUntil([&] { return Metric("cgpu_guard_cluster_pods") == pods_in_store_; }))
        << Metric("cgpu_guard_cluster_pods") << " of " << pods_in_store_ << process_->Log();
  }

  static std::string Warnings(const json& response) {
    return response.contains("warnings") ? response["warnings"].dump() : "";
  }

  std::unique_ptr<AckSchedulerDriver> driver_;
  int pods_in_store_ = 0;
  int sentinels_ = 0;
};

// The 21st pod is denied and a pod for a GPU with room is allowed, silently, through both of
// ACK's schedulers and both binding endpoints, while the watch has not delivered the
// allocation write.
TEST_F(AckFlowTest, TheTwentyFirstPodIsDeniedWhileTheWatchLags) {
  FillGpuOne();
  int n = 0;
  for (AckScheduler scheduler : {AckScheduler::kExtender, AckScheduler::kFramework}) {
    for (BindingEndpoint endpoint :
         {BindingEndpoint::kPodsBinding, BindingEndpoint::kLegacyBindings}) {
      AddPending("to-full-" + std::to_string(n));
      AddPending("to-room-" + std::to_string(n));
      ++n;
    }
  }
  ServeAndWaitReady();

  n = 0;
  for (AckScheduler scheduler : {AckScheduler::kExtender, AckScheduler::kFramework}) {
    for (BindingEndpoint endpoint :
         {BindingEndpoint::kPodsBinding, BindingEndpoint::kLegacyBindings}) {
      SCOPED_TRACE(Describe(scheduler, endpoint));
      const std::string suffix = std::to_string(n++);
      api_.HoldWatchDelivery();  // the webhook's watch trails the scheduler's write
      BindOutcome full =
          driver_->Bind("default", "to-full-" + suffix, "gpu-1", 1, scheduler, endpoint);
      ASSERT_EQ(full.http_status, 200) << full.error << full.body << process_->Log();
      EXPECT_EQ(full.response["allowed"], false) << full.body;
      EXPECT_NE(full.body.find("GPU 1 already runs 20 cGPU pods"), std::string::npos) << full.body;
      EXPECT_FALSE(full.bound);

      BindOutcome room =
          driver_->Bind("default", "to-room-" + suffix, "gpu-1", 2 + n, scheduler, endpoint);
      ASSERT_EQ(room.http_status, 200) << room.error << room.body;
      EXPECT_EQ(room.response["allowed"], true) << room.body;
      EXPECT_EQ(Warnings(room.response), "") << "no unknown-GPU warning for a GPU with room";
      EXPECT_TRUE(room.bound);
      api_.ReleaseWatchDelivery();
    }
  }
  // Each binding read its pod once, with a quorum GET.
  EXPECT_GE(
      api_.CountRequests(testing::RequestKind::kGet, "/api/v1/namespaces/default/pods/to-full-0"),
      1);
  EXPECT_GE(Metric("cgpu_guard_live_reads_total{outcome=\"ok\",read=\"get-pod\"}"), 8);
}

// A denied binding is retried, and the scheduler may choose another GPU: the allocation of the
// earlier attempt, still in the cache, must not decide.
TEST_F(AckFlowTest, AnEarlierAttemptsAllocationDoesNotDecide) {
  FillGpuOne();
  AddPending("retried-to-room");
  AddPending("retried-to-full");
  ServeAndWaitReady();
  const AckScheduler scheduler = AckScheduler::kFramework;
  const BindingEndpoint endpoint = BindingEndpoint::kPodsBinding;

  // First attempt on the full GPU: denied; the allocation stays on the pod and the watch shows it.
  EXPECT_EQ(driver_->Bind("default", "retried-to-room", "gpu-1", 1, scheduler, endpoint)
                .response["allowed"],
            false);
  // An earlier attempt (its binding lost) left GPU 3, with room, on this one.
  json earlier = *api_.Find("pods", "retried-to-full", "default");
  earlier["metadata"]["annotations"] = AckSchedulerDriver::AllocationAnnotations(
      earlier, *api_.Find("nodes", "gpu-1"), 3, scheduler);
  api_.Update("pods", earlier);
  WaitForWatch();

  api_.HoldWatchDelivery();
  BindOutcome to_room =
      driver_->Bind("default", "retried-to-room", "gpu-1", 4, scheduler, endpoint);
  EXPECT_EQ(to_room.response["allowed"], true) << to_room.body;
  BindOutcome to_full =
      driver_->Bind("default", "retried-to-full", "gpu-1", 1, scheduler, endpoint);
  EXPECT_EQ(to_full.response["allowed"], false) << to_full.body;
  api_.ReleaseWatchDelivery();
}

// A pod deleted and created again under its name (a StatefulSet's): the cache's copy is the
// earlier pod, another uid. The webhook reads the one the Binding names.
TEST_F(AckFlowTest, ARecreatedPodIsJudgedAsItselfNotAsItsPredecessor) {
  FillGpuOne();
  json earlier = MakePod({.name = "db-0", .phase = "Pending", .cgpu = false});
  earlier["metadata"]["uid"] = "uid-db-0-earlier";
  AddPod(earlier);
  ServeAndWaitReady();
  WaitForWatch();

  api_.HoldWatchDelivery();
  api_.Delete("pods", "db-0", "default");
  api_.Add("pods",
           MakePod({.name = "db-0", .scheme = testing::GpuScheme::kNone, .phase = "Pending"}));
  BindOutcome bound = driver_->Bind("default", "db-0", "gpu-1", 1, AckScheduler::kExtender,
                                    BindingEndpoint::kPodsBinding);
  EXPECT_EQ(bound.response["allowed"], false)
      << "the cache's db-0 shares no GPU, but the pod being bound does: " << bound.body;
  api_.ReleaseWatchDelivery();
}

// A read in flight while the watch removes a pod: what the read returns decides this review alone
// and is never written back, so the removed pod is not counted again afterwards.
TEST_F(AckFlowTest, ALiveReadNeverBringsBackAPodTheWatchRemoved) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  for (int i = 0; i < 19; ++i) {
    AddPod(MakePod({.name = "full-" + std::to_string(i), .node = "gpu-1", .gpus = {1}}));
  }
  AddPending("mine");
  ServeAndWaitReady();
  WaitForWatch();
  // GPU 1 is one slot from its limit, so the binding recounts the node's pods; that list is
  // answered from the state before full-0 is deleted, and held until the watch has delivered the
  // deletion.
  api_.HoldNextAnswer([](const testing::RecordedRequest& request) {
    return request.params.count("fieldSelector");
  });
  auto bound = std::async(std::launch::async, [&] {
    return driver_->Bind("default", "mine", "gpu-1", 1, AckScheduler::kFramework,
                         BindingEndpoint::kPodsBinding);
  });
  ASSERT_TRUE(WaitUntil([&] { return api_.held_answer_waiting(); })) << process_->Log();
  api_.Delete("pods", "full-0", "default");
  --pods_in_store_;
  WaitForWatch();
  api_.ReleaseHeldAnswer();
  const BindOutcome outcome = bound.get();
  EXPECT_EQ(outcome.response["allowed"], true) << outcome.body;

  WaitForWatch();  // the binding and everything before it applied
  EXPECT_EQ(Metric("cgpu_guard_cluster_pods"), pods_in_store_) << "full-0 must stay gone";
  EXPECT_TRUE(WaitUntil([&] { return Metric("cgpu_guard_gpu_pods_max") == 19; }))
      << "18 left on GPU 1, and mine: " << Metric("cgpu_guard_gpu_pods_max");
}

// An API server too slow to answer within --live-read-deadline: the review is answered anyway,
// by the unknown policy, saying why; counted and logged.
TEST_F(AckFlowTest, ASlowApiServerLeavesTheGpuUnknownWithinTheDeadline) {
  FillGpuOne();
  AddPending("slow");
  ServeAndWaitReady({"--live-read-deadline", "200ms"});
  api_.HoldWatchDelivery();
  // The scheduler's write goes through first; from now on every answer takes 5 s.
  json pod = *api_.Find("pods", "slow", "default");
  pod["metadata"]["annotations"] = AckSchedulerDriver::AllocationAnnotations(
      pod, *api_.Find("nodes", "gpu-1"), 1, AckScheduler::kExtender);
  api_.Update("pods", pod);
  api_.SetDelay(std::chrono::seconds(5));
  BindOutcome slow = driver_->SendBinding("default", "slow", "uid-slow", "gpu-1",
                                          AckScheduler::kExtender, BindingEndpoint::kPodsBinding);
  api_.SetDelay(std::chrono::milliseconds(0));
  api_.ReleaseWatchDelivery();
  ASSERT_EQ(slow.http_status, 200) << slow.error << slow.body;
  EXPECT_EQ(slow.response["allowed"], true) << slow.body;  // --unknown-policy warn (default)
  EXPECT_NE(Warnings(slow.response)
                .find("cannot read pod default/slow from the API server within "
                      "200 ms"),
            std::string::npos)
      << slow.body;
  EXPECT_EQ(Metric("cgpu_guard_live_reads_total{outcome=\"deadline\",read=\"get-pod\"}"), 1);
  EXPECT_TRUE(WaitUntil([&] {  // the log is written in batches
    return process_->Log().find("a live read of the API server failed") != std::string::npos;
  })) << process_->Log();
}

}  // namespace
}  // namespace cgpu
