// The real server on an ephemeral loopback port, spoken to over TLS with CA verification.
#include "shell/webhook_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "shell/ops_server.h"
#include "support/fake_api_server.h"
#include "support/fixtures.h"
#include "support/raw_tls_client.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string kPodCreate =
    testing::ReadFixture("upstream/admissionreview-v1-pod-create-minimal.json");

class WebhookServerTest : public ::testing::Test {
 protected:
  // The clients here write through OpenSSL onto sockets the server may have closed (refusals,
  // connection caps): as in the server itself (serve ignores SIGPIPE), a write must fail, not
  // end the process.
  static void SetUpTestSuite() { std::signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    dir_ = testing::MakeTempDir();
    ca_ = testing::MakeTestCa();
    testing::WriteServingFiles(dir_, ca_, "first");
    auto store = CertificateStore::Load(dir_ + "/tls.crt", dir_ + "/tls.key");
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
    options_.listen = {"127.0.0.1", 0};
    options_.metrics_listen = {"127.0.0.1", 0};
    options_.threads = 8;
    options_.max_body_bytes = 1 << 20;
  }

  void Start(Policy policy = AllowEverything, DecidesOffLoop off_loop = {}) {
    server_ = std::make_unique<WebhookServer>(options_, *store_, std::move(policy), metrics_,
                                              RequestOnly, "", std::move(off_loop));
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { server_->Run(); });
    ops_ = std::make_unique<OpsServer>(options_.metrics_listen, metrics_, [this] {
      return std::string(shutting_down_ ? "shutting down" : "");
    });
    ASSERT_TRUE(ops_->Bind().ok());
    ops_thread_ = std::thread([this] { ops_->Run(); });
  }

  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
    if (ops_) ops_->Stop();
    if (ops_thread_.joinable()) ops_thread_.join();
  }

  std::unique_ptr<httplib::SSLClient> Client() {
    auto client = std::make_unique<httplib::SSLClient>("localhost", server_->port());
    client->set_ca_cert_path((dir_ + "/ca.crt").c_str());
    client->enable_server_certificate_verification(true);
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);  // as the API server's Go client does
    client->set_read_timeout(10s);
    return client;
  }

  std::string dir_;
  testing::TestCa ca_;
  std::unique_ptr<CertificateStore> store_;
  ServeOptions options_;
  Metrics metrics_{"test"};
  std::unique_ptr<WebhookServer> server_;
  std::unique_ptr<OpsServer> ops_;
  std::thread thread_, ops_thread_;
  std::atomic<bool> shutting_down_{false};
};

TEST_F(WebhookServerTest, AllowedResponseEchoesUidAndApiVersion) {
  Start();
  auto client = Client();
  for (const char* version : {"admission.k8s.io/v1", "admission.k8s.io/v1beta1"}) {
    json review = json::parse(kPodCreate);
    review["apiVersion"] = version;
    review["request"]["uid"] = std::string("uid-") + version;
    auto result = client->Post("/validate?timeout=10s", review.dump(), "application/json");
    ASSERT_TRUE(result) << httplib::to_string(result.error());
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->get_header_value("Content-Type"), "application/json");
    json response = json::parse(result->body);
    EXPECT_EQ(response["apiVersion"], version);
    EXPECT_EQ(response["kind"], "AdmissionReview");
    EXPECT_EQ(response["response"]["uid"], std::string("uid-") + version);
    EXPECT_EQ(response["response"]["allowed"], true);
  }
}

TEST_F(WebhookServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  Start();
  auto client = Client();
  for (int i = 0; i < 200; ++i) {
    auto result = client->Post("/validate", kPodCreate, "application/json");
    ASSERT_TRUE(result) << "request " << i << ": " << httplib::to_string(result.error());
    ASSERT_EQ(result->status, 200);
  }
  EXPECT_EQ(server_->completed_handshakes(), 1);  // cpp-httplib's default would have made 40
}

