// The in-process front of the tests' API server: through a KubeApi, the same wire semantics the
// HTTPS front serves (paged lists, decoded query parameters, watches from a resourceVersion, 410
// for a compacted one, the watch cache held back while the store moves on, create/update
// conflicts), and the KubeApi contract (size bounds, deadlines, cancellation, cut streams).
#include "support/memory_kube_api.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <set>
#include <thread>

#include "adapters/kube_client.h"
#include "support/fake_api_server.h"
#include "support/fake_api_server_config.h"

namespace cgpu::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json MemoryPod(const std::string& name, const std::string& node) {
  return {{"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"nodeName", node}}},
          {"status", {{"phase", "Running"}}}};
}

std::set<std::string> ItemNames(const json& list) {
  std::set<std::string> names;
  for (const json& item : list["items"]) names.insert(item["metadata"]["name"].get<std::string>());
  return names;
}

json Body(const StatusOr<KubeResponse>& response) {
  return response.ok() ? json::parse(response->body, nullptr, false) : json();
}

std::chrono::steady_clock::time_point Soon() { return std::chrono::steady_clock::now() + 10s; }

TEST(MemoryKubeApiTest, PagesAListWithEscapedContinueTokensAndRecordsDecodedParameters) {
  FakeApiStore store;
  for (int i = 0; i < 5; ++i) store.Add("pods", MemoryPod("pod-" + std::to_string(i), "node-a"));
  MemoryKubeApi api(store, {.token = "secret"});

  const auto first = api.Get("/api/v1/pods?limit=2");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->status, 200);
  const json page = Body(first);
  EXPECT_EQ(page["kind"], "PodList");
  EXPECT_EQ(page["items"].size(), 2u);
  EXPECT_FALSE(page["items"][0].contains("kind"));  // list items carry no type meta
  const std::string token = page["metadata"]["continue"];
  const auto second = api.Get("/api/v1/pods?limit=10&continue=" + EscapeQueryValue(token));
  ASSERT_TRUE(second.ok());
  const json rest = Body(second);
  EXPECT_EQ(rest["items"].size(), 3u);
  EXPECT_FALSE(rest["metadata"].contains("continue"));
  EXPECT_EQ(rest["metadata"]["resourceVersion"], page["metadata"]["resourceVersion"]);

  const std::vector<RecordedRequest> log = store.requests();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1].params.at("continue"), token);
  EXPECT_EQ(log[1].kind, RequestKind::kList);
  EXPECT_EQ(log[1].authorization, "Bearer secret");
}

TEST(MemoryKubeApiTest, FieldSelectorsAndSinglesAndMissingObjects) {
  FakeApiStore store;
  store.Add("pods", MemoryPod("a", "node-a"));
  store.Add("pods", MemoryPod("b", "node-b"));
  MemoryKubeApi api(store);
  const auto list =
      api.Get("/api/v1/pods?fieldSelector=" + EscapeQueryValue("spec.nodeName=node-b"));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(ItemNames(Body(list)), std::set<std::string>{"b"});
  const auto one = api.Get("/api/v1/namespaces/default/pods/a", Soon());
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(Body(one)["kind"], "Pod");
  const auto missing = api.Get("/api/v1/namespaces/default/pods/zzz", Soon());
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(Body(missing)["reason"], "NotFound");
}

TEST(MemoryKubeApiTest, AnAnswerPastTheBoundIsResourceExhaustedAndALateOneDeadlineExceeded) {
  FakeApiStore store;
  for (int i = 0; i < 20; ++i) store.Add("pods", MemoryPod("pod-" + std::to_string(i), "node-a"));
  MemoryKubeApi api(store);
  const auto big = api.Get("/api/v1/pods", nullptr, 100);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
  const auto late = api.Get("/api/v1/pods", std::chrono::steady_clock::now() - 1ms);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(store.CountRequests(RequestKind::kAny), 1);  // the late one was never sent
}

// A read for a version the watch cache has not reached waits (3 s before the API server's 504),
// but not past the client's own deadline: the client hangs up, as KubeClient does.
TEST(MemoryKubeApiTest, AReadWaitingForTheWatchCacheEndsAtTheClientsDeadline) {
  FakeApiStore store;
  store.PauseWatches();
  const int64_t version = store.Add("pods", MemoryPod("a", "node-a"));
  MemoryKubeApi api(store);
  const auto read = api.Get("/api/v1/pods?resourceVersion=" + std::to_string(version),
                            std::chrono::steady_clock::now() + 20ms);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(store.requests().back().status, 0);  // nothing was answered
  store.ResumeWatches();
  const auto later = api.Get("/api/v1/pods?resourceVersion=" + std::to_string(version), Soon());
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(ItemNames(Body(later)), std::set<std::string>{"a"});
}

