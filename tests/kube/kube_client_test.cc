// KubeClient against the fake API server over real TLS: verification, authentication, errors,
// streams and cancellation.
#include "adapters/kube_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/fake_api_server.h"
#include "support/fake_api_server_config.h"
#include "support/fake_clock.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::FakeApiServer;
using testing::RequestKind;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

json Node(const std::string& name) {
  return {{"metadata", {{"name", name}, {"labels", {{"zone", "a"}}}}}, {"spec", json::object()}};
}

KubeClientOptions Options() {
  KubeClientOptions options;
  options.version = "1.2.3";
  options.connect_timeout = 5s;
  options.read_timeout = 10s;
  return options;
}

// For the cancel tests: no timeout of the client's could end a call first, so a call that ends
// with "cancelled" ended because of the cancel, and a lost cancel hangs the test until ctest's
// timeout fails it. No wall-clock bound is asserted.
KubeClientOptions NeverTimingOut() {
  KubeClientOptions options = Options();
  options.read_timeout = 1h;
  options.write_timeout = 1h;
  options.stream_idle_timeout = 1h;
  return options;
}

double Millis(SteadyClock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

TEST(KubeClientTest, GetVerifiesTheServerAgainstTheCaAndSendsHeaders) {
  FakeApiServer server;
  server.Add("nodes", Node("n1"));
  KubeConfig config = ConfigFor(server);
  config.token = "secret-token";
  KubeClient client(config, Options());

  StatusOr<KubeResponse> response = client.Get("/api/v1/nodes");
  ASSERT_TRUE(response.ok()) << response.status().message();
  EXPECT_EQ(response->status, 200);
  const json list = json::parse(response->body);
  EXPECT_EQ(list["kind"], "NodeList");
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "n1");

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].authorization, "Bearer secret-token");
  EXPECT_EQ(requests[0].user_agent, "cgpu-guard/1.2.3");
  EXPECT_EQ(requests[0].kind, RequestKind::kList);

  // By DNS name too: the serving certificate's SAN has localhost.
  config.host = "localhost";
  StatusOr<KubeResponse> by_name = KubeClient(config, Options()).Get("/api/v1/nodes/n1");
  ASSERT_TRUE(by_name.ok()) << by_name.status().message();
  EXPECT_EQ(by_name->status, 200);
  EXPECT_EQ(json::parse(by_name->body)["kind"], "Node");
}

TEST(KubeClientTest, RefusesAServerTheCaDidNotSign) {
  FakeApiServer server;
  KubeConfig config = ConfigFor(server);
  config.ca_pem = testing::MakeTestCa("some other CA").cert_pem;
  StatusOr<KubeResponse> response = KubeClient(config, Options()).Get("/api/v1/pods");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  const std::string& message = response.status().message();
  EXPECT_NE(message.find("GET /api/v1/pods"), std::string::npos) << message;
  EXPECT_NE(message.find("server certificate rejected"), std::string::npos) << message;
  EXPECT_NE(message.find("https://127.0.0.1:" + std::to_string(server.port()) + " (test)"),
            std::string::npos)
      << message;
  EXPECT_EQ(server.CountRequests(RequestKind::kAny), 0);

  // The system store does not know the test CA either.
  config.ca_pem.clear();
  EXPECT_FALSE(KubeClient(config, Options()).Get("/api/v1/pods").ok());

  // insecure-skip-tls-verify accepts it.
  config.insecure_skip_tls_verify = true;
  StatusOr<KubeResponse> insecure = KubeClient(config, Options()).Get("/api/v1/pods");
  ASSERT_TRUE(insecure.ok()) << insecure.status().message();
  EXPECT_EQ(insecure->status, 200);
}

