// The tests' API server against what the real one does with a watch cache that trails etcd: lag
// holds events back and delivers them in order while GET and quorum lists stay current; lists
// and GETs with a resourceVersion are answered from the cache (waiting for it, or 504); Exact
// reads the past; invalid list options are 422, as the API server answers them.
#include "support/fake_api_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "support/test_certificates.h"

namespace cgpu::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

json Pod(const std::string& name, const std::string& node = "") {
  json pod = {{"metadata", {{"name", name}, {"namespace", "default"}}},
              {"spec", json::object()},
              {"status", {{"phase", "Pending"}}}};
  if (!node.empty()) pod["spec"]["nodeName"] = node;
  return pod;
}

struct Answer {
  int status = 0;
  json body;
  std::string retry_after;
};

// Verifies the fake's certificate against its CA.
void Trust(httplib::SSLClient& client, const FakeApiServer& api) {
  X509_STORE* store = X509_STORE_new();
  X509* ca = ParseCert(api.ca_pem());
  X509_STORE_add_cert(store, ca);
  X509_free(ca);
  client.set_ca_cert_store(store);  // the client's SSL context owns it from here
  client.enable_server_certificate_verification(true);
}

// One GET over TLS.
Answer Fetch(const FakeApiServer& api, const std::string& path) {
  httplib::SSLClient client("127.0.0.1", api.port());
  Trust(client, api);
  client.set_read_timeout(60s);
  const auto result = client.Get(path);
  if (!result) return Answer{};
  return Answer{result->status, json::parse(result->body, nullptr, false),
                result->get_header_value("Retry-After")};
}

std::set<std::string> Names(const json& list) {
  std::set<std::string> names;
  for (const json& item : list["items"]) names.insert(item["metadata"]["name"].get<std::string>());
  return names;
}

int64_t Version(const json& object) {
  return std::stoll(object["metadata"]["resourceVersion"].get<std::string>());
}

// A watch read on a thread of its own: each line with the moment it arrived.
class Watch {
 public:
  Watch(FakeApiServer& api, const std::string& path) : api_(api) {
    thread_ = std::thread([this, path] {
      httplib::SSLClient client("127.0.0.1", api_.port());
      Trust(client, api_);
      client.set_read_timeout(60s);
      std::string partial;
      client.Get(path, [&](const char* data, size_t size) {
        partial.append(data, size);
        for (size_t end; (end = partial.find('\n')) != std::string::npos;) {
          std::lock_guard<std::mutex> lock(mu_);
          lines_.push_back(json::parse(partial.substr(0, end)));
          arrived_.push_back(Clock::now());
          partial.erase(0, end + 1);
        }
        return true;
      });
      done_ = true;
    });
  }
  ~Watch() {
    // The client returns when its stream is cut; cut again until it has (it may connect late).
    WaitUntil([&] {
      api_.DropWatches();
      return done_.load();
    });
    thread_.join();
  }
  std::vector<json> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  std::vector<Clock::time_point> arrived() const {
    std::lock_guard<std::mutex> lock(mu_);
    return arrived_;
  }

 private:
  FakeApiServer& api_;
  mutable std::mutex mu_;
  std::vector<json> lines_;
  std::vector<Clock::time_point> arrived_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

TEST(FakeApiServerTest, LagHoldsEachEventBackAndKeepsTheirOrder) {
  FakeApiServer api;
  Watch watch(api,
              "/api/v1/pods?watch=1&resourceVersion=" + std::to_string(api.resource_version()));
  ASSERT_TRUE(WaitUntil([&] { return api.open_watches() == 1; }));
  constexpr auto kLag = 300ms;
  api.SetWatchLag(kLag);
  std::vector<Clock::time_point> recorded;
  const auto change = [&](const std::function<void()>& write) {
    recorded.push_back(Clock::now());
    write();
  };
  change([&] { api.Add("pods", Pod("a")); });
  change([&] { api.Update("pods", Pod("a", "node-1")); });
  change([&] { api.Add("pods", Pod("b")); });
  change([&] { api.Delete("pods", "a", "default"); });
  // Quorum reads see every change at once.
  EXPECT_EQ(Fetch(api, "/api/v1/namespaces/default/pods/a").status, 404);
  EXPECT_EQ(Names(Fetch(api, "/api/v1/pods").body), std::set<std::string>{"b"});

  ASSERT_TRUE(WaitUntil([&] { return watch.lines().size() == 4; })) << watch.lines().size();
  const std::vector<json> lines = watch.lines();
  const std::vector<Clock::time_point> arrived = watch.arrived();
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"ADDED", "a"}, {"MODIFIED", "a"}, {"ADDED", "b"}, {"DELETED", "a"}};
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["type"], expected[i].first) << i;
    EXPECT_EQ(lines[i]["object"]["metadata"]["name"], expected[i].second) << i;
    if (i > 0) EXPECT_GT(Version(lines[i]["object"]), Version(lines[i - 1]["object"]));
    EXPECT_GE(arrived[i] - recorded[i], kLag) << "event " << i << " came before its lag";
  }
  EXPECT_EQ(api.watch_cache_version(), api.resource_version());
}

