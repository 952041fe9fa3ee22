// The informer against the fake API server: paged lists, watch events, bookmarks, dropped and
// expired watches, expired continue tokens, errors with back-off, and a prompt Stop(). Most tests
// reach the fake in memory (MemoryKubeApi) on a FakeClock, so back-off delays are exact and
// nothing waits on real time; InformerOverHttpsTest keeps what needs the HTTPS client (token
// rotation, answers dropped past the byte bound as they arrive, cancelling a request on the
// wire).
#include "adapters/informer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <set>

#include "adapters/kube_client.h"
#include "adapters/object_view_reader.h"
#include "support/fake_api_server.h"
#include "support/fake_api_server_config.h"
#include "support/fake_clock.h"
#include "support/memory_kube_api.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::FakeApiServer;
using testing::FakeApiStore;
using testing::FakeClock;
using testing::MemoryKubeApi;
using testing::RequestKind;
using testing::WaitUntil;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

json Pod(const std::string& name, const std::string& node = "node-a",
         const std::string& phase = "Running") {
  return {{"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"nodeName", node}}},
          {"status", {{"phase", phase}}}};
}

// What a cluster cache does with the callbacks: a map of objects, swept at the end of a list.
class Recorder : public WatchHandler {
 public:
  void OnListStart() override {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back("start");
    seen_.clear();
    listing_ = true;
  }
  void OnObject(const SimdjsonView& object) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (throw_on_next_object_) {
      throw_on_next_object_ = false;
      throw std::runtime_error("handler bug");
    }
    // Copied: the view is only valid during the call.
    const std::string name(object.Member("metadata").Member("name").String());
    const std::string phase(object.Member("status").Member("phase").String());
    log_.push_back("object " + name + " " + phase);
    objects_[name] = object.Json();
    if (listing_) seen_.insert(name);
  }
  void OnDelete(const SimdjsonView& object) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string name(object.Member("metadata").Member("name").String());
    log_.push_back("delete " + name);
    objects_.erase(name);
  }
  void OnListEnd() override {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back("end");
    for (auto it = objects_.begin(); it != objects_.end();) {
      it = seen_.count(it->first) ? std::next(it) : objects_.erase(it);
    }
    listing_ = false;
  }

  std::set<std::string> names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<std::string> names;
    for (const auto& [name, object] : objects_) names.insert(name);
    return names;
  }
  std::vector<std::string> log() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  int count(const std::string& entry) const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(std::count(log_.begin(), log_.end(), entry));
  }
  void ThrowOnNextObject() {
    std::lock_guard<std::mutex> lock(mu_);
    throw_on_next_object_ = true;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> objects_;  // name -> the object's JSON text
  std::set<std::string> seen_;
  bool listing_ = false;
  bool throw_on_next_object_ = false;
  std::vector<std::string> log_;
};

enum class Transport { kMemory, kHttps };

class InformerTest : public ::testing::Test {
 protected:
  explicit InformerTest(Transport transport = Transport::kMemory)
      : owned_(transport == Transport::kHttps ? std::make_unique<FakeApiServer>()
                                              : std::make_unique<FakeApiStore>()),
        server_(*owned_) {
    if (transport == Transport::kHttps) {
      KubeConfig config = testing::ConfigFor(static_cast<FakeApiServer&>(server_));
      config.token_file = token_dir_ + "/token";
      testing::WriteFile(config.token_file, "token-1");
      KubeClientOptions client_options;
      client_options.version = "test";
      client_ = std::make_unique<KubeClient>(config, client_options);
    } else {
      client_ = std::make_unique<MemoryKubeApi>(server_, testing::MemoryKubeApiOptions{"token-1"});
    }
    options_.page_size = 3;
    options_.min_backoff = 5ms;
    options_.max_backoff = 50ms;
    options_.random = [] { return 1.0; };  // deterministic: the whole back-off each time
    options_.clock = &clock_;
  }