// The serving certificate names 127.0.0.1 and localhost. "::ffff:127.0.0.1" reaches the same
// socket (an IPv4-mapped IPv6 address) but is an identity the certificate does not carry.
TEST(KubeClientTest, RefusesACertificateForAnotherHost) {
  FakeApiServer server;
  KubeConfig config = ConfigFor(server);
  config.host = "::ffff:127.0.0.1";
  StatusOr<KubeResponse> response = KubeClient(config, Options()).Get("/api/v1/pods");
  ASSERT_FALSE(response.ok());
  const std::string& message = response.status().message();
  if (message.find("cannot connect") != std::string::npos) GTEST_SKIP() << "no IPv6 here";
  EXPECT_NE(message.find("IP address mismatch"), std::string::npos) << message;
  EXPECT_NE(message.find("https://[::ffff:127.0.0.1]:"), std::string::npos) << message;
}

TEST(KubeClientTest, TokenFileIsReadAgainOnEveryCall) {
  FakeApiServer server;
  const std::string dir = testing::MakeTempDir();
  testing::WriteFile(dir + "/token", "first\n");
  KubeConfig config = ConfigFor(server);
  config.token_file = dir + "/token";
  KubeClient client(config, Options());

  server.RequireToken("first");
  EXPECT_EQ(client.Get("/api/v1/pods")->status, 200);
  // The kubelet rotates the projected token; the API server stops taking the old one.
  testing::WriteFile(dir + "/token", "second\n");
  server.RequireToken("second");
  EXPECT_EQ(client.Get("/api/v1/pods")->status, 200);
  server.RequireToken("third");
  StatusOr<KubeResponse> refused = client.Get("/api/v1/pods");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 401);
  EXPECT_EQ(json::parse(refused->body)["reason"], "Unauthorized");

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].authorization, "Bearer first");
  EXPECT_EQ(requests[1].authorization, "Bearer second");

  // A token file that vanishes mid-rotation: the last good token is used.
  std::remove((dir + "/token").c_str());
  server.RequireToken("second");
  EXPECT_EQ(client.Get("/api/v1/pods")->status, 200);
}

TEST(KubeClientTest, ClientCertificateAuthentication) {
  const testing::TestCa client_ca = testing::MakeTestCa("client CA");
  testing::FakeApiServerOptions options;
  options.client_ca_pem = client_ca.cert_pem;
  FakeApiServer server(options);

  const testing::ServingPair pair = testing::MakeClientPair(client_ca, "system:cgpu-guard");
  KubeConfig config = ConfigFor(server);
  config.client_cert_pem = pair.cert_pem;
  config.client_key_pem = pair.key_pem;
  StatusOr<KubeResponse> response = KubeClient(config, Options()).Get("/api/v1/nodes");
  ASSERT_TRUE(response.ok()) << response.status().message();
  EXPECT_EQ(response->status, 200);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].client_cert_cn, "system:cgpu-guard");

  // Without a certificate, or with one from a CA the server does not trust: refused.
  KubeConfig anonymous = ConfigFor(server);
  EXPECT_FALSE(KubeClient(anonymous, Options()).Get("/api/v1/nodes").ok());
  const testing::ServingPair stranger =
      testing::MakeClientPair(testing::MakeTestCa("stranger"), "mallory");
  config.client_cert_pem = stranger.cert_pem;
  config.client_key_pem = stranger.key_pem;
  EXPECT_FALSE(KubeClient(config, Options()).Get("/api/v1/nodes").ok());
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(KubeClientTest, HttpErrorsAreAnswersAndTransportErrorsAreUnavailable) {
  FakeApiServer server;
  KubeClient client(ConfigFor(server), Options());
  server.FailNext(1, 500);
  StatusOr<KubeResponse> failed = client.Get("/api/v1/pods");
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->status, 500);
  EXPECT_EQ(json::parse(failed->body)["reason"], "InternalError");
  EXPECT_EQ(client.Get("/api/v1/nodes/absent")->status, 404);

  // A port that is bound but not listening refuses connections, and stays ours meanwhile.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  KubeConfig closed = ConfigFor(server);
  closed.port = ntohs(address.sin_port);
  StatusOr<KubeResponse> refused = KubeClient(closed, Options()).Get("/api/v1/pods?limit=5");
  close(fd);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.status().message().rfind("GET /api/v1/pods?limit=5: cannot connect", 0), 0u)
      << refused.status().message();
}