TEST(FakeApiServerTest, WithoutLagTheCacheIsTheStore) {
  FakeApiServer api;
  api.Add("pods", Pod("a"));
  EXPECT_EQ(api.watch_cache_version(), api.resource_version());
  const Answer any = Fetch(api, "/api/v1/pods?resourceVersion=0");
  EXPECT_EQ(Names(any.body), std::set<std::string>{"a"});
  EXPECT_EQ(any.body["metadata"]["resourceVersion"], std::to_string(api.resource_version()));
}

TEST(FakeApiServerTest, GetAndQuorumListsAreCurrentWhileTheCacheTrails) {
  FakeApiServer api;
  api.Add("pods", Pod("a"));
  const int64_t before = api.resource_version();
  api.PauseWatches();  // an endless lag
  json annotated = Pod("a");
  annotated["metadata"]["annotations"] = {{"ALIYUN_COM_GPU_MEM_IDX", "1"}};
  const int64_t written = api.Update("pods", annotated);
  api.Add("pods", Pod("late"));

  const Answer get = Fetch(api, "/api/v1/namespaces/default/pods/a");
  EXPECT_EQ(get.body["metadata"]["annotations"]["ALIYUN_COM_GPU_MEM_IDX"], "1");
  EXPECT_EQ(Names(Fetch(api, "/api/v1/pods").body), (std::set<std::string>{"a", "late"}));

  // resourceVersion=0 takes the cache's state, however old.
  EXPECT_EQ(api.watch_cache_version(), before);
  const Answer any = Fetch(api, "/api/v1/pods?resourceVersion=0");
  EXPECT_EQ(Names(any.body), std::set<std::string>{"a"});
  EXPECT_EQ(any.body["metadata"]["resourceVersion"], std::to_string(before));
  EXPECT_FALSE(any.body["items"][0]["metadata"].contains("annotations"));
  const Answer cached = Fetch(api, "/api/v1/namespaces/default/pods/a?resourceVersion=0");
  EXPECT_EQ(cached.status, 200);
  EXPECT_FALSE(cached.body["metadata"].contains("annotations"));
  EXPECT_EQ(Fetch(api, "/api/v1/namespaces/default/pods/late?resourceVersion=0").status, 404);

  api.ResumeWatches();
  EXPECT_TRUE(WaitUntil([&] { return api.watch_cache_version() == api.resource_version(); }));
  const Answer caught_up = Fetch(api, "/api/v1/pods?resourceVersion=0");
  EXPECT_EQ(Names(caught_up.body), (std::set<std::string>{"a", "late"}));
  EXPECT_GE(Version(caught_up.body), written);
}

TEST(FakeApiServerTest, NotOlderThanACurrentVersionAnswersAtOnce) {
  FakeApiServer api;
  api.Add("pods", Pod("a"));
  const int64_t first = api.resource_version();
  api.Add("pods", Pod("b"));
  for (const int64_t version : {first, api.resource_version()}) {
    const Answer list =
        Fetch(api, "/api/v1/pods?resourceVersionMatch=NotOlderThan&resourceVersion=" +
                       std::to_string(version));
    EXPECT_EQ(list.status, 200) << list.body.dump();
    EXPECT_EQ(Names(list.body), (std::set<std::string>{"a", "b"}));
    EXPECT_GE(Version(list.body), version);
  }
  // The request log keeps the form each client used.
  const std::vector<RecordedRequest> requests = api.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().kind, RequestKind::kList);
  EXPECT_EQ(requests.back().params.at("resourceVersionMatch"), "NotOlderThan");
  EXPECT_EQ(requests.back().params.at("resourceVersion"), std::to_string(api.resource_version()));
}