  void TearDown() override {
    informer_.reset();
    stop_driver_ = true;
    if (driver_.joinable()) driver_.join();
  }

  // Unless a test drives the clock itself (drive_clock_ = false), every back-off the informer
  // begins is let go at once: the fake time moves to its end.
  void Start() {
    informer_ = std::make_unique<Informer>(*client_, options_, recorder_);
    if (drive_clock_ && !driver_.joinable()) {
      driver_ = std::thread([this] {
        while (!stop_driver_) {
          if (clock_.WaitForSleepers(1, 5ms) && clock_.AdvanceToNextDeadline() == 0ns) {
            std::this_thread::yield();  // the sleeper is on its way out
          }
        }
      });
    }
    informer_->Start();
  }

  // Waits until the informer has begun its `n`-th back-off (counted from the start).
  bool BackOffBegun(size_t n) const {
    return WaitUntil([&] { return clock_.waits().size() >= n && clock_.sleepers() == 1; });
  }

  void StartAndSync() {
    Start();
    ASSERT_TRUE(WaitUntil([&] { return informer_->synced() && informer_->watching(); }));
  }

  std::string Rv() const { return std::to_string(server_.resource_version()); }

  // The informer has caught up with the server's latest change.
  bool CaughtUp() const { return informer_->resource_version() == Rv(); }

  std::vector<testing::RecordedRequest> Watches() const {
    std::vector<testing::RecordedRequest> watches;
    for (auto& request : server_.requests()) {
      if (request.kind == RequestKind::kWatch) watches.push_back(request);
    }
    return watches;
  }

  std::unique_ptr<FakeApiStore> owned_;
  FakeApiStore& server_;  // the fake API server, reached through client_
  std::string token_dir_ = testing::MakeTempDir();
  std::unique_ptr<KubeApi> client_;
  InformerOptions options_;
  Recorder recorder_;
  FakeClock clock_;
  bool drive_clock_ = true;
  std::atomic<bool> stop_driver_{false};
  std::thread driver_;
  std::unique_ptr<Informer> informer_;  // declared last: stopped before the rest goes
};

class InformerOverHttpsTest : public InformerTest {
 protected:
  InformerOverHttpsTest() : InformerTest(Transport::kHttps) {}
};

// Pods near etcd's 1.5 MiB object limit: a page past max_page_bytes is never kept whole; the
// same page is asked for again with half the limit (the continue token holds), and the list
// completes with every pod, one or two at a time.
TEST_F(InformerOverHttpsTest, PagesPastTheByteBoundAreAskedForAgainSmaller) {
  for (int i = 0; i < 9; ++i) {
    nlohmann::json pod = Pod("big" + std::to_string(i));
    pod["metadata"]["annotations"]["filler"] = std::string(1'400'000, 'x');
    server_.Add("pods", pod);
  }
  options_.page_size = 8;
  options_.max_page_bytes = 3 << 20;  // two such pods fit, three do not
  StartAndSync();
  EXPECT_EQ(recorder_.names().size(), 9u);
  std::vector<std::string> limits;
  for (const auto& request : server_.requests()) {
    if (request.kind == RequestKind::kList) limits.push_back(request.params.at("limit"));
  }
  // 8, 4 and 2 for the first page (8 and 4 past the bound), then 2 at a time.
  ASSERT_GE(limits.size(), 3u);
  EXPECT_EQ((std::vector<std::string>(limits.begin(), limits.begin() + 3)),
            (std::vector<std::string>{"8", "4", "2"}));
  for (size_t i = 3; i < limits.size(); ++i) EXPECT_EQ(limits[i], "2");
  EXPECT_EQ(informer_->stats().smaller_pages, 2);
  EXPECT_EQ(informer_->stats().errors, 0);
}