TEST_F(WebhookServerTest, RefusesTls11AndWeakCiphers) {
  Start();
  testing::HandshakeResult tls12 =
      testing::Handshake(server_->port(), TLS1_2_VERSION, TLS1_2_VERSION);
  ASSERT_TRUE(tls12.ok) << tls12.error;  // the probe itself works
  EXPECT_EQ(tls12.protocol, "TLSv1.2");
  EXPECT_EQ(testing::Handshake(server_->port()).protocol, "TLSv1.3");

  testing::HandshakeResult tls11 =
      testing::Handshake(server_->port(), TLS1_1_VERSION, TLS1_1_VERSION);
  EXPECT_FALSE(tls11.ok);
  // The server's alert, not the client giving up: the client did offer TLS 1.1.
  EXPECT_EQ(tls11.error, "tlsv1 alert protocol version");

  for (const char* weak : {"AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"}) {
    testing::HandshakeResult result =
        testing::Handshake(server_->port(), TLS1_2_VERSION, TLS1_2_VERSION, weak);
    EXPECT_FALSE(result.ok) << weak;
    EXPECT_EQ(result.error, "sslv3 alert handshake failure") << weak;
  }
}

TEST_F(WebhookServerTest, RotatedCertificateIsServedToTheNextConnection) {
  Start();
  auto client = Client();
  ASSERT_TRUE(client->Post("/validate", kPodCreate, "application/json"));
  EXPECT_EQ(testing::Handshake(server_->port()).peer_common_name, "first");

  auto rotated = testing::MakeServingPair(ca_, "rotated");
  testing::WriteFile(dir_ + "/tls.crt", rotated.cert_pem);
  testing::WriteFile(dir_ + "/tls.key", rotated.key_pem);
  ASSERT_TRUE(*store_->ReloadIfChanged());

  EXPECT_EQ(testing::Handshake(server_->port()).peer_common_name, "rotated");
  // The connection opened before the rotation keeps working.
  auto again = client->Post("/validate", kPodCreate, "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  // And a fresh verifying client accepts the new certificate.
  auto fresh = Client()->Post("/validate", kPodCreate, "application/json");
  ASSERT_TRUE(fresh) << httplib::to_string(fresh.error());
  EXPECT_EQ(fresh->status, 200);
}

TEST_F(WebhookServerTest, BadRequestsGetPreciseAnswers) {
  Start();
  auto client = Client();
  auto too_big = client->Post("/validate", std::string(2 << 20, ' '), "application/json");
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->status, 413);
  EXPECT_EQ(json::parse(too_big->body)["message"],
            "request body is larger than 1048576 bytes (--max-body-bytes)");

  client = Client();  // the server may close after a 413
  auto get = client->Get("/validate");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST");

  auto text = client->Post("/validate", kPodCreate, "text/plain");
  ASSERT_TRUE(text);
  EXPECT_EQ(text->status, 415);

  auto broken = client->Post("/validate", "{\"apiVersion\":", "application/json");
  ASSERT_TRUE(broken);
  EXPECT_EQ(broken->status, 400);
  EXPECT_EQ(json::parse(broken->body)["reason"], "BadRequest");

  auto elsewhere = client->Post("/mutate", kPodCreate, "application/json");
  ASSERT_TRUE(elsewhere);
  EXPECT_EQ(elsewhere->status, 404);
  EXPECT_EQ(json::parse(elsewhere->body)["message"],
            "no such path /mutate; the webhook path is /validate");

  // And the server still answers good requests.
  auto good = client->Post("/validate", kPodCreate, "application/json");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200);
}

TEST_F(WebhookServerTest, DrainFinishesInFlightRequestsThenStops) {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Start([&entered, released](const ReviewFacts&) {
    entered.set_value();
    released.wait();  // still deciding when the drain and the stop come
    return Allow("slow");
  });
  auto in_flight = std::async(std::launch::async, [this] {
    return Client()->Post("/validate", kPodCreate, "application/json");
  });
  entered.get_future().wait();
  server_->BeginDrain();
  server_->Stop();
  release.set_value();
  auto result = in_flight.get();
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Connection"), "close");
  thread_.join();  // Run() returns: nothing left open
  EXPECT_FALSE(Client()->Post("/validate", kPodCreate, "application/json"));
}