TEST(MemoryKubeApiTest, CreateAndUpdateHaveTheOptimisticConcurrencyOfTheApiServer) {
  FakeApiStore store;
  MemoryKubeApi api(store);
  const json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                      {"kind", "Lease"},
                      {"metadata", {{"name", "l"}}},
                      {"spec", {{"holderIdentity", "a"}}}};
  const std::string collection = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
  const auto created = api.Write("POST", collection, lease.dump(), Soon());
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->status, 201);
  const auto again = api.Write("POST", collection, lease.dump(), Soon());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 409);
  EXPECT_EQ(Body(again)["reason"], "AlreadyExists");
  json stale = Body(created);
  stale["metadata"]["resourceVersion"] = "1";
  const auto conflict = api.Write("PUT", collection + "/l", stale.dump(), Soon());
  ASSERT_TRUE(conflict.ok());
  EXPECT_EQ(conflict->status, 409);
  EXPECT_EQ(Body(conflict)["reason"], "Conflict");
  const auto patched = api.Patch(collection + "/l", "application/merge-patch+json",
                                 R"({"spec":{"holderIdentity":"b"}})");
  ASSERT_TRUE(patched.ok());
  EXPECT_EQ(Body(patched)["spec"]["holderIdentity"], "b");
}

// Lines of one Stream run on a thread of its own.
class MemoryWatch {
 public:
  MemoryWatch(const MemoryKubeApi& api, const std::string& path) {
    thread_ = std::thread([this, &api, path] {
      result_ = api.Stream(
          path,
          [this](std::string_view line) {
            std::lock_guard<std::mutex> lock(mu_);
            lines_.push_back(json::parse(line));
            return true;
          },
          &status_, &error_body_, &cancel_);
      done_ = true;
    });
  }
  ~MemoryWatch() { Stop(); }
  void Stop() {
    cancel_.Cancel();
    if (thread_.joinable()) thread_.join();
  }
  std::vector<json> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  size_t size() const { return lines().size(); }
  bool done() const { return done_; }
  // Valid once done().
  const Status& result() const { return result_; }
  int status() const { return status_; }
  const std::string& error_body() const { return error_body_; }
  const StreamCancel& cancel() const { return cancel_; }