TEST_F(InformerOverHttpsTest, InitialPagedListDeliversEverythingThenWatchesFromItsVersion) {
  for (int i = 0; i < 7; ++i) server_.Add("pods", Pod("p" + std::to_string(i)));
  const std::string list_version = Rv();
  Start();
  ASSERT_TRUE(WaitUntil([&] { return informer_->synced(); }));
  EXPECT_EQ(recorder_.names().size(), 7u);
  EXPECT_EQ(recorder_.log().front(), "start");
  EXPECT_EQ(recorder_.log().back(), "end");
  EXPECT_EQ(informer_->stats().lists, 1);
  EXPECT_EQ(informer_->resource_version(), list_version);

  const auto lists = server_.requests();
  ASSERT_GE(lists.size(), 3u);
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 3);  // 3 + 3 + 1
  EXPECT_EQ(lists[0].params.at("limit"), "3");
  EXPECT_EQ(lists[0].params.count("continue"), 0u);
  EXPECT_EQ(lists[1].params.count("continue"), 1u);

  ASSERT_TRUE(WaitUntil([&] { return informer_->watching(); }));
  const auto watches = Watches();
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0].path, "/api/v1/pods");
  EXPECT_EQ(watches[0].params.at("watch"), "1");
  EXPECT_EQ(watches[0].params.at("resourceVersion"), list_version);
  EXPECT_EQ(watches[0].params.at("allowWatchBookmarks"), "true");
  EXPECT_EQ(watches[0].params.at("timeoutSeconds"), "300");
  EXPECT_EQ(watches[0].authorization, "Bearer token-1");
  EXPECT_EQ(informer_->stats().watch_starts, 1);
  EXPECT_EQ(informer_->stats().errors, 0);
}

TEST_F(InformerTest, EmptyCollectionSyncs) {
  StartAndSync();
  EXPECT_TRUE(recorder_.names().empty());
  EXPECT_EQ(recorder_.log(), (std::vector<std::string>{"start", "end"}));
}

TEST_F(InformerTest, WatchEventsArriveInOrder) {
  server_.Add("pods", Pod("a"));
  StartAndSync();
  server_.Add("pods", Pod("b", "node-a", "Pending"));
  server_.Update("pods", Pod("b", "node-a", "Running"));
  server_.Delete("pods", "a", "default");
  server_.Add("nodes", {{"metadata", {{"name", "not-a-pod"}}}});
  server_.Update("pods", Pod("b", "node-a", "Succeeded"));
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp(); }));
  EXPECT_EQ(recorder_.log(),
            (std::vector<std::string>{"start", "object a Running", "end", "object b Pending",
                                      "object b Running", "delete a", "object b Succeeded"}));
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"b"}));
  EXPECT_EQ(informer_->stats().events, 4);
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 1);
}

TEST_F(InformerTest, BookmarkAdvancesTheResourceVersionOnly) {
  StartAndSync();
  const std::string before = informer_->resource_version();
  server_.Add("nodes", {{"metadata", {{"name", "n1"}}}});  // moves the version, not a pod
  server_.SendBookmarks("pods");
  ASSERT_TRUE(WaitUntil([&] { return informer_->stats().bookmarks == 1; }));
  EXPECT_EQ(informer_->resource_version(), Rv());
  EXPECT_NE(informer_->resource_version(), before);
  EXPECT_EQ(recorder_.log(), (std::vector<std::string>{"start", "end"}));

  // The next watch resumes from the bookmark.
  server_.DropWatches();
  ASSERT_TRUE(WaitUntil([&] { return Watches().size() == 2; }));
  EXPECT_EQ(Watches()[1].params.at("resourceVersion"), Rv());
}