TEST(FakeApiServerTest, NotOlderThanAVersionTheCacheLacksWaitsForIt) {
  FakeApiServer api;
  api.SetTooLargeResourceVersionWait(60s);  // the test ends it long before
  api.PauseWatches();
  const int64_t written = api.Add("pods", Pod("a"));
  std::future<Answer> list = std::async(std::launch::async, [&] {
    return Fetch(api, "/api/v1/pods?resourceVersionMatch=NotOlderThan&resourceVersion=" +
                          std::to_string(written));
  });
  // It cannot be answered while the cache lacks the version (unless a minute passes).
  EXPECT_NE(list.wait_for(0s), std::future_status::ready);
  api.ResumeWatches();
  const Answer answer = list.get();
  EXPECT_EQ(answer.status, 200) << answer.body.dump();
  EXPECT_EQ(Names(answer.body), std::set<std::string>{"a"});
  EXPECT_GE(Version(answer.body), written);
}

TEST(FakeApiServerTest, AVersionNotYetWrittenIsWaitedForToo) {
  FakeApiServer api;
  api.SetTooLargeResourceVersionWait(60s);
  const int64_t next = api.resource_version() + 1;
  std::future<Answer> list = std::async(std::launch::async, [&] {
    return Fetch(api, "/api/v1/pods?resourceVersionMatch=NotOlderThan&resourceVersion=" +
                          std::to_string(next));
  });
  EXPECT_EQ(api.Add("pods", Pod("a")), next);
  const Answer answer = list.get();
  EXPECT_EQ(answer.status, 200) << answer.body.dump();
  EXPECT_EQ(Names(answer.body), std::set<std::string>{"a"});
}