TEST(KubeClientTest, InvalidConfigurationIsReportedByEveryCall) {
  KubeConfig config;
  config.host = "127.0.0.1";
  config.port = 1;
  config.ca_pem = "garbage";
  config.source = "test";
  KubeClient client(config, Options());
  StatusOr<KubeResponse> response = client.Get("/api/v1/pods");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(response.status().message().find("holds no PEM certificate"), std::string::npos);
}

TEST(KubeClientTest, PatchAppliesAMergePatch) {
  FakeApiServer server;
  server.Add("nodes", Node("n1"));
  const int64_t before = server.resource_version();
  KubeClient client(ConfigFor(server), Options());
  StatusOr<KubeResponse> response =
      client.Patch("/api/v1/nodes/n1", "application/merge-patch+json",
                   R"({"metadata":{"labels":{"cgpu-guard.io/cgpu-version":"1.5.0","zone":null}}})");
  ASSERT_TRUE(response.ok()) << response.status().message();
  ASSERT_EQ(response->status, 200) << response->body;
  const json node = *server.Find("nodes", "n1");
  EXPECT_EQ(node["metadata"]["labels"], json({{"cgpu-guard.io/cgpu-version", "1.5.0"}}));
  EXPECT_EQ(node["metadata"]["resourceVersion"], std::to_string(before + 1));
  EXPECT_EQ(json::parse(response->body)["metadata"]["labels"]["cgpu-guard.io/cgpu-version"],
            "1.5.0");

  EXPECT_EQ(client.Patch("/api/v1/nodes/n1", "text/plain", "{}")->status, 415);
  EXPECT_EQ(client.Patch("/api/v1/nodes/absent", "application/merge-patch+json", "{}")->status,
            404);
  // A namespaced object.
  server.Add("pods", {{"metadata", {{"name", "p"}, {"namespace", "ns"}}}});
  EXPECT_EQ(client
                .Patch("/api/v1/namespaces/ns/pods/p", "application/merge-patch+json",
                       R"({"metadata":{"annotations":{"a":"b"}}})")
                ->status,
            200);
  EXPECT_EQ((*server.Find("pods", "p", "ns"))["metadata"]["annotations"]["a"], "b");
}

TEST(KubeClientTest, AnswersPastTheSizeLimitAreRefusedNotBuffered) {
  FakeApiServer server;
  for (int i = 0; i < 20; ++i) server.Add("nodes", Node("node-" + std::to_string(i)));
  KubeClientOptions options = Options();
  options.max_response_bytes = 512;
  KubeClient client(ConfigFor(server), options);
  StatusOr<KubeResponse> list = client.Get("/api/v1/nodes");
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().message(), "GET /api/v1/nodes: response larger than 512 bytes");
  StatusOr<KubeResponse> patched =
      client.Patch("/api/v1/nodes/node-0", "application/merge-patch+json", "{}");
  EXPECT_TRUE(patched.ok()) << patched.status().message();  // one node fits
  options.max_response_bytes = 16;
  StatusOr<KubeResponse> too_big =
      KubeClient(ConfigFor(server), options)
          .Patch("/api/v1/nodes/node-0", "application/merge-patch+json", "{}");
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().message(),
            "PATCH /api/v1/nodes/node-0: response larger than 16 bytes");
}