TEST_F(InformerTest, DroppedStreamWatchesAgainFromTheLastVersionWithoutAList) {
  server_.Add("pods", Pod("a"));
  StartAndSync();
  server_.Add("pods", Pod("b"));
  ASSERT_TRUE(WaitUntil([&] { return CaughtUp(); }));
  const std::string last = informer_->resource_version();

  server_.DropWatches();
  server_.Add("pods", Pod("c"));  // while the informer is away
  ASSERT_TRUE(WaitUntil([&] { return recorder_.names().count("c") == 1; }));
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 1);
  const auto watches = Watches();
  ASSERT_EQ(watches.size(), 2u);
  EXPECT_EQ(watches[1].params.at("resourceVersion"), last);
  EXPECT_EQ(informer_->stats().watch_restarts, 1);
  EXPECT_EQ(informer_->stats().relists, 0);
  EXPECT_EQ(recorder_.count("object c Running"), 1);
}

TEST_F(InformerTest, WatchEndedByTheServerTimeoutIsReopened) {
  options_.watch_timeout_seconds = 1;
  StartAndSync();
  ASSERT_TRUE(WaitUntil([&] { return Watches().size() >= 2 && informer_->watching(); }, 10s));
  EXPECT_GE(informer_->stats().watch_restarts, 1);
  EXPECT_EQ(informer_->stats().errors, 0);
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 1);
  server_.Add("pods", Pod("late"));
  ASSERT_TRUE(WaitUntil([&] { return recorder_.names().count("late") == 1; }));
}

// The informer misses a deletion (its watch is gone and history compacted): only the relist's
// OnListEnd can tell the handler the object is gone.
void ExpireWhileAway(FakeApiStore& server) {
  server.PauseWatches();
  server.Delete("pods", "doomed", "default");
  server.Add("pods", Pod("newcomer"));
  server.Compact();
  server.DropWatches();
  server.ResumeWatches();
}

TEST_F(InformerTest, ExpiredWatchAsErrorEventRelists) {
  server_.Add("pods", Pod("doomed"));
  server_.Add("pods", Pod("kept"));
  StartAndSync();
  ExpireWhileAway(server_);
  ASSERT_TRUE(WaitUntil([&] { return informer_->stats().lists == 2 && informer_->watching(); }));
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"kept", "newcomer"}));
  EXPECT_EQ(recorder_.count("delete doomed"), 0);  // never seen as an event
  EXPECT_EQ(recorder_.count("start"), 2);
  EXPECT_EQ(recorder_.count("end"), 2);
  EXPECT_EQ(informer_->stats().relists, 1);
  EXPECT_EQ(informer_->stats().errors, 1);  // the dropped stream; a 410 is not an error
  EXPECT_NE(informer_->stats().last_error().find("too old resource version"), std::string::npos)
      << informer_->stats().last_error();
  // The second watch was refused with an ERROR event, the third starts from the new list.
  const auto watches = Watches();
  ASSERT_GE(watches.size(), 3u);
  EXPECT_EQ(watches[1].status, 200);
  EXPECT_EQ(watches.back().params.at("resourceVersion"), informer_->resource_version());
}

TEST_F(InformerTest, ExpiredWatchAsHttp410Relists) {
  server_.set_expired_watch_as_http_410(true);
  server_.Add("pods", Pod("doomed"));
  server_.Add("pods", Pod("kept"));
  StartAndSync();
  ExpireWhileAway(server_);
  ASSERT_TRUE(WaitUntil([&] { return informer_->stats().lists == 2 && informer_->watching(); }));
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"kept", "newcomer"}));
  EXPECT_EQ(informer_->stats().relists, 1);
  EXPECT_EQ(Watches()[1].status, 410);
}

TEST_F(InformerTest, ExpiredContinueTokenRestartsTheList) {
  for (int i = 0; i < 5; ++i) server_.Add("pods", Pod("p" + std::to_string(i)));
  options_.page_size = 2;
  server_.ExpireNextContinue(1);
  StartAndSync();
  EXPECT_EQ(recorder_.names().size(), 5u);
  // page 1, page 2 refused; then pages 1, 2, 3.
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 5);
  EXPECT_EQ(recorder_.count("start"), 2);
  EXPECT_EQ(recorder_.count("end"), 1);
  EXPECT_EQ(informer_->stats().relists, 1);
  EXPECT_EQ(informer_->stats().lists, 1);
  const auto requests = server_.requests();
  EXPECT_EQ(requests[1].status, 410);
  EXPECT_EQ(requests[2].params.count("continue"), 0u);
}

