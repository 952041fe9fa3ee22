// The Event recorder through a KubeApi answered in memory by the tests' API server (FakeApiStore),
// on a fake clock, against a store which validates Events
// as the real one does (support/fake_event_rules.h): required fields, the 1 kB note, a series of
// at least 2, and nothing but the series changing on update.
#include "adapters/event_recorder.h"

#include <gtest/gtest.h>

#include "support/fake_api_store.h"
#include "support/fake_clock.h"
#include "support/memory_kube_api.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::FakeApiStore;
using testing::RequestKind;
using testing::WaitUntil;
using namespace std::chrono_literals;

EventIntent GpuFullOn(const std::string& pod, const std::string& uid = "uid-train") {
  EventIntent event;
  event.regarding.kind = "Pod";
  event.regarding.namespace_name = "team-a";
  event.regarding.name = pod;
  event.regarding.uid = uid;
  event.reason = kReasonGpuFull;
  event.action = "Bind";
  event.note = "denied: GPU 1 already runs 20 cGPU pods";
  return event;
}

EventIntent NodeIncompatible(const std::string& node) {
  EventIntent event;
  event.regarding.kind = "Node";
  event.regarding.name = node;
  event.regarding.uid = "uid-" + node;
  event.reason = kReasonNodeIncompatible;
  event.action = "Evaluate";
  event.note = "cGPU pods are refused on this node: driver 470 is too old";
  event.state_report = true;
  return event;
}

// The Event for `intent`'s series as another writer (replica `instance`) created it.
json WrittenElsewhere(const EventIntent& intent, const std::string& instance,
                      const std::string& note) {
  const ObjectRef& ref = intent.regarding;
  json regarding = {{"apiVersion", "v1"}, {"kind", ref.kind}, {"name", ref.name}};
  if (!ref.namespace_name.empty()) regarding["namespace"] = ref.namespace_name;
  return {{"apiVersion", "events.k8s.io/v1"},
          {"kind", "Event"},
          {"metadata",
           {{"name", EventName(intent, "cgpu-guard.io/webhook")},
            {"namespace", ref.namespace_name.empty() ? "default" : ref.namespace_name}}},
          {"eventTime", "2027-01-15T07:59:00.000000Z"},
          {"reportingController", "cgpu-guard.io/webhook"},
          {"reportingInstance", instance},
          {"action", intent.action},
          {"reason", intent.reason},
          {"type", intent.warning ? "Warning" : "Normal"},
          {"regarding", regarding},
          {"note", note}};
}

class EventRecorderTest : public ::testing::Test {
 protected:
  EventRecorderTest() {
    client_ = std::make_unique<testing::MemoryKubeApi>(api_);
    options_.reporting_instance = "cgpu-guard-0";
    options_.series_interval = std::chrono::milliseconds(0);
    options_.first_backoff = std::chrono::milliseconds(1);
    options_.now_unix_ms = [] { return int64_t{1'800'000'000'123}; };
    options_.random = [] { return 1.0; };  // the whole back-off each time
    options_.clock = &clock_;
  }

  void Start() {
    recorder_ = std::make_unique<EventRecorder>(*client_, options_);
    recorder_->Start();
  }

  std::optional<json> Stored(const EventIntent& intent) const {
    const std::string ns =
        intent.regarding.namespace_name.empty() ? "default" : intent.regarding.namespace_name;
    return api_.Find("events", EventName(intent, options_.reporting_controller), ns);
  }

  int64_t CountOf(const EventIntent& intent) const {
    const std::optional<json> event = Stored(intent);
    if (!event) return 0;
    return event->contains("series") ? (*event)["series"]["count"].get<int64_t>() : 1;
  }

  FakeApiStore api_;
  std::unique_ptr<KubeApi> client_;
  testing::FakeClock clock_;
  EventRecorderOptions options_;
  std::unique_ptr<EventRecorder> recorder_;
};