TEST(KubeClientTest, StreamDeliversLinesAsTheyArrive) {
  FakeApiServer server;
  KubeClient client(ConfigFor(server), Options());
  const int64_t version = server.resource_version();
  std::vector<std::string> lines;
  std::atomic<int> opened{0};
  StreamCancel cancel;
  int status = 0;
  std::string error_body;
  std::future<Status> result = std::async(std::launch::async, [&] {
    return client.Stream(
        "/api/v1/nodes?watch=1&resourceVersion=" + std::to_string(version),
        [&](std::string_view line) {
          lines.emplace_back(line);
          return lines.size() < 3;  // stop after the third event
        },
        &status, &error_body, &cancel, [&](int code) { opened = code; });
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return opened == 200; }));
  server.Add("nodes", Node("a"));
  server.Add("nodes", Node("b"));
  server.Add("nodes", Node("c"));
  server.Add("nodes", Node("d"));
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
  const Status stream_status = result.get();
  EXPECT_TRUE(stream_status.ok()) << stream_status.message();
  EXPECT_EQ(status, 200);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(json::parse(lines[0])["type"], "ADDED");
  EXPECT_EQ(json::parse(lines[2])["object"]["metadata"]["name"], "c");
}

TEST(KubeClientTest, StreamReportsStatusAndBodyWhenNot200) {
  FakeApiServer server;
  KubeClient client(ConfigFor(server), Options());
  server.FailNext(1, 403, RequestKind::kWatch);
  int status = 0;
  std::string error_body;
  int lines = 0;
  const Status result = client.Stream(
      "/api/v1/pods?watch=1",
      [&](std::string_view) {
        ++lines;
        return true;
      },
      &status, &error_body, nullptr);
  EXPECT_TRUE(result.ok()) << result.message();
  EXPECT_EQ(status, 403);
  EXPECT_EQ(lines, 0);
  EXPECT_EQ(json::parse(error_body)["reason"], "Forbidden");
}

TEST(KubeClientTest, StreamThatDropsIsUnavailable) {
  FakeApiServer server;
  KubeClient client(ConfigFor(server), Options());
  std::atomic<bool> opened{false};
  int status = 0;
  std::future<Status> result = std::async(std::launch::async, [&] {
    return client.Stream(
        "/api/v1/pods?watch=1&resourceVersion=1", [](std::string_view) { return true; }, &status,
        nullptr, nullptr, [&](int) { opened = true; });
  });
  ASSERT_TRUE(testing::WaitUntil([&] { return opened.load(); }));
  server.DropWatches();
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
  const Status dropped = result.get();
  EXPECT_EQ(dropped.code(), StatusCode::kUnavailable) << dropped.message();
  EXPECT_EQ(status, 200);
}

// The stop mechanism: httplib's stop() from the canceller, retried until the request holds its
// socket. Measured while the server sends nothing at all.
TEST(KubeClientTest, CancelEndsAnIdleStreamPromptly) {
  FakeApiServer server;
  KubeClient client(ConfigFor(server), NeverTimingOut());
  StreamCancel cancel;
  std::atomic<bool> opened{false};
  int status = 0;
  std::future<Status> result = std::async(std::launch::async, [&] {
    return client.Stream(
        "/api/v1/pods?watch=1&resourceVersion=1", [](std::string_view) { return true; }, &status,
        nullptr, &cancel, [&](int) { opened = true; });
  });
  // Open at both ends, with nothing to send: the client sits in its blocking read.
  ASSERT_TRUE(testing::WaitUntil([&] { return opened.load() && server.open_watches() == 1; }));
  const auto start = SteadyClock::now();
  cancel.Cancel();
  result.wait();
  const auto latency = SteadyClock::now() - start;
  const Status cancelled = result.get();
  EXPECT_EQ(cancelled.code(), StatusCode::kUnavailable);
  EXPECT_NE(cancelled.message().find("cancelled"), std::string::npos) << cancelled.message();
  RecordProperty("cancel_latency_ms", std::to_string(Millis(latency)));
  // The server notices the client is gone and releases the stream.
  EXPECT_TRUE(testing::WaitUntil([&] { return server.open_watches() == 0; }));
  std::printf("[ measure  ] idle stream cancel latency: %.2f ms\n", Millis(latency));

  // Cancel is sticky: a later call returns at once without a request.
  const int before = server.CountRequests(RequestKind::kAny);
  EXPECT_FALSE(client
                   .Stream(
                       "/api/v1/pods?watch=1", [](std::string_view) { return true; }, &status,
                       nullptr, &cancel)
                   .ok());
  EXPECT_EQ(server.CountRequests(RequestKind::kAny), before);
}