TEST_F(InformerTest, ServerErrorsBackOffThenRecover) {
  server_.Add("pods", Pod("a"));
  server_.FailNext(3, 500, RequestKind::kList);
  drive_clock_ = false;
  Start();
  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(BackOffBegun(n));
    EXPECT_FALSE(informer_->synced());
    clock_.AdvanceToNextDeadline();
  }
  ASSERT_TRUE(WaitUntil([&] { return informer_->synced() && informer_->watching(); }));
  // Back-off 5, 10, 20 ms with the jitter factor pinned at 1; none since.
  EXPECT_EQ(clock_.waits(), (std::vector<std::chrono::nanoseconds>{5ms, 10ms, 20ms}));
  EXPECT_EQ(informer_->stats().errors, 3);
  EXPECT_NE(informer_->stats().last_error().find("HTTP 500"), std::string::npos)
      << informer_->stats().last_error();
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 4);
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"a"}));
  EXPECT_EQ(recorder_.count("start"), 1);  // failed pages never started a list
}

TEST_F(InformerTest, TimeWithoutWatchCountsOnlyWhileNoWatchIsOpen) {
  options_.min_backoff = 100ms;
  options_.max_backoff = 100ms;
  drive_clock_ = false;
  Start();
  ASSERT_TRUE(WaitUntil([&] { return informer_->watching(); }));
  EXPECT_EQ(informer_->time_without_watch(), 0ms);
  // The API server refuses every watch: the time grows with each failed attempt.
  server_.FailNext(1000, 500, RequestKind::kWatch);
  server_.DropWatches();
  ASSERT_TRUE(BackOffBegun(1));
  EXPECT_FALSE(informer_->watching());
  EXPECT_EQ(informer_->time_without_watch(), 0ms);  // no time has passed yet
  for (size_t n = 2; n <= 4; ++n) {
    clock_.AdvanceToNextDeadline();
    ASSERT_TRUE(BackOffBegun(n));  // the next watch was refused
  }
  EXPECT_EQ(informer_->time_without_watch(), 300ms);
  EXPECT_EQ(informer_->stats().errors, 4);  // the drop and three refusals
  // It heals: zero again once a watch is open.
  server_.ClearFaults();
  clock_.AdvanceToNextDeadline();
  ASSERT_TRUE(WaitUntil([&] { return informer_->watching(); }));
  EXPECT_EQ(informer_->time_without_watch(), 0ms);
}

TEST_F(InformerTest, BackOffGrowsAndIsCapped) {
  options_.min_backoff = 10ms;
  options_.max_backoff = 40ms;
  std::atomic<int> draws{0};
  options_.random = [&draws] {
    ++draws;
    return 0.5;
  };
  server_.FailNext(5, 503, RequestKind::kList);
  StartAndSync();
  // 0.5 x (10, 20, 40, 40, 40): doubled each time up to the cap, times the draw.
  EXPECT_EQ(clock_.waits(), (std::vector<std::chrono::nanoseconds>{5ms, 10ms, 20ms, 20ms, 20ms}));
  EXPECT_EQ(draws, 5);
}

TEST_F(InformerOverHttpsTest, UnauthorizedRecoversOnceTheTokenFileIsRotated) {
  server_.RequireToken("token-2");
  Start();
  ASSERT_TRUE(WaitUntil([&] { return informer_->stats().errors >= 2; }));
  EXPECT_FALSE(informer_->synced());
  EXPECT_NE(informer_->stats().last_error().find("HTTP 401"), std::string::npos);
  testing::WriteFile(token_dir_ + "/token", "token-2");
  ASSERT_TRUE(WaitUntil([&] { return informer_->synced() && informer_->watching(); }));
  EXPECT_EQ(Watches().back().authorization, "Bearer token-2");
}