// A review whose decision waits on the API server is decided off the event loop: with a single
// loop, other connections are answered while it waits; it is answered when its wait ends, and a
// Stop() meanwhile waits for it like for any request in progress.
TEST_F(WebhookServerTest, AReviewWaitingOnTheApiServerHoldsNoEventLoop) {
  options_.threads = 1;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Start(
      [&](const ReviewFacts& facts) {
        if (facts.request.name != "waits") return Allow("fast");
        entered.set_value();
        released.wait();
        return Allow("waited");
      },
      [](const ReviewFacts& facts) { return facts.request.name == "waits"; });
  json waiting_review = json::parse(kPodCreate);
  waiting_review["request"]["name"] = "waits";
  auto waiting = std::async(std::launch::async, [&] {
    return Client()->Post("/validate", waiting_review.dump(), "application/json");
  });
  ASSERT_EQ(entered.get_future().wait_for(30s), std::future_status::ready);

  for (int i = 0; i < 3; ++i) {  // the only loop is free: other connections get their answers
    auto fast = Client()->Post("/validate", kPodCreate, "application/json");
    ASSERT_TRUE(fast) << httplib::to_string(fast.error());
    EXPECT_EQ(fast->status, 200);
  }
  EXPECT_EQ(waiting.wait_for(0s), std::future_status::timeout) << "still waiting on its read";

  server_->Stop();
  release.set_value();
  auto answered = waiting.get();
  ASSERT_TRUE(answered) << httplib::to_string(answered.error());
  EXPECT_EQ(answered->status, 200);
  EXPECT_EQ(json::parse(answered->body)["response"]["allowed"], true);
  thread_.join();  // Run() returned once the waiting review was answered
}

TEST_F(WebhookServerTest, DrainingAnswersAskClientsToReconnectElsewhere) {
  Start();
  auto client = Client();
  auto before = client->Post("/validate", kPodCreate, "application/json");
  ASSERT_TRUE(before);
  EXPECT_NE(before->get_header_value("Connection"), "close");
  server_->BeginDrain();
  auto during = client->Post("/validate", kPodCreate, "application/json");
  ASSERT_TRUE(during);
  EXPECT_EQ(during->status, 200);
  EXPECT_EQ(during->get_header_value("Connection"), "close");
}

TEST_F(WebhookServerTest, ConcurrentClientsAreAllAnswered) {
  Start();
  std::vector<std::future<int>> workers;
  for (int w = 0; w < 8; ++w) {
    workers.push_back(std::async(std::launch::async, [this] {
      auto client = Client();
      int ok = 0;
      for (int i = 0; i < 50; ++i) {
        auto result = client->Post("/validate", kPodCreate, "application/json");
        ok += result && result->status == 200;
      }
      return ok;
    }));
  }
  for (auto& worker : workers) EXPECT_EQ(worker.get(), 50);
}