TEST_F(EventRecorderTest, CreatesAnEventKubectlDescribeFindsByTheObjectsUid) {
  Start();
  const EventIntent intent = GpuFullOn("train-7");
  ASSERT_TRUE(recorder_->Record(intent));
  ASSERT_TRUE(WaitUntil([&] { return Stored(intent).has_value(); }));
  const json event = *Stored(intent);
  EXPECT_EQ(event["metadata"]["namespace"], "team-a");
  EXPECT_EQ(event["regarding"]["kind"], "Pod");
  EXPECT_EQ(event["regarding"]["name"], "train-7");
  EXPECT_EQ(event["regarding"]["uid"], "uid-train");
  EXPECT_EQ(event["reason"], "CgpuGpuFull");
  EXPECT_EQ(event["type"], "Warning");
  EXPECT_EQ(event["action"], "Bind");
  EXPECT_EQ(event["reportingController"], "cgpu-guard.io/webhook");
  EXPECT_EQ(event["reportingInstance"], "cgpu-guard-0");
  EXPECT_EQ(event["eventTime"], "2027-01-15T08:00:00.123000Z");
  EXPECT_FALSE(event.contains("series"));
  // The store has it a moment before the recorder has read the answer.
  EXPECT_TRUE(WaitUntil([&] { return recorder_->counts().created == 1; }));
  EXPECT_EQ(recorder_->counts().failed, 0);
}

TEST_F(EventRecorderTest, RepeatsBecomeOneSeriesWithTheirCount) {
  Start();
  const EventIntent intent = GpuFullOn("train-7");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(recorder_->Record(intent));
  ASSERT_TRUE(WaitUntil([&] { return CountOf(intent) == 5; })) << CountOf(intent);
  // One object: every repeat went onto the first Event.
  EXPECT_EQ(api_.CountRequests(RequestKind::kCreate), 1);
  EXPECT_EQ((*Stored(intent))["series"]["lastObservedTime"], "2027-01-15T08:00:00.123000Z");

  // Another reason for the same pod is another series.
  EventIntent unchecked = GpuFullOn("train-7");
  unchecked.reason = kReasonUnchecked;
  ASSERT_TRUE(recorder_->Record(unchecked));
  ASSERT_TRUE(WaitUntil([&] { return Stored(unchecked).has_value(); }));
  EXPECT_EQ(CountOf(intent), 5);
}

TEST_F(EventRecorderTest, AnEventAnotherReplicaCreatedIsCountedOn) {
  const EventIntent intent = GpuFullOn("train-7");
  // Replica b recorded the series three times already.
  json theirs = WrittenElsewhere(intent, "cgpu-guard-1", "denied: from replica b");
  theirs["series"] = {{"count", 3}, {"lastObservedTime", "2027-01-15T07:59:30.000000Z"}};
  api_.Add("events", theirs);
  Start();
  ASSERT_TRUE(recorder_->Record(intent));
  ASSERT_TRUE(WaitUntil([&] { return CountOf(intent) == 4; })) << CountOf(intent);
  // Only the series moved: the note and instance stay replica b's (the API server would refuse
  // anything else).
  EXPECT_EQ((*Stored(intent))["note"], "denied: from replica b");
  EXPECT_TRUE(WaitUntil([&] { return recorder_->counts().updated == 1; }));
}

TEST_F(EventRecorderTest, AnUpdateThatLosesARaceReadsAgainAndReappliesItsCount) {
  Start();
  const EventIntent intent = GpuFullOn("train-7");
  ASSERT_TRUE(recorder_->Record(intent));
  ASSERT_TRUE(WaitUntil([&] { return Stored(intent).has_value(); }));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->counts().created == 1; }));
  // Another replica counts 6 more on it; our copy's resourceVersion is now stale.
  json moved = *Stored(intent);
  moved["series"] = {{"count", 7}, {"lastObservedTime", "2027-01-15T08:00:00.000000Z"}};
  api_.Update("events", moved);

  ASSERT_TRUE(recorder_->Record(intent));
  ASSERT_TRUE(WaitUntil([&] { return CountOf(intent) == 8; })) << CountOf(intent);
  int conflicts = 0;
  for (const auto& request : api_.requests()) {
    conflicts += request.kind == RequestKind::kUpdate && request.status == 409;
  }
  EXPECT_EQ(conflicts, 1);
}