TEST_F(InformerTest, FailedWatchRetriesFromTheSameVersion) {
  StartAndSync();
  const std::string version = informer_->resource_version();
  server_.FailNext(2, 403, RequestKind::kWatch);
  server_.DropWatches();
  ASSERT_TRUE(WaitUntil([&] { return Watches().size() == 4 && informer_->watching(); }));
  for (const auto& watch : Watches()) EXPECT_EQ(watch.params.at("resourceVersion"), version);
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 1);
  EXPECT_EQ(informer_->stats().errors, 3);  // the drop and two 403s
  EXPECT_NE(informer_->stats().last_error().find("HTTP 403"), std::string::npos);
}

TEST_F(InformerTest, MalformedEventIsCountedAndRelists) {
  server_.Add("pods", Pod("a"));
  StartAndSync();
  server_.InjectWatchLine("{\"type\":\"ADDED\",\"object\":");
  ASSERT_TRUE(WaitUntil([&] { return informer_->stats().lists == 2 && informer_->watching(); }));
  EXPECT_EQ(informer_->stats().errors, 1);
  EXPECT_NE(informer_->stats().last_error().find("malformed event"), std::string::npos);
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"a"}));
  server_.Add("pods", Pod("b"));
  ASSERT_TRUE(WaitUntil([&] { return recorder_.names().count("b") == 1; }));
}

// Each of these lines is not a watch event: the informer counts it, lists again, and watches on.
TEST_F(InformerTest, MalformedEventsOfEveryShapeRelist) {
  server_.Add("pods", Pod("a"));
  StartAndSync();
  const std::vector<std::string> lines = {
      "not json at all",
      "[]",
      R"({"type":"ADDED"})",
      R"({"type":7,"object":{"metadata":{"name":"x"}}})",
      R"({"type":"ADDED","object":"a string"})",
      R"({"type":"ADDED","object":null})",
      R"({"type":"ADDED","object":{"metadata":{"name":"x"}}} trailing)",
      "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"\xff\"}}}",  // bad UTF-8
  };
  int64_t lists = 1;
  for (const std::string& line : lines) {
    server_.InjectWatchLine(line);
    ++lists;
    ASSERT_TRUE(WaitUntil([&] {
      return informer_->stats().lists == lists && informer_->watching();
    })) << line;
    EXPECT_NE(informer_->stats().last_error().find("malformed event"), std::string::npos) << line;
  }
  EXPECT_EQ(informer_->stats().errors, static_cast<int64_t>(lines.size()));
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"a"}));
  EXPECT_EQ(recorder_.count("object x "), 0);
}

TEST_F(InformerTest, UnknownEventTypeRelists) {
  StartAndSync();
  server_.InjectWatchLine(R"({"type":"SURPRISE","object":{"metadata":{"name":"x"}}})");
  ASSERT_TRUE(WaitUntil([&] { return informer_->stats().lists == 2 && informer_->watching(); }));
  EXPECT_NE(informer_->stats().last_error().find("unknown event type \"SURPRISE\""),
            std::string::npos);
}

TEST_F(InformerTest, ErrorEventWithCode410AsTheOnlyStatusFieldRelists) {
  StartAndSync();
  server_.InjectWatchLine(R"({"type":"ERROR","object":{"code":410}})");
  ASSERT_TRUE(WaitUntil([&] { return informer_->stats().relists == 1 && informer_->watching(); }));
  EXPECT_EQ(informer_->stats().errors, 0);
  // No message: the Status itself is quoted.
  EXPECT_NE(informer_->stats().last_error().find(R"({"code":410} (listing again))"),
            std::string::npos)
      << informer_->stats().last_error();
}