TEST(FakeApiServerTest, AVersionThatNeverComesIsTooLargeResourceVersion) {
  FakeApiServer api;
  constexpr auto kWait = 50ms;
  api.SetTooLargeResourceVersionWait(kWait);
  const int64_t current = api.resource_version();
  const int64_t future = current + 5;
  const auto start = Clock::now();
  const Answer answer =
      Fetch(api, "/api/v1/pods?resourceVersionMatch=NotOlderThan&resourceVersion=" +
                     std::to_string(future));
  EXPECT_GE(Clock::now() - start, kWait);
  EXPECT_EQ(answer.status, 504);
  EXPECT_EQ(answer.body["reason"], "Timeout");
  EXPECT_EQ(answer.body["code"], 504);
  EXPECT_EQ(answer.body["message"],
            "Timeout: Too large resource version: " + std::to_string(future) +
                ", current: " + std::to_string(current));
  EXPECT_EQ(answer.body["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
  EXPECT_EQ(answer.body["details"]["retryAfterSeconds"], 1);
  EXPECT_EQ(answer.retry_after, "1");
  // A GET with a resourceVersion waits on the same cache.
  api.Add("pods", Pod("a"));
  EXPECT_EQ(Fetch(api, "/api/v1/namespaces/default/pods/a?resourceVersion=" +
                           std::to_string(api.resource_version() + 1))
                .status,
            504);
}

TEST(FakeApiServerTest, InvalidListOptionsAre422AsTheApiServerAnswersThem) {
  FakeApiServer api;
  api.Add("pods", Pod("a"));
  const Answer bare = Fetch(api, "/api/v1/pods?resourceVersionMatch=NotOlderThan");
  EXPECT_EQ(bare.status, 422);
  EXPECT_EQ(bare.body["reason"], "Invalid");
  EXPECT_EQ(bare.body["message"],
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: "
            "resourceVersionMatch is forbidden unless resourceVersion is provided");
  EXPECT_EQ(bare.body["details"]["kind"], "ListOptions");
  EXPECT_EQ(bare.body["details"]["causes"][0]["field"], "resourceVersionMatch");
  EXPECT_EQ(bare.body["details"]["causes"][0]["reason"], "FieldValueForbidden");

  const Answer exact_zero = Fetch(api, "/api/v1/pods?resourceVersionMatch=Exact&resourceVersion=0");
  EXPECT_EQ(exact_zero.status, 422);
  EXPECT_NE(exact_zero.body["message"].get<std::string>().find(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""),
            std::string::npos);
  const Answer unknown = Fetch(api, "/api/v1/pods?resourceVersionMatch=Newest&resourceVersion=1");
  EXPECT_EQ(unknown.status, 422);
  EXPECT_NE(unknown.body["message"].get<std::string>().find(
                "Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\""),
            std::string::npos);
  const Answer both = Fetch(api, "/api/v1/pods?resourceVersionMatch=Exact&continue=1/0%2B%3D");
  EXPECT_EQ(both.status, 422);
  EXPECT_EQ(both.body["details"]["causes"].size(), 2u) << both.body.dump();
}

TEST(FakeApiServerTest, ExactReadsThePastWithinTheCompactionWindow) {
  FakeApiServer api;
  api.Add("pods", Pod("kept"));
  api.Add("pods", Pod("doomed"));
  const int64_t then = api.resource_version();
  api.Delete("pods", "doomed", "default");
  api.Update("pods", Pod("kept", "node-1"));
  api.Add("pods", Pod("new"));

  const Answer past =
      Fetch(api, "/api/v1/pods?resourceVersionMatch=Exact&resourceVersion=" + std::to_string(then));
  EXPECT_EQ(past.status, 200) << past.body.dump();
  EXPECT_EQ(Names(past.body), (std::set<std::string>{"doomed", "kept"}));
  EXPECT_EQ(Version(past.body), then);
  for (const json& item : past.body["items"]) EXPECT_FALSE(item["spec"].contains("nodeName"));
  // The legacy paged form: a resourceVersion with a limit and no match is Exact too.
  const Answer paged = Fetch(api, "/api/v1/pods?limit=1&resourceVersion=" + std::to_string(then));
  EXPECT_EQ(paged.body["items"].size(), 1u);
  EXPECT_EQ(Version(paged.body), then);

  const Answer future = Fetch(api, "/api/v1/pods?resourceVersionMatch=Exact&resourceVersion=" +
                                       std::to_string(api.resource_version() + 1));
  EXPECT_EQ(future.status, 504);
  EXPECT_EQ(future.retry_after, "");
  api.Compact();
  const Answer compacted =
      Fetch(api, "/api/v1/pods?resourceVersionMatch=Exact&resourceVersion=" + std::to_string(then));
  EXPECT_EQ(compacted.status, 410);
  EXPECT_EQ(compacted.body["reason"], "Expired");
}

TEST(FakeApiServerTest, FieldSelectorsApplyToEveryForm) {
  FakeApiServer api;
  api.Add("pods", Pod("a1", "node-a"));
  api.Add("pods", Pod("b1", "node-b"));
  const int64_t then = api.resource_version();
  api.Add("pods", Pod("a2", "node-a"));
  const std::string now = std::to_string(api.resource_version());
  const std::string selector = "fieldSelector=spec.nodeName%3Dnode-a";
  const std::set<std::string> on_a = {"a1", "a2"};
  EXPECT_EQ(Names(Fetch(api, "/api/v1/pods?" + selector).body), on_a);
  EXPECT_EQ(Names(Fetch(api, "/api/v1/pods?resourceVersion=0&" + selector).body), on_a);
  EXPECT_EQ(Names(Fetch(api, "/api/v1/pods?resourceVersionMatch=NotOlderThan&resourceVersion=" +
                                 now + "&" + selector)
                      .body),
            on_a);
  EXPECT_EQ(Names(Fetch(api,
                        "/api/v1/namespaces/default/pods?resourceVersionMatch=NotOlderThan&"
                        "resourceVersion=" +
                            now + "&" + selector)
                      .body),
            on_a);
  EXPECT_EQ(Names(Fetch(api, "/api/v1/pods?resourceVersionMatch=Exact&resourceVersion=" +
                                 std::to_string(then) + "&" + selector)
                      .body),
            std::set<std::string>{"a1"});
  // And to a cache that trails.
  api.PauseWatches();
  api.Add("pods", Pod("a3", "node-a"));
  EXPECT_EQ(Names(Fetch(api, "/api/v1/pods?resourceVersion=0&" + selector).body), on_a);
  api.ResumeWatches();
}

TEST(FakeApiServerTest, AWatchFromZeroStartsFromTheCache) {
  FakeApiServer api;
  api.Add("pods", Pod("old"));
  api.PauseWatches();
  api.Add("pods", Pod("new"));
  Watch watch(api, "/api/v1/pods?watch=1&resourceVersion=0");
  ASSERT_TRUE(WaitUntil([&] { return watch.lines().size() == 1; }));
  EXPECT_EQ(watch.lines()[0]["object"]["metadata"]["name"], "old");
  api.ResumeWatches();
  ASSERT_TRUE(WaitUntil([&] { return watch.lines().size() == 2; }));
  EXPECT_EQ(watch.lines()[1]["type"], "ADDED");
  EXPECT_EQ(watch.lines()[1]["object"]["metadata"]["name"], "new");
}

// Events as the API server validates them (pkg/apis/core/validation/events.go), so that the
// recorder's tests cannot pass on an Event the real one would refuse.
int WriteEvent(const FakeApiServer& api, const std::string& method, const std::string& path,
               const json& event) {
  httplib::SSLClient client("127.0.0.1", api.port());
  Trust(client, api);
  const auto result = method == "POST" ? client.Post(path, event.dump(), "application/json")
                                       : client.Put(path, event.dump(), "application/json");
  return result ? result->status : -1;
}

TEST(FakeApiServerTest, EventsAreValidatedAsTheApiServerValidatesThem) {
  FakeApiServer api;
  const std::string pods_ns = "/apis/events.k8s.io/v1/namespaces/team-a/events";
  const json good = {{"apiVersion", "events.k8s.io/v1"},
                     {"kind", "Event"},
                     {"metadata", {{"name", "p.1"}}},
                     {"eventTime", "2027-01-15T08:00:00.000000Z"},
                     {"reportingController", "cgpu-guard.io/webhook"},
                     {"reportingInstance", "r-0"},
                     {"action", "Bind"},
                     {"reason", "CgpuGpuFull"},
                     {"type", "Warning"},
                     {"regarding", {{"kind", "Pod"}, {"namespace", "team-a"}, {"name", "p"}}},
                     {"note", "denied"}};
  for (const char* required : {"eventTime", "reportingInstance", "action", "reason"}) {
    json missing = good;
    missing.erase(required);
    EXPECT_EQ(WriteEvent(api, "POST", pods_ns, missing), 422) << required;
  }
  json bad = good;
  bad["type"] = "Error";
  EXPECT_EQ(WriteEvent(api, "POST", pods_ns, bad), 422);
  bad = good;
  bad["reportingController"] = "cgpu guard";
  EXPECT_EQ(WriteEvent(api, "POST", pods_ns, bad), 422);
  bad = good;
  bad["note"] = std::string(1025, 'x');
  EXPECT_EQ(WriteEvent(api, "POST", pods_ns, bad), 422);
  bad = good;
  bad["series"] = {{"count", 1}, {"lastObservedTime", "2027-01-15T08:00:00.000000Z"}};
  EXPECT_EQ(WriteEvent(api, "POST", pods_ns, bad), 422);
  json node_event = good;
  node_event["regarding"] = {{"kind", "Node"}, {"name", "gpu-1"}};
  EXPECT_EQ(WriteEvent(api, "POST", pods_ns, node_event), 422);  // not in "default"
  EXPECT_EQ(WriteEvent(api, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", node_event),
            201);

  ASSERT_EQ(WriteEvent(api, "POST", pods_ns, good), 201);
  json stored = *api.Find("events", "p.1", "team-a");
  json changed = stored;
  changed["note"] = "another note";
  EXPECT_EQ(WriteEvent(api, "PUT", pods_ns + "/p.1", changed), 422);
  changed = stored;
  changed["series"] = {{"count", 2}, {"lastObservedTime", "2027-01-15T08:01:00.000000Z"}};
  EXPECT_EQ(WriteEvent(api, "PUT", pods_ns + "/p.1", changed), 200);
}

}  // namespace
}  // namespace cgpu::testing