// Whether the server closes a plain TCP connection on which the client does `action` (rather
// than the client's own 10 s limit passing first).
bool ServerCloses(int port, const std::function<void(int fd)>& action) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return false;
  action(fd);
  timeval limit{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  char buffer[4096];
  ssize_t got = 0;
  while ((got = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
  }
  const bool closed = got == 0 || errno == ECONNRESET;
  close(fd);
  return closed;
}

TEST_F(WebhookServerTest, SlowAndSilentClientsAreCutOff) {
  options_.read_timeout = 1s;
  options_.idle_timeout = 1s;
  options_.threads = 1;
  Start();
  // Connects and never starts the TLS handshake; starts one and stalls halfway through the
  // ClientHello. Both at once: each is cut at the read timeout.
  auto silent =
      std::async(std::launch::async, [&] { return ServerCloses(server_->port(), [](int) {}); });
  auto stalled = std::async(std::launch::async, [&] {
    return ServerCloses(server_->port(), [](int fd) { send(fd, "\x16\x03\x01\x02\x00", 5, 0); });
  });
  // Dribbling a request one byte at a time does not buy more than the read timeout: a byte after
  // each answer to a good request on another connection (served by the same, only loop), for a
  // body far longer than the read timeout lets it finish.
  auto slow = testing::RawTlsClient::Connect(server_->port());
  ASSERT_TRUE(slow);
  const size_t body = 100'000;
  const std::string head =
      "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body) + "\r\n\r\n";
  auto good = Client();
  size_t sent = 0;
  int answered = 0;
  const std::string request = head + std::string(body, ' ');
  while (sent < request.size() && slow->Send(request.substr(sent, 1))) {
    ++sent;
    auto result = good->Post("/validate", kPodCreate, "application/json");
    answered += result && result->status == 200 ? 1 : 0;
  }
  EXPECT_LT(sent, request.size()) << "cut off before finishing";
  EXPECT_EQ(answered, static_cast<int>(sent)) << "the good client was answered meanwhile";
  EXPECT_TRUE(silent.get()) << "a connection that never starts its handshake is closed";
  EXPECT_TRUE(stalled.get()) << "a handshake stalled halfway is closed";
}

// The bodies held at once are budgeted: clients stalling mid-body each hold their body's length,
// and the one that would pass --max-buffered-bytes is answered 503 at once. An answered request
// gives its share back.
TEST_F(WebhookServerTest, BodiesHeldAtOnceAreBudgeted) {
  options_.max_body_bytes = 1 << 20;
  options_.max_buffered_bytes = 2 << 20;
  Start();
  const std::string head =
      "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 900000\r\n\r\n";
  std::vector<std::unique_ptr<testing::RawTlsClient>> stalled;
  for (int i = 0; i < 2; ++i) {  // 2 x 900 KB held, within 2 MiB
    stalled.push_back(testing::RawTlsClient::Connect(server_->port()));
    ASSERT_TRUE(stalled.back());
    ASSERT_TRUE(stalled.back()->Send(head + "{\"apiVersion\""));
  }
  // Both are held once a good request on its own connection is answered after them: the server
  // has read their headers by then (one loop would serve them in order; with eight, wait for it).
  ASSERT_TRUE(testing::WaitUntil([&] {
    auto third = testing::RawTlsClient::Connect(server_->port());
    if (!third || !third->Send(head + "{")) return false;
    const std::string answer = third->ReadUntilClosed(5s);
    return answer.substr(0, 12) == "HTTP/1.1 503";
  }));
  EXPECT_NE(
      metrics_.Serialize().find(R"(cgpu_guard_admission_shed_total{reason="buffered-bytes"})"),
      std::string::npos);

  stalled.clear();  // their bodies are dropped with their connections: room again
  EXPECT_TRUE(testing::WaitUntil([&] {
    auto result = Client()->Post("/validate", kPodCreate, "application/json");
    return result && result->status == 200;
  }));
}

// Connections past --max-connections are closed as soon as they are accepted, and counted.
TEST_F(WebhookServerTest, ConnectionsPastTheCapAreClosedOnAccept) {
  options_.max_connections = 2;
  Start();
  auto first = Client();
  auto second = Client();
  ASSERT_TRUE(first->Post("/validate", kPodCreate, "application/json"));
  ASSERT_TRUE(second->Post("/validate", kPodCreate, "application/json"));
  auto third = Client();
  EXPECT_FALSE(third->Post("/validate", kPodCreate, "application/json"));
  EXPECT_NE(metrics_.Serialize().find(R"(cgpu_guard_admission_shed_total{reason="connections"} )"),
            std::string::npos);
  first.reset();  // one leaves: the next is served
  EXPECT_TRUE(testing::WaitUntil([&] {
    auto result = Client()->Post("/validate", kPodCreate, "application/json");
    return result && result->status == 200;
  }));
}

TEST_F(WebhookServerTest, IdleConnectionsHoldNoThread) {
  options_.idle_timeout = 1s;
  options_.threads = 1;
  Start();
  // Many keep-alive connections gone idle, one thread: a new client is still served at once.
  std::vector<std::unique_ptr<httplib::SSLClient>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(Client());
    ASSERT_TRUE(idle.back()->Post("/validate", kPodCreate, "application/json"));
  }
  EXPECT_EQ(server_->open_connections(), 20);
  auto fresh_client = Client();
  auto fresh = fresh_client->Post("/validate", kPodCreate, "application/json");
  ASSERT_TRUE(fresh) << httplib::to_string(fresh.error());
  EXPECT_EQ(fresh->status, 200);
  // Answered while all of the idle ones were still open: none of them held the only thread until
  // its idle timeout let go of it.
  EXPECT_EQ(server_->open_connections(), 21);
  // And the idle ones are closed by the server once the idle timeout passes.
  EXPECT_TRUE(testing::WaitUntil([&] { return server_->open_connections() == 0; }));
}