TEST_F(InformerTest, ErrorEventWhose410IsNotAnIntegerIsAnError) {
  StartAndSync();
  server_.InjectWatchLine(R"({"type":"ERROR","object":{"code":"410","message":"odd"}})");
  ASSERT_TRUE(WaitUntil([&] { return Watches().size() == 2 && informer_->watching(); }));
  EXPECT_EQ(informer_->stats().relists, 0);
  EXPECT_EQ(informer_->stats().errors, 1);
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 1);
}

// A handler may read its views with the one-traversal readers; fields of odd JSON types read as
// empty, as they do from nlohmann::json.
class PodObjectRecorder : public WatchHandler {
 public:
  void OnListStart() override {}
  void OnObject(const SimdjsonView& object) override {
    std::lock_guard<std::mutex> lock(mu_);
    PodObject pod = ReadPodObject(object);
    pods_[pod.name] = std::move(pod);
  }
  void OnDelete(const SimdjsonView& object) override {
    std::lock_guard<std::mutex> lock(mu_);
    pods_.erase(ReadPodObject(object).name);
  }
  void OnListEnd() override {}
  std::optional<PodObject> Find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pods_.find(name);
    return it == pods_.end() ? std::nullopt : std::optional<PodObject>(it->second);
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, PodObject> pods_;
};

TEST_F(InformerTest, HandlerReadsObjectViewsFromListsAndEvents) {
  json cgpu = Pod("cgpu", "node-b", "Pending");
  cgpu["metadata"]["uid"] = "u-1";
  cgpu["metadata"]["annotations"] = {{kGpuIndexAnnotation, "3"}};
  cgpu["spec"]["containers"] = {
      {{"name", "c"}, {"resources", {{"limits", {{kGpuMemResource, "4"}}}}}}};
  json odd = {{"metadata", {{"name", "odd"}, {"namespace", 7}, {"annotations", "not a map"}}},
              {"spec", {{"nodeName", nullptr}, {"containers", {{"a", "b"}}}}},
              {"status", {{"phase", {"Running"}}}}};
  server_.Add("pods", cgpu);
  PodObjectRecorder pods;
  informer_ = std::make_unique<Informer>(*client_, options_, pods);
  informer_->Start();
  ASSERT_TRUE(WaitUntil([&] { return informer_->synced() && informer_->watching(); }));
  server_.Add("pods", odd);
  ASSERT_TRUE(WaitUntil([&] { return pods.Find("odd").has_value(); }));

  const PodObject listed = pods.Find("cgpu").value();
  EXPECT_EQ(listed.namespace_name, "default");
  EXPECT_EQ(listed.uid, "u-1");
  EXPECT_EQ(listed.node_name, "node-b");
  EXPECT_EQ(listed.phase, "Pending");
  EXPECT_TRUE(listed.requests_cgpu);
  EXPECT_EQ(listed.gpu_annotations.index, "3");

  const PodObject watched = pods.Find("odd").value();
  EXPECT_EQ(watched.namespace_name, "");
  EXPECT_EQ(watched.node_name, "");
  EXPECT_EQ(watched.phase, "");
  EXPECT_FALSE(watched.requests_cgpu);
  EXPECT_EQ(watched.gpu_annotations.index, "");
  EXPECT_EQ(informer_->stats().errors, 0);

  server_.Delete("pods", "cgpu", "default");
  ASSERT_TRUE(WaitUntil([&] { return !pods.Find("cgpu").has_value(); }));
}

TEST_F(InformerTest, ErrorEventOtherThanGoneWatchesAgainWithoutAList) {
  StartAndSync();
  server_.InjectWatchLine(
      R"({"type":"ERROR","object":{"kind":"Status","code":500,"message":"etcd hiccup"}})");
  ASSERT_TRUE(WaitUntil([&] { return Watches().size() == 2 && informer_->watching(); }));
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 1);
  EXPECT_NE(informer_->stats().last_error().find("etcd hiccup"), std::string::npos);
}

