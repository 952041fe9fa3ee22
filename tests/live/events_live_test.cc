// `cgpu-guard serve` records Events where operators look (kubectl describe pod|node), against the
// tests' API server, which validates Events as the real one does. Denials and warnings land on
// the pod, counted up as one series; node Events come on a verdict's first sighting and on its
// changes, never from a relist that shows the same verdict again.
#include <signal.h>

#include "live/live_serve_fixture.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::MakeNode;
using testing::MakePod;
using testing::RequestKind;
using testing::WaitUntil;

class EventsLiveTest : public LiveServeTest {
 protected:
  // The Events about `kind` `name` with `reason`, as kubectl describe would find them.
  std::vector<json> EventsAbout(const std::string& kind, const std::string& name,
                                const std::string& reason) const {
    std::vector<json> found;
    // The tests' pods live in "default", as node Events do.
    for (const auto& event : ListEvents("default")) {
      if (event["regarding"]["kind"] == kind && event["regarding"]["name"] == name &&
          event["reason"] == reason) {
        found.push_back(event);
      }
    }
    return found;
  }

  std::vector<json> ListEvents(const std::string& ns) const {
    std::vector<json> events;
    // Every Event created in `ns` (from the request log), as stored now.
    for (const auto& request : api_.requests()) {
      if (request.kind != RequestKind::kCreate || request.status != 201) continue;
      if (request.path != "/apis/events.k8s.io/v1/namespaces/" + ns + "/events") continue;
      const json sent = json::parse(request.body, nullptr, false);
      if (!sent.is_object()) continue;
      if (auto stored = api_.Find("events", sent["metadata"]["name"], ns)) {
        events.push_back(*stored);
      }
    }
    return events;
  }

  static int64_t SeriesCount(const json& event) {
    return event.contains("series") ? event["series"]["count"].get<int64_t>() : 1;
  }

  int EventWrites(RequestKind kind) const {
    int count = 0;
    for (const auto& request : api_.requests()) {
      count += request.kind == kind && request.path.rfind("/apis/events.k8s.io/", 0) == 0;
    }
    return count;
  }
};

TEST_F(EventsLiveTest, DenialsLandOnThePodAsOneSeriesThatCountsUp) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  for (int i = 0; i < 20; ++i) {
    api_.Add("pods", MakePod({.name = "p" + std::to_string(i), .node = "gpu-1", .gpus = {4}}));
  }
  api_.Add("pods", MakePod({.name = "late", .gpus = {4}, .phase = "Pending"}));
  Serve({"--event-series-interval", "0s"});
  ASSERT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();

  // The scheduler retries the pod: three denials, one Event counting three.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Bind("late", "gpu-1")["allowed"], false);
  ASSERT_TRUE(WaitUntil([&] {
    const auto events = EventsAbout("Pod", "late", "CgpuGpuFull");
    return events.size() == 1 && SeriesCount(events[0]) == 3;
  })) << process_->Log();
  const json event = EventsAbout("Pod", "late", "CgpuGpuFull")[0];
  EXPECT_EQ(event["type"], "Warning");
  EXPECT_EQ(event["action"], "Bind");
  EXPECT_EQ(event["regarding"]["uid"], "uid-late");  // kubectl describe pod matches on it
  EXPECT_NE(event["note"].get<std::string>().find("GPU 4 already runs 20 cGPU pods"),
            std::string::npos)
      << event.dump();
  EXPECT_EQ(EventWrites(RequestKind::kCreate), 1);
  EXPECT_TRUE(WaitUntil([&] {
    return Metric("cgpu_guard_events_total{outcome=\"created\"}") == 1 &&
           Metric("cgpu_guard_events_total{outcome=\"updated\"}") >= 1;
  })) << OpsBody("/metrics");
  EXPECT_EQ(Metric("cgpu_guard_events_total{outcome=\"failed\"}"), 0);

  ASSERT_EQ(kill(process_->pid, SIGTERM), 0);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(15)), 0) << process_->Log();
}