 private:
  mutable std::mutex mu_;
  std::vector<json> lines_;
  StreamCancel cancel_;
  Status result_;
  int status_ = 0;
  std::string error_body_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

TEST(MemoryKubeApiTest, AWatchReplaysFromItsVersionAndFollowsTheStoreUntilCancelled) {
  FakeApiStore store;
  store.Add("pods", MemoryPod("a", "node-a"));
  const int64_t from = store.resource_version();
  store.Add("pods", MemoryPod("b", "node-a"));
  MemoryKubeApi api(store);
  MemoryWatch watch(api, "/api/v1/pods?watch=1&resourceVersion=" + std::to_string(from));
  ASSERT_TRUE(WaitUntil([&] { return watch.size() == 1; }));
  EXPECT_EQ(watch.lines()[0]["type"], "ADDED");
  EXPECT_EQ(watch.lines()[0]["object"]["metadata"]["name"], "b");
  EXPECT_EQ(watch.lines()[0]["object"]["kind"], "Pod");
  store.Delete("pods", "a", "default");
  ASSERT_TRUE(WaitUntil([&] { return watch.size() == 2; }));
  EXPECT_EQ(watch.lines()[1]["type"], "DELETED");
  EXPECT_EQ(store.open_watches(), 1);
  watch.Stop();
  EXPECT_EQ(watch.status(), 200);
  EXPECT_EQ(watch.result().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(watch.cancel().cancelled());
  EXPECT_EQ(store.open_watches(), 0);
}

TEST(MemoryKubeApiTest, ACompactedVersionIsAnErrorEventOrAnHttp410) {
  FakeApiStore store;
  store.Add("pods", MemoryPod("a", "node-a"));
  const int64_t old = store.resource_version();
  store.Compact();
  MemoryKubeApi api(store);
  {
    MemoryWatch watch(api, "/api/v1/pods?watch=1&resourceVersion=" + std::to_string(old));
    ASSERT_TRUE(WaitUntil([&] { return watch.done(); }));
    EXPECT_TRUE(watch.result().ok());  // the server ended the stream
    ASSERT_EQ(watch.size(), 1u);
    EXPECT_EQ(watch.lines()[0]["type"], "ERROR");
    EXPECT_EQ(watch.lines()[0]["object"]["code"], 410);
  }
  store.set_expired_watch_as_http_410(true);
  MemoryWatch watch(api, "/api/v1/pods?watch=1&resourceVersion=" + std::to_string(old));
  ASSERT_TRUE(WaitUntil([&] { return watch.done(); }));
  EXPECT_EQ(watch.status(), 410);
  EXPECT_EQ(json::parse(watch.error_body())["reason"], "Expired");
  EXPECT_EQ(watch.size(), 0u);
}

TEST(MemoryKubeApiTest, APausedWatchCacheHoldsEventsBackWhileQuorumReadsAreCurrent) {
  FakeApiStore store;
  store.Add("pods", MemoryPod("a", "node-a"));
  MemoryKubeApi api(store);
  MemoryWatch watch(
      api, "/api/v1/pods?watch=1&resourceVersion=" + std::to_string(store.resource_version()));
  ASSERT_TRUE(WaitUntil([&] { return store.open_watches() == 1; }));
  store.PauseWatches();
  store.Add("pods", MemoryPod("b", "node-a"));
  EXPECT_LT(store.watch_cache_version(), store.resource_version());
  EXPECT_EQ(ItemNames(Body(api.Get("/api/v1/pods"))), (std::set<std::string>{"a", "b"}));
  // resourceVersion=0 is served from the cache, which has not taken the change.
  EXPECT_EQ(ItemNames(Body(api.Get("/api/v1/pods?resourceVersion=0"))), std::set<std::string>{"a"});
  EXPECT_EQ(watch.size(), 0u);
  store.ResumeWatches();
  ASSERT_TRUE(WaitUntil([&] { return watch.size() == 1; }));
  EXPECT_EQ(watch.lines()[0]["object"]["metadata"]["name"], "b");
}

TEST(MemoryKubeApiTest, ADroppedWatchIsUnavailableAndAFailedOneReportsItsStatus) {
  FakeApiStore store;
  MemoryKubeApi api(store);
  {
    MemoryWatch watch(api, "/api/v1/pods?watch=1");
    ASSERT_TRUE(WaitUntil([&] { return store.open_watches() == 1; }));
    store.DropWatches();
    ASSERT_TRUE(WaitUntil([&] { return watch.done(); }));
    EXPECT_EQ(watch.result().code(), StatusCode::kUnavailable);
    EXPECT_FALSE(watch.cancel().cancelled());
  }
  store.FailNext(1, 500, RequestKind::kWatch);
  MemoryWatch watch(api, "/api/v1/pods?watch=1");
  ASSERT_TRUE(WaitUntil([&] { return watch.done(); }));
  EXPECT_TRUE(watch.result().ok());
  EXPECT_EQ(watch.status(), 500);
  EXPECT_EQ(json::parse(watch.error_body())["code"], 500);
}

TEST(MemoryKubeApiTest, TheSameStoreAnswersAlikeOverHttpsAndInMemory) {
  FakeApiServer server;
  server.Add("pods", MemoryPod("a", "node-a"));
  server.Add("pods", MemoryPod("b", "node-b"));
  MemoryKubeApi api(server);
  const KubeClient client(ConfigFor(server));
  for (const std::string path :
       {"/api/v1/pods?limit=1", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-b",
        "/api/v1/namespaces/default/pods/a", "/api/v1/namespaces/default/pods/zzz"}) {
    SCOPED_TRACE(path);
    const auto over_tls = client.Get(path);
    const auto in_memory = api.Get(path);
    ASSERT_TRUE(over_tls.ok()) << over_tls.status().message();
    ASSERT_TRUE(in_memory.ok());
    EXPECT_EQ(in_memory->status, over_tls->status);
    json a = Body(over_tls);
    json b = Body(in_memory);
    // Continue tokens name a snapshot of their own.
    if (a.contains("metadata")) a["metadata"].erase("continue");
    if (b.contains("metadata")) b["metadata"].erase("continue");
    EXPECT_EQ(a, b);
  }
}

}  // namespace
}  // namespace cgpu::testing