TEST_F(EventRecorderTest, AnExpiredEventIsCreatedAgain) {
  Start();
  const EventIntent intent = GpuFullOn("train-7");
  ASSERT_TRUE(recorder_->Record(intent));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->counts().created == 1; }));
  api_.Delete("events", EventName(intent, options_.reporting_controller), "team-a");
  ASSERT_TRUE(recorder_->Record(intent));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->counts().created == 2; }));
  EXPECT_TRUE(Stored(intent).has_value());
  EXPECT_EQ(recorder_->counts().failed, 0);
}

TEST_F(EventRecorderTest, ANodeStateAlreadyReportedInTheSameWordsIsNotCountedAgain) {
  const EventIntent node = NodeIncompatible("gpu-9");
  const json reported = WrittenElsewhere(node, "cgpu-guard-1", node.note);
  api_.Add("events", reported);
  Start();
  ASSERT_TRUE(recorder_->Record(node));
  // Events are written in order by one thread: once the next one exists, the first was settled.
  const EventIntent next = GpuFullOn("train-8");
  ASSERT_TRUE(recorder_->Record(next));
  ASSERT_TRUE(WaitUntil([&] { return Stored(next).has_value(); }));
  EXPECT_EQ(CountOf(node), 1);
  EXPECT_EQ(recorder_->counts().updated, 0);
  EXPECT_EQ(recorder_->counts().failed, 0);
}

TEST_F(EventRecorderTest, NodeEventsLiveInTheDefaultNamespace) {
  Start();
  const EventIntent node = NodeIncompatible("gpu-9");
  ASSERT_TRUE(recorder_->Record(node));
  ASSERT_TRUE(WaitUntil([&] { return Stored(node).has_value(); }));
  const json event = *Stored(node);
  EXPECT_EQ(event["metadata"]["namespace"], "default");
  EXPECT_FALSE(event["regarding"].contains("namespace"));
  EXPECT_EQ(event["regarding"]["uid"], "uid-gpu-9");
}

TEST_F(EventRecorderTest, AFullQueueDropsAtOnceWhileTheApiServerHangs) {
  options_.queue_capacity = 2;
  Start();
  api_.HoldNextAnswer(
      [](const testing::RecordedRequest& request) { return request.kind == RequestKind::kCreate; });
  ASSERT_TRUE(recorder_->Record(GpuFullOn("a")));
  // The writer is stuck on the first create: the queue fills, and Record does not wait.
  ASSERT_TRUE(WaitUntil([&] { return api_.held_answer_waiting(); }));
  EXPECT_TRUE(recorder_->Record(GpuFullOn("b")));
  EXPECT_TRUE(recorder_->Record(GpuFullOn("c")));
  EXPECT_FALSE(recorder_->Record(GpuFullOn("d")));
  EXPECT_EQ(recorder_->counts().dropped, 1);
  api_.ReleaseHeldAnswer();
  ASSERT_TRUE(WaitUntil([&] { return recorder_->counts().created == 3; }));
  EXPECT_FALSE(Stored(GpuFullOn("d")).has_value());
}