TEST_F(InformerTest, HandlerExceptionDoesNotEscapeAndRelists) {
  server_.Add("pods", Pod("a"));
  recorder_.ThrowOnNextObject();
  StartAndSync();
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"a"}));
  EXPECT_EQ(informer_->stats().errors, 1);
  EXPECT_NE(informer_->stats().last_error().find("handler bug"), std::string::npos);
}

TEST_F(InformerTest, CollectionWithFieldSelector) {
  options_.collection_path =
      "/api/v1/pods?fieldSelector=" + EscapeQueryValue("spec.nodeName=node-b");
  server_.Add("pods", Pod("on-a", "node-a"));
  server_.Add("pods", Pod("on-b", "node-b"));
  StartAndSync();
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"on-b"}));
  server_.Add("pods", Pod("also-on-b", "node-b"));
  server_.Add("pods", Pod("elsewhere", "node-c"));
  server_.Add("pods", Pod("fence", "node-b"));
  ASSERT_TRUE(WaitUntil([&] { return recorder_.names().count("fence") == 1; }));
  EXPECT_EQ(recorder_.names(), (std::set<std::string>{"also-on-b", "fence", "on-b"}));
  EXPECT_EQ(Watches()[0].params.at("fieldSelector"), "spec.nodeName=node-b");
}

// Stop() cancels the stream on the wire: with the server silent for longer than the test may
// run (its idle timeout is minutes), only the cancellation can end it.
TEST_F(InformerOverHttpsTest, StopEndsAnIdleWatch) {
  StartAndSync();
  ASSERT_TRUE(WaitUntil([&] { return server_.open_watches() == 1; }));
  const auto start = SteadyClock::now();
  informer_->Stop();
  const auto latency = SteadyClock::now() - start;
  EXPECT_FALSE(informer_->watching());
  ASSERT_TRUE(WaitUntil([&] { return server_.open_watches() == 0; }));
  std::printf("[ measure  ] informer Stop() with an idle watch: %.2f ms\n",
              std::chrono::duration<double, std::milli>(latency).count());
}

// A list whose answer the server holds back: Stop() abandons the request in flight.
TEST_F(InformerOverHttpsTest, StopEndsAListWaitingForItsAnswer) {
  server_.HoldNextAnswer(
      [](const testing::RecordedRequest& request) { return request.kind == RequestKind::kList; });
  Start();
  ASSERT_TRUE(WaitUntil([&] { return server_.held_answer_waiting(); }));
  informer_->Stop();
  EXPECT_FALSE(informer_->synced());
  server_.ReleaseHeldAnswer();
}

// A back-off of 30 s that the fake clock never reaches: only Stop() can end it.
TEST_F(InformerTest, StopEndsABackOff) {
  options_.min_backoff = 30s;
  options_.max_backoff = 30s;
  drive_clock_ = false;
  server_.FailNext(1, 500, RequestKind::kList);
  Start();
  ASSERT_TRUE(BackOffBegun(1));
  informer_->Stop();
  EXPECT_EQ(clock_.sleepers(), 0);
  EXPECT_EQ(informer_->stats().errors, 1);
  EXPECT_EQ(server_.CountRequests(RequestKind::kList), 1);
}

TEST_F(InformerTest, StopEndsAnIdleWatchInMemory) {
  StartAndSync();
  informer_->Stop();
  EXPECT_FALSE(informer_->watching());
  EXPECT_EQ(server_.open_watches(), 0);
}

TEST_F(InformerTest, StopWithoutStartAndTwice) {
  Informer informer(*client_, options_, recorder_);
  informer.Stop();
  informer.Stop();
  EXPECT_FALSE(informer.synced());
}

}  // namespace
}  // namespace cgpu