TEST_F(EventsLiveTest, WarnModeTellsThePodWhatEnforcementWouldHaveDenied) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  for (int i = 0; i < 20; ++i) {
    api_.Add("pods", MakePod({.name = "p" + std::to_string(i), .node = "gpu-1", .gpus = {2}}));
  }
  api_.Add("pods", MakePod({.name = "extra", .gpus = {2}, .phase = "Pending"}));
  Serve({"--mode", "warn"});
  ASSERT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();
  // The answer's warning goes to the scheduler, which only logs it; the Event reaches people.
  ASSERT_EQ(Bind("extra", "gpu-1")["allowed"], true);
  ASSERT_TRUE(WaitUntil([&] { return EventsAbout("Pod", "extra", "CgpuWouldDeny").size() == 1; }))
      << process_->Log();
  EXPECT_NE(
      EventsAbout("Pod", "extra", "CgpuWouldDeny")[0]["note"].get<std::string>().find("would deny"),
      std::string::npos);
}

TEST_F(EventsLiveTest, NodeEventsComeOnFirstSightingAndChangeNeverOnARelist) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  api_.Add("nodes", MakeNode({.name = "old", .cgpu_version = "1.5.2", .driver = "535.104.05"}));
  const std::string old_uid = (*api_.Find("nodes", "old"))["metadata"]["uid"];
  Serve();
  ASSERT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();
  ASSERT_TRUE(WaitUntil([&] {
    return EventsAbout("Node", "old", "CgpuNodeIncompatible").size() == 1;
  })) << process_->Log();
  const json incompatible = EventsAbout("Node", "old", "CgpuNodeIncompatible")[0];
  EXPECT_EQ(incompatible["metadata"]["namespace"], "default");
  EXPECT_EQ(incompatible["regarding"]["uid"], old_uid);
  EXPECT_NE(incompatible["note"].get<std::string>().find("upgrade cGPU"), std::string::npos)
      << incompatible.dump();

  // A relist shows both nodes again, verdicts unchanged.
  const int node_lists = api_.CountRequests(RequestKind::kList, "/api/v1/nodes");
  api_.FailNext(1, 410, RequestKind::kWatch, "/api/v1/nodes");
  api_.DropWatches();
  ASSERT_TRUE(WaitUntil(
      [&] { return api_.CountRequests(RequestKind::kList, "/api/v1/nodes") > node_lists; },
      std::chrono::seconds(30)))
      << process_->Log();

  // Then a real change: "old" is upgraded. Events are written in order, so once this one
  // exists anything the relist had caused would exist too.
  api_.Update("nodes", MakeNode({.name = "old"}));
  ASSERT_TRUE(WaitUntil([&] {
    return EventsAbout("Node", "old", "CgpuNodeCompatible").size() == 1;
  })) << process_->Log();
  EXPECT_EQ(EventsAbout("Node", "old", "CgpuNodeCompatible")[0]["type"], "Normal");
  EXPECT_EQ(SeriesCount(EventsAbout("Node", "old", "CgpuNodeIncompatible")[0]), 1);
  EXPECT_TRUE(EventsAbout("Node", "gpu-1", "CgpuNodeCompatible").empty());
  EXPECT_EQ(EventWrites(RequestKind::kCreate), 2);
  EXPECT_EQ(EventWrites(RequestKind::kUpdate), 0);
}

TEST_F(EventsLiveTest, EventsOffWritesNone) {
  api_.Add("nodes", MakeNode({.name = "old", .cgpu_version = "1.5.2", .driver = "535.104.05"}));
  api_.Add("pods", MakePod({.name = "shared", .gpus = {0}, .phase = "Pending"}));
  Serve({"--events", "off"});
  ASSERT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();
  ASSERT_EQ(Bind("shared", "old")["allowed"], false);
  // The decision is counted once the answer is back; an Event would have been queued before.
  EXPECT_TRUE(WaitUntil([&] {
    return Metric("cgpu_guard_policy_decisions_total{outcome=\"denied\",reason=\"driver\"}") == 1;
  }));
  EXPECT_EQ(EventWrites(RequestKind::kCreate), 0);
  EXPECT_NE(process_->Log().find("\"events\":\"off\""), std::string::npos) << process_->Log();
}

}  // namespace
}  // namespace cgpu