// A body announced over the limit is refused as soon as its header is read: the client need not
// send it to learn so. One that sends it anyway still reads its 413 (the server reads and drops
// what follows for a while before closing), and the next request takes a new connection.
TEST_F(WebhookServerTest, OversizedBodyIsRefusedBeforeItIsSent) {
  Start();
  auto raw = testing::RawTlsClient::Connect(server_->port());
  ASSERT_TRUE(raw);
  raw->Send(
      "POST /validate HTTP/1.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 8388608\r\n\r\n");
  const std::string answer = raw->ReadUntilClosed(5s);
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 413") << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;

  auto client = Client();
  ASSERT_TRUE(client->Post("/validate", kPodCreate, "application/json"));
  // 8 MiB against a 1 MiB limit, written whole by a client that reads only afterwards.
  auto too_big = client->Post("/validate", std::string(8 << 20, ' '), "application/json");
  ASSERT_TRUE(too_big) << httplib::to_string(too_big.error());
  EXPECT_EQ(too_big->status, 413);
  auto next = client->Post("/validate", kPodCreate, "application/json");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

TEST_F(WebhookServerTest, BrokenHttpIsAnsweredAndTheConnectionClosed) {
  Start();
  struct Case {
    std::string bytes;
    std::string status_line;
  };
  const Case cases[] = {
      {"NOT HTTP AT ALL\r\n\r\n", "HTTP/1.1 400"},
      {"POST /validate HTTP/1.1\r\nContent-Length: nope\r\n\r\n", "HTTP/1.1 400"},
      {"POST /validate HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n",
       "HTTP/1.1 431"},
      // Chunked, over the limit: nothing says how long it will be, so it is cut short.
      {"POST /validate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n" +
           std::string(0x200000, 'x') + "\r\n0\r\n\r\n",
       "HTTP/1.1 413"},
  };
  // Each on a connection of its own, all at once: a refused connection lingers (reading what the
  // client may still send) before the server closes it, and the waits overlap.
  std::vector<std::future<std::string>> answers;
  for (const Case& c : cases) {
    answers.push_back(std::async(std::launch::async, [&] {
      auto raw = testing::RawTlsClient::Connect(server_->port());
      if (!raw) return std::string("no connection");
      raw->Send(c.bytes);
      return raw->ReadUntilClosed(5s);
    }));
  }
  // A body longer than anyone would throw away for a 413 is refused without reading it.
  auto raw = testing::RawTlsClient::Connect(server_->port());
  ASSERT_TRUE(raw);
  raw->Send(
      "POST /validate HTTP/1.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 1000000000000\r\n\r\n");
  EXPECT_EQ(raw->ReadUntilClosed(5s).substr(0, 12), "HTTP/1.1 413");
  for (size_t i = 0; i < answers.size(); ++i) {
    const Case& c = cases[i];
    const std::string answer = answers[i].get();
    EXPECT_EQ(answer.substr(0, c.status_line.size()), c.status_line) << answer.substr(0, 200);
    EXPECT_NE(answer.find("Connection: close"), std::string::npos);
    EXPECT_NE(answer.find("\"kind\":\"Status\""), std::string::npos) << answer;
  }
  // The server is unharmed.
  auto good = Client()->Post("/validate", kPodCreate, "application/json");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200);
}