TEST(KubeClientTest, CancelLandsWhileTheServerHasNotAnsweredYet) {
  FakeApiServer server;
  // The request arrives, and its answer (headers included) is held until the test ends.
  server.HoldNextAnswer([](const testing::RecordedRequest&) { return true; });
  KubeClient client(ConfigFor(server), NeverTimingOut());
  StreamCancel cancel;
  std::future<StatusOr<KubeResponse>> result =
      std::async(std::launch::async, [&] { return client.Get("/api/v1/pods", &cancel); });
  ASSERT_TRUE(testing::WaitUntil([&] { return server.held_answer_waiting(); }));
  cancel.Cancel();
  result.wait();
  const auto cancelled = result.get();
  ASSERT_FALSE(cancelled.ok());
  EXPECT_NE(cancelled.status().message().find("cancelled"), std::string::npos)
      << cancelled.status().message();
  server.ReleaseHeldAnswer();
}

// Cancel at every moment of a call's life, including before it has connected, when httplib's
// stop() alone would find no socket to shut and be lost. The server never answers, so nothing
// but the socket shutdown can end the call.
TEST(KubeClientTest, CancelRacingTheConnectionIsNeverLost) {
  FakeApiServer server;
  server.SetDelay(20s);
  KubeClient client(ConfigFor(server), NeverTimingOut());
  for (int i = 0; i < 20; ++i) {
    StreamCancel cancel;
    std::future<Status> result = std::async(std::launch::async, [&] {
      int status = 0;
      return client.Stream(
          "/api/v1/pods?watch=1&resourceVersion=1", [](std::string_view) { return true; }, &status,
          nullptr, &cancel);
    });
    std::this_thread::sleep_for(std::chrono::microseconds(i * 250));
    cancel.Cancel();
    const Status ended = result.get();
    EXPECT_NE(ended.message().find("cancelled"), std::string::npos)
        << "iteration " << i << ": " << ended.message();
  }
  server.SetDelay(0ms);
}

TEST(KubeClientTest, StreamCancelWaitForEndsWithItsClockOrOnCancel) {
  StreamCancel cancel;
  EXPECT_FALSE(cancel.WaitFor(1ms));  // the system clock
  testing::FakeClock clock;
  std::future<bool> timed =
      std::async(std::launch::async, [&] { return cancel.WaitFor(10s, clock); });
  ASSERT_TRUE(clock.WaitForSleepers(1));
  clock.Advance(9s);
  EXPECT_EQ(timed.wait_for(20ms), std::future_status::timeout);  // 1 s of fake time to go
  clock.Advance(1s);
  EXPECT_FALSE(timed.get());  // the time ran out; not cancelled

  std::future<bool> cancelled =
      std::async(std::launch::async, [&] { return cancel.WaitFor(10s, clock); });
  ASSERT_TRUE(clock.WaitForSleepers(1));
  cancel.Cancel();
  EXPECT_TRUE(cancelled.get());  // without any fake time passing
  EXPECT_EQ(clock.waits(), (std::vector<std::chrono::nanoseconds>{10s, 10s}));
}

TEST(EscapeQueryValueTest, EscapesAllButUnreserved) {
  EXPECT_EQ(EscapeQueryValue("spec.nodeName=node-1"), "spec.nodeName%3Dnode-1");
  EXPECT_EQ(EscapeQueryValue("a+b/c= ~_"), "a%2Bb%2Fc%3D%20~_");
}

}  // namespace
}  // namespace cgpu