TEST_F(EventRecorderTest, RefusalsFailAtOnceAndServerErrorsAreRetried) {
  Start();
  api_.FailNext(1, 403, RequestKind::kCreate);
  ASSERT_TRUE(recorder_->Record(GpuFullOn("a")));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->counts().failed == 1; }));
  EXPECT_EQ(api_.CountRequests(RequestKind::kCreate), 1);

  api_.FailNext(2, 503, RequestKind::kCreate);
  ASSERT_TRUE(recorder_->Record(GpuFullOn("b")));
  // Each 503 is retried after a back-off on the recorder's clock, which only the test moves.
  for (size_t retry = 1; retry <= 2; ++retry) {
    ASSERT_TRUE(
        WaitUntil([&] { return clock_.waits().size() >= retry && clock_.sleepers() == 1; }));
    EXPECT_FALSE(Stored(GpuFullOn("b")).has_value());
    clock_.AdvanceToNextDeadline();
  }
  ASSERT_TRUE(WaitUntil([&] { return Stored(GpuFullOn("b")).has_value(); }));
  // 403, then 503, 503 and the create that went through (logged as its answer leaves).
  EXPECT_TRUE(WaitUntil([&] { return api_.CountRequests(RequestKind::kCreate) == 4; }));
  EXPECT_EQ(recorder_->counts().failed, 1);
  // first_backoff (1 ms), doubled.
  EXPECT_EQ(clock_.waits(), (std::vector<std::chrono::nanoseconds>{1ms, 2ms}));
}

TEST_F(EventRecorderTest, ALongNoteIsCutToTheApisLimitOnACharacterBoundary) {
  Start();
  EventIntent intent = GpuFullOn("train-7");
  intent.note.clear();
  for (int i = 0; i < 600; ++i) intent.note += "é";  // two bytes each: 1200 bytes
  ASSERT_TRUE(recorder_->Record(intent));
  ASSERT_TRUE(
      WaitUntil([&] { return recorder_->counts().created + recorder_->counts().failed > 0; }));
  ASSERT_EQ(recorder_->counts().failed, 0);
  const std::string note = (*Stored(intent))["note"];
  EXPECT_EQ(note.size(), 1024u);
}

TEST_F(EventRecorderTest, AMissingUidIsResolvedBeforeWriting) {
  options_.resolve_uid = [](const ObjectRef& ref) {
    return ref.name == "train-7" ? std::string("uid-from-cache") : std::string();
  };
  Start();
  EventIntent intent = GpuFullOn("train-7", "");
  ASSERT_TRUE(recorder_->Record(intent));
  intent.regarding.uid = "uid-from-cache";
  ASSERT_TRUE(WaitUntil([&] { return Stored(intent).has_value(); }));
  EXPECT_EQ((*Stored(intent))["regarding"]["uid"], "uid-from-cache");
}

TEST_F(EventRecorderTest, BeyondItsMemoryTheQuietestSeriesIsForgottenRepeatsAndAll) {
  options_.max_series = 1;
  options_.series_interval = std::chrono::hours(1);  // repeats wait: they are still unwritten
  Start();
  const EventIntent first = GpuFullOn("a");
  ASSERT_TRUE(recorder_->Record(first));
  ASSERT_TRUE(recorder_->Record(first));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->counts().created == 1; }));
  const EventIntent second = GpuFullOn("b");
  ASSERT_TRUE(recorder_->Record(second));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->counts().created == 2; }));
  // "a" was forgotten with its repeat; a later one starts from the stored Event again.
  ASSERT_TRUE(recorder_->Record(first));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->counts().updated == 1; }));
  EXPECT_EQ(CountOf(first), 2);
  EXPECT_EQ(recorder_->counts().failed, 0);
}

TEST(EventNameTest, IsStablePerSeriesAndFitsAnObjectName) {
  const EventIntent a = GpuFullOn("train-7");
  EventIntent b = a;
  b.reason = kReasonUnchecked;
  EXPECT_EQ(EventName(a, "cgpu-guard.io/webhook"), EventName(a, "cgpu-guard.io/webhook"));
  EXPECT_NE(EventName(a, "cgpu-guard.io/webhook"), EventName(b, "cgpu-guard.io/webhook"));
  EXPECT_EQ(EventName(a, "x").rfind("train-7.", 0), 0u);
  EventIntent long_name = a;
  long_name.regarding.name = std::string(252, 'p');
  EXPECT_LE(EventName(long_name, "x").size(), 253u);
}

}  // namespace
}  // namespace cgpu