// With an idle timeout of an hour, a Stop that waited for idle connections would hang the test
// into its timeout: returning at all is the proof.
TEST_F(WebhookServerTest, StopClosesIdleConnectionsWithoutWaitingForThem) {
  options_.idle_timeout = 1h;
  Start();
  auto idle = Client();
  ASSERT_TRUE(idle->Post("/validate", kPodCreate, "application/json"));
  auto silent = testing::RawTlsClient::Connect(server_->port());  // handshake, then nothing
  ASSERT_TRUE(silent);
  server_->Stop();
  thread_.join();
  EXPECT_EQ(server_->open_connections(), 0);
}

TEST_F(WebhookServerTest, StopBeforeRunStillEndsRun) {
  server_ = std::make_unique<WebhookServer>(options_, *store_, AllowEverything, metrics_);
  ASSERT_TRUE(server_->Bind().ok());
  server_->Stop();
  thread_ = std::thread([this] { server_->Run(); });
  thread_.join();  // would hang if the stop were lost
}

std::string RunPromtool(const std::string& exposition) {
  const std::string path = testing::MakeTempDir() + "/metrics.txt";
  testing::WriteFile(path, exposition);
  std::string output;
  FILE* pipe = popen(("promtool check metrics < " + path + " 2>&1; echo \"exit=$?\"").c_str(), "r");
  char buffer[512];
  while (pipe != nullptr && fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  if (pipe != nullptr) pclose(pipe);
  return output;
}

TEST_F(WebhookServerTest, MetricsScrapePassesPromtoolAndCounts) {
  Start();
  auto client = Client();
  ASSERT_TRUE(client->Post("/validate", kPodCreate, "application/json"));
  ASSERT_TRUE(client->Post("/validate", "null", "application/json"));

  httplib::Client ops("127.0.0.1", ops_->port());
  auto scrape = ops.Get("/metrics");
  ASSERT_TRUE(scrape);
  EXPECT_EQ(scrape->status, 200);
  const std::string& text = scrape->body;
  EXPECT_NE(text.find("cgpu_guard_admission_requests_total{operation=\"CREATE\",resource=\"pods\","
                      "verdict=\"allowed\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("cgpu_guard_admission_bad_requests_total{reason=\"not-a-review\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("cgpu_guard_decision_duration_seconds_count 1"), std::string::npos);
  EXPECT_NE(text.find("cgpu_guard_build_info{version=\"test\"} 1"), std::string::npos);

  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not installed (scripts/install-deps.sh installs it)";
  }
  std::string verdict = RunPromtool(text);
  EXPECT_NE(verdict.find("exit=0"), std::string::npos) << verdict;
  // The check can fail: a broken exposition is caught.
  EXPECT_EQ(RunPromtool("# TYPE x counter\nx{a=\"1\" 1\n").find("exit=0"), std::string::npos);
}

// What a scanner sees on the webhook port: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers of
// at least 128 bits, no renegotiation.
TEST_F(WebhookServerTest, SslscanFindsNothingWeak) {
  if (std::system("command -v sslscan >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "sslscan is not installed (scripts/install-deps.sh installs it)";
  }
  Start();
  std::string report;
  const std::string command =
      "sslscan --no-colour --no-heartbleed 127.0.0.1:" + std::to_string(server_->port()) + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  char buffer[512];
  while (pipe != nullptr && fgets(buffer, sizeof(buffer), pipe) != nullptr) report += buffer;
  if (pipe != nullptr) pclose(pipe);

  for (const char* line :
       {"SSLv2     disabled", "SSLv3     disabled", "TLSv1.0   disabled", "TLSv1.1   disabled",
        "TLSv1.2   enabled", "TLSv1.3   enabled", "Session renegotiation not supported"}) {
    EXPECT_NE(report.find(line), std::string::npos) << line << "\n" << report;
  }
  int ciphers = 0;
  std::istringstream lines(report);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Accepted", 0) != 0 && line.rfind("Preferred", 0) != 0) continue;
    ++ciphers;
    std::istringstream words(line);
    std::string verdict, protocol, name;
    int bits = 0;
    words >> verdict >> protocol >> bits >> name >> name;  // "Accepted TLSv1.2 128 bits NAME"
    EXPECT_GE(bits, 128) << line;
    EXPECT_TRUE(name.find("GCM") != std::string::npos || name.find("CHACHA20") != std::string::npos)
        << "not an AEAD cipher: " << line;
    if (protocol == "TLSv1.2")
      EXPECT_EQ(name.rfind("ECDHE-", 0), 0u) << "not forward-secret: " << line;
  }
  EXPECT_GE(ciphers, 4) << report;  // the scan did see the ciphers
}

// The ops port answers only GET and HEAD, and refuses anything else before reading its body: a
// client announcing 300 MB and sending none of it still gets its 405 at once.
TEST_F(WebhookServerTest, OpsPortRefusesOtherMethodsWithoutReadingTheirBodies) {
  Start();
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    SCOPED_TRACE(method);
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(ops_->port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    const std::string head =
        std::string(method) + " /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 300000000\r\n\r\n";
    ASSERT_EQ(send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    std::string answer;
    char buffer[4096];
    ssize_t got = 0;
    // Until the answer's last line (the server then drops the connection within its read
    // timeout, the announced body never having been read).
    while (answer.find("served on this port\n") == std::string::npos &&
           (got = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
      answer.append(buffer, got);
    }
    close(fd);
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 405") << answer;
    EXPECT_NE(answer.find("Allow: GET, HEAD"), std::string::npos) << answer;
  }
  httplib::Client ops("127.0.0.1", ops_->port());  // GET still works
  auto metrics = ops.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
}

// HEAD gets GET's status and Content-Length and no body: the next answer on the same connection
// starts right after the first one's head, with no stray body bytes between.
TEST_F(WebhookServerTest, OpsPortAnswersHeadWithoutABody) {
  Start();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(ops_->port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const std::string requests =
      "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(send(fd, requests.data(), requests.size(), 0), static_cast<ssize_t>(requests.size()));
  std::string answers;
  char buffer[4096];
  for (ssize_t got = 0; (got = recv(fd, buffer, sizeof(buffer), 0)) > 0;)
    answers.append(buffer, got);
  close(fd);
  const size_t head_end = answers.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << answers;
  const std::string head = answers.substr(0, head_end);
  EXPECT_EQ(head.substr(0, 15), "HTTP/1.1 200 OK") << head;
  EXPECT_NE(head.find("Content-Length: 3"), std::string::npos) << head;
  const std::string rest = answers.substr(head_end + 4);
  EXPECT_EQ(rest.substr(0, 15), "HTTP/1.1 200 OK") << "bytes after HEAD's answer: " << rest;
  EXPECT_EQ(rest.substr(rest.size() - 3), "ok\n") << rest;
}

TEST_F(WebhookServerTest, ReadinessFollowsTheServer) {
  Start();
  httplib::Client ops("127.0.0.1", ops_->port());
  EXPECT_EQ(ops.Get("/readyz")->status, 200);
  EXPECT_EQ(ops.Get("/healthz")->status, 200);
  shutting_down_ = true;
  auto readyz = ops.Get("/readyz");
  EXPECT_EQ(readyz->status, 503);
  EXPECT_EQ(readyz->body, "not ready: shutting down\n");
  EXPECT_EQ(ops.Get("/healthz")->status, 200);
}

}  // namespace
}  // namespace cgpu
