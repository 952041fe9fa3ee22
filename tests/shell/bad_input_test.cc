// Every kind of bad input, over the real TLS port of the real binary, while a steady client sends
// good reviews on a keep-alive connection of its own. Each bad input gets its precise answer (or,
// where no answer is possible, a closed connection at the right time); the server stays up; and
// the good client is answered correctly throughout, its latency recorded and bounded.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.h"
#include "support/fixtures.h"
#include "support/raw_tls_client.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::RawTlsClient;

const std::string kLocal = std::string(CGPU_SOURCE_DIR) + "/scripts/local";
const std::string kGood =
    testing::ReadFixture("upstream/admissionreview-v1-pod-create-minimal.json");

// The request line and headers of a POST to /validate; the connection closes after the answer,
// so ReadUntilClosed() returns as soon as it has it.
std::string Post(const std::string& body, const std::string& content_type = "application/json") {
  return "POST /validate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: " +
         content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string Review(const std::string& request) {
  return R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":)" + request +
         "}";
}

struct Answer {
  int status = 0;  // 0: closed without an answer
  std::string head;
  std::string body;
  json json_body;
};

Answer Parse(const std::string& bytes) {
  Answer answer;
  if (bytes.rfind("HTTP/1.1 ", 0) != 0) return answer;
  answer.status = std::stoi(bytes.substr(9, 3));
  const size_t split = bytes.find("\r\n\r\n");
  answer.head = bytes.substr(0, split);
  if (split != std::string::npos) answer.body = bytes.substr(split + 4);
  answer.json_body = json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  return answer;
}

// Sends `bytes` on a fresh connection and reads until the server closes it.
Answer Exchange(int port, const std::string& bytes, std::chrono::milliseconds limit = 10s) {
  auto client = RawTlsClient::Connect(port);
  if (!client) return Answer{-1};
  client->Send(bytes);
  return Parse(client->ReadUntilClosed(limit));
}

// A plain TCP connection to the ops port: connect, send, read until the server closes (or
// `limit` passes without a byte).
class PlainClient {
 public:
  static std::unique_ptr<PlainClient> Connect(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      close(fd);
      return nullptr;
    }
    return std::unique_ptr<PlainClient>(new PlainClient(fd));
  }
  ~PlainClient() { close(fd_); }
  bool Send(const std::string& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  std::string ReadUntilClosed(std::chrono::milliseconds limit = 10s) {
    timeval timeout{static_cast<time_t>(limit.count() / 1000),
                    static_cast<suseconds_t>(limit.count() % 1000 * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::string answer;
    char buffer[4096];
    ssize_t got = 0;
    while ((got = recv(fd_, buffer, sizeof(buffer), 0)) > 0) answer.append(buffer, got);
    return answer;
  }

 private:
  explicit PlainClient(int fd) : fd_(fd) {}
  int fd_;
};

// Good reviews, one every 5 ms on one keep-alive connection, until stopped: every answer must be
// a 200 allowing the pod; latencies are kept.
class GoodClient {
 public:
  GoodClient(const std::string& ca_file, int port)
      : thread_([this, ca_file, port] {
          httplib::SSLClient client("127.0.0.1", port);
          client.set_ca_cert_path(ca_file.c_str());
          client.enable_server_certificate_verification(true);
          client.set_keep_alive(true);
          client.set_tcp_nodelay(true);  // as the API server's Go client does
          client.set_read_timeout(10s);
          while (!stop_) {
            const auto start = std::chrono::steady_clock::now();
            auto result = client.Post("/validate", kGood, "application/json");
            const double micros =
                std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                    .count();
            const bool good = result && result->status == 200 &&
                              result->body.find(R"("allowed":true)") != std::string::npos;
            {
              std::lock_guard<std::mutex> lock(mu_);
              latencies_.push_back(micros);
              if (!good) ++failures_;
            }
            // The pace of a steady client, which Stop() ends at once.
            std::unique_lock<std::mutex> lock(mu_);
            stopped_.wait_for(lock, 5ms, [this] { return stop_.load(); });
          }
        }) {}

  ~GoodClient() { Stop(); }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    stopped_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  int failures() {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return latencies_.size();
  }
  double Percentile(double p) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<double> sorted = latencies_;
    std::sort(sorted.begin(), sorted.end());
    if (sorted.empty()) return 0;
    return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p / 100 * sorted.size()))];
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable stopped_;
  std::vector<double> latencies_;
  int failures_ = 0;
  std::thread thread_;
};

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Thousands of connections need thousands of descriptors, here and in the server (which
    // raises its own limit the same way).
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  void SetUp() override {
    dir_ = testing::MakeTempDir();
    ca_ = testing::MakeTestCa();
    testing::WriteServingFiles(dir_, ca_, "cgpu-guard");
    process_ =
        testing::Spawn(testing::ServeArgs(dir_, {"--cluster-state", kLocal + "/cluster-state.json",
                                                 "--read-timeout", "2s", "--idle-timeout", "60s",
                                                 "--shutdown-delay", "0s"}),
                       dir_);
    port_ = testing::WaitForPort(*process_, "webhook", "https");
    ASSERT_NE(port_, 0) << process_->Log();
    ops_port_ = testing::WaitForPort(*process_, "metrics", "http");
    ASSERT_NE(ops_port_, 0) << process_->Log();
    good_ = std::make_unique<GoodClient>(dir_ + "/ca.crt", port_);
  }

  void TearDown() override {
    if (good_) good_->Stop();
    if (process_) {
      kill(process_->pid, SIGTERM);
      EXPECT_EQ(process_->Wait(20s), 0) << "the server did not survive: " << process_->Log();
    }
  }

  // A 400 whose Status message contains `message`.
  void ExpectBadRequest(const std::string& body, const std::string& message) {
    SCOPED_TRACE(body.substr(0, 120));
    const Answer answer = Exchange(port_, Post(body));
    EXPECT_EQ(answer.status, 400) << answer.body;
    EXPECT_EQ(answer.json_body.value("kind", ""), "Status") << answer.body;
    EXPECT_NE(answer.json_body.value("message", "").find(message), std::string::npos)
        << answer.body;
  }

  std::string dir_;
  testing::TestCa ca_;
  std::unique_ptr<testing::Process> process_;
  int port_ = 0;
  int ops_port_ = 0;
  std::unique_ptr<GoodClient> good_;
};

TEST_F(BadInputTest, EveryBadInputIsAnsweredPreciselyWhileGoodRequestsFlow) {
  // Slow and stalled peers run alongside everything else: each is cut at --read-timeout (2 s).
  std::thread slowloris([&] {
    auto client = RawTlsClient::Connect(port_);
    ASSERT_TRUE(client);
    // One byte at a time, each after a good request of its own was answered: a body of 3 MB
    // this way takes far longer than the read timeout allows.
    httplib::SSLClient pace("127.0.0.1", port_);
    pace.enable_server_certificate_verification(false);
    pace.set_keep_alive(true);
    const std::string request = Post(std::string(3'000'000, ' ') + kGood);
    size_t sent = 0;
    while (sent < request.size() && client->Send(request.substr(sent, 1))) {
      ++sent;
      pace.Post("/validate", kGood, "application/json");
    }
    EXPECT_LT(sent, request.size()) << "slowloris kept its connection for " << sent << " bytes";
  });
  std::thread truncated([&] {
    // Content-Length says 1000, 500 come, then nothing: no answer is possible; cut at 2 s.
    auto client = RawTlsClient::Connect(port_);
    ASSERT_TRUE(client);
    const std::string head =
        "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n";
    client->Send(head + std::string(500, ' '));
    const auto start = std::chrono::steady_clock::now();
    // However slow the machine, the server cuts it first; a lost cut runs into the test timeout.
    EXPECT_EQ(client->ReadUntilClosed(600s), "");
    EXPECT_TRUE(client->closed_by_server()) << "the server never closed the connection";
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GE(seconds, 1.5) << "closed before --read-timeout";
  });

  // 100 MB announced by its Content-Length: 413 at once, before a byte of the body is sent. The
  // refused connection lingers before it closes (http_server.h): meanwhile the rest goes on.
  std::future<Answer> announced = std::async(std::launch::async, [&] {
    const std::string post = Post(std::string(100 << 20, ' '));
    return Exchange(port_, post.substr(0, post.find("\r\n\r\n") + 4));
  });

  // More idle connections than the 1024 descriptors a process gets by default: each holds a
  // socket, none a thread; the rest goes on.
  std::vector<std::unique_ptr<RawTlsClient>> idle;
  for (int i = 0; i < 1200; ++i) {
    auto client = RawTlsClient::Connect(port_);
    ASSERT_TRUE(client) << "connection " << i << " refused";
    idle.push_back(std::move(client));
  }

  // Truncated JSON, with a Content-Length that matches what was sent.
  ExpectBadRequest(kGood.substr(0, kGood.size() / 2), "request body is not valid JSON");
  ExpectBadRequest("", "request body is empty");

  {
    const Answer answer = announced.get();
    EXPECT_EQ(answer.status, 413) << answer.body;
    EXPECT_NE(answer.json_body.value("message", "").find("larger than 3145728 bytes"),
              std::string::npos)
        << answer.body;
  }
  // 100 MB chunked: 413 once past the limit, and the connection closed.
  {
    auto client = RawTlsClient::Connect(port_);
    ASSERT_TRUE(client);
    client->Send(
        "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "100000\r\n" + std::string(1 << 20, ' ') + "\r\n";
    for (int i = 0; i < 100 && client->Send(chunk); ++i) {
    }
    EXPECT_EQ(Parse(client->ReadUntilClosed(10s)).status, 413);
  }

  // Wrong methods: 405 naming the one allowed.
  for (const char* method : {"GET", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    const Answer answer = Exchange(
        port_, std::string(method) + " /validate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(answer.status, 405) << method;
    EXPECT_NE(answer.head.find("Allow: POST"), std::string::npos) << method << answer.head;
  }
  // Not JSON by its type.
  {
    const Answer answer = Exchange(port_, Post(kGood, "text/plain"));
    EXPECT_EQ(answer.status, 415) << answer.body;
  }

  // Not UTF-8.
  ExpectBadRequest(Review("{\"uid\":\"u\xff\xfe\"}"), "ill-formed UTF-8");
  ExpectBadRequest("\xc3\x28", "not valid JSON");
  // Nested 100,000 deep.
  ExpectBadRequest(
      Review(R"({"uid":"u","x":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}"),
      "nests JSON deeper than 128 levels");
  ExpectBadRequest(std::string(100'000, '{'), "nests JSON deeper than 128 levels");

  // Numbers as strings and strings as numbers.
  ExpectBadRequest(Review(R"({"uid":123})"), "request.uid must be a string, got number");
  ExpectBadRequest(R"({"apiVersion":1,"kind":"AdmissionReview","request":{"uid":"u"}})",
                   "apiVersion must be a string");
  ExpectBadRequest(Review(R"({"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},)"
                          R"("resource":{"group":"","version":"v1","resource":"pods"},)"
                          R"("operation":"CREATE","dryRun":"true","object":{}})"),
                   "request.dryRun must be a boolean");

  // null everywhere.
  ExpectBadRequest("null", "request body must be a JSON object (an AdmissionReview), got null");
  ExpectBadRequest(R"({"apiVersion":null,"kind":null,"request":null})",
                   "apiVersion is missing or empty");
  ExpectBadRequest(Review("null"), "AdmissionReview has no request");
  ExpectBadRequest(Review(R"({"uid":null})"), "request.uid");
  ExpectBadRequest(
      Review(R"({"uid":"u","kind":null,"resource":null,"operation":null,"object":null})"),
      "request.kind is missing");

  // An object that is not the resource the request names: the client's fault, 400.
  ExpectBadRequest(Review(R"({"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},)"
                          R"("resource":{"group":"","version":"v1","resource":"pods"},)"
                          R"("namespace":"ml","operation":"CREATE","object":"a pod"})"),
                   "cannot read the pod: request.object is missing or not an object");
  ExpectBadRequest(Review(R"({"uid":"u","kind":{"group":"","version":"v1","kind":"Binding"},)"
                          R"("resource":{"group":"","version":"v1","resource":"pods"},)"
                          R"("subResource":"binding","name":"p","namespace":"ml",)"
                          R"("operation":"CREATE","object":"a binding"})"),
                   "the pods/binding request carries no Binding object");

  // Duplicate keys: the last one counts, as in the API server's own decoder; the answer echoes
  // the last uid.
  {
    const Answer answer = Exchange(
        port_, Post(Review(R"({"uid":"first","uid":"last","kind":{"group":"","version":"v1",)"
                           R"("kind":"Pod"},"resource":{"group":"","version":"v1","resource":)"
                           R"("pods"},"operation":"DELETE"})")));
    EXPECT_EQ(answer.status, 200) << answer.body;
    EXPECT_EQ(answer.json_body["response"]["uid"], "last") << answer.body;
  }

  slowloris.join();
  truncated.join();
  // The idle connections are all still open and usable.
  ASSERT_TRUE(idle.back()->Send(Post(kGood)));
  EXPECT_EQ(Parse(idle.back()->ReadUntilClosed(5s)).status, 200);
  idle.clear();

  good_->Stop();
  const double p50 = good_->Percentile(50) / 1000, p99 = good_->Percentile(99) / 1000,
               max = good_->Percentile(100) / 1000;
  std::printf("good requests meanwhile: %zu, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              good_->count(), p50, p99, max);
  EXPECT_EQ(good_->failures(), 0);
  EXPECT_GT(good_->count(), 100u);  // one every 5 ms through the 2 s the slow peers take at least
  // About 1 ms at p99 on an otherwise idle 2-core machine. Printed, not asserted: a wall-clock
  // bound flakes under sanitizers and other tests; bench/ holds the latency targets.
}

// Hostile clients on both ports at once, each kind in numbers, while the good client goes on:
// the server's memory stays bounded (peak RSS printed; the target is under 128 MB), the probes
// keep answering, every refusal comes as soon as it can, and no request makes a huge log line.
TEST_F(BadInputTest, HostileClientsOnBothPortsCannotExhaustItOrStarveItsProbes) {
  // Every kind at once. A refused connection lingers (reading what its client may still send)
  // before it closes (http_server.h), and stalled ones are cut only at the read timeouts: side by
  // side, those waits overlap.
  //
  // The ops port: bodies announced by the hundred MB, on methods it does not take and on GET,
  // are refused at once, before a byte of them is sent.
  const auto exchange_on_ops = [this](const std::string& request) {
    return std::async(std::launch::async, [this, request] {
      auto client = PlainClient::Connect(ops_port_);
      if (!client) return std::string("no connection");
      client->Send(request);
      return client->ReadUntilClosed();
    });
  };
  std::vector<std::pair<std::string, std::future<std::string>>> refused;
  for (const std::string method : {"POST", "PUT", "GET"}) {
    refused.emplace_back(method, exchange_on_ops(method + " /metrics HTTP/1.1\r\nHost: x\r\n"
                                                          "Content-Length: 300000000\r\n\r\n"));
  }
  // Headers past 8 KiB, in size or in number: 431.
  std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 1000; ++i) many += "X-" + std::to_string(i) + ": y\r\n";  // ~10 KB
  std::future<std::string> too_many = exchange_on_ops(many + "\r\n");

  // The webhook port: 100 clients at once, each sending all but the last KiB of a 3 MB body and
  // then stalling. Bodies held at once are capped (--max-buffered-bytes, 64 MiB): past it they
  // are answered 503 at once instead of held.
  std::atomic<int> shed{0}, cut{0};
  std::vector<std::thread> senders;
  for (int i = 0; i < 100; ++i) {
    senders.emplace_back([&] {
      auto client = RawTlsClient::Connect(port_);
      if (!client) return;
      const int length = 3'000'000;
      client->Send(
          "POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Content-Length: " +
          std::to_string(length) + "\r\n\r\n");
      client->Send(std::string(length - 1024, ' '));
      const Answer answer = Parse(client->ReadUntilClosed(10s));
      (answer.status == 503 ? shed : cut)++;
    });
  }

  // Fifty clients that start a probe request and never finish it: nobody else waits for them.
  std::vector<std::unique_ptr<PlainClient>> stalled;
  for (int i = 0; i < 50; ++i) {
    stalled.push_back(PlainClient::Connect(ops_port_));
    ASSERT_TRUE(stalled.back());
    stalled.back()->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n");
  }
  {
    auto probe = PlainClient::Connect(ops_port_);
    ASSERT_TRUE(probe);
    probe->Send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(probe->ReadUntilClosed().substr(0, 15), "HTTP/1.1 200 OK");
  }
  // Each stalled client is cut once its request has taken the ops port's 2 s.
  for (auto& client : stalled) EXPECT_EQ(client->ReadUntilClosed(), "");
  stalled.clear();
  for (auto& [method, answer] : refused) {
    const std::string got = answer.get();
    EXPECT_EQ(got.substr(0, 12), method == "GET" ? "HTTP/1.1 413" : "HTTP/1.1 405")
        << method << ": " << got;
  }
  EXPECT_EQ(too_many.get().substr(0, 12), "HTTP/1.1 431");
  for (auto& sender : senders) sender.join();
  std::printf("stalling 3 MB bodies: %d held until cut, %d shed at once\n", cut.load(),
              shed.load());
  // How many are held at once is what the budget bounds; a slow server (a sanitizer build) cuts
  // some before the last ones arrive, so more than 64 MiB / 3 MB may be held one after another.
  // The peak RSS below is the check.
  EXPECT_GT(shed.load(), 0) << "the body budget never refused one";

  // A 1 MB uid and a 1 MB name: answered, and logged cut short.
  {
    const std::string huge(1 << 20, 'u');
    const Answer answer =
        Exchange(port_, Post(Review(R"({"uid":")" + huge +
                                    R"(","kind":{"group":"","version":"v1",)"
                                    R"("kind":"Pod"},"resource":{"group":"","version":"v1",)"
                                    R"("resource":"pods"},"operation":"DELETE","name":")" +
                                    huge + R"("})")));
    EXPECT_EQ(answer.status, 200) << answer.body.substr(0, 200);
  }

  const long peak_mb = process_->PeakRssKb() / 1024;
  std::printf("server peak RSS through all of it: %ld MB\n", peak_mb);
  EXPECT_GT(peak_mb, 0);
#ifndef CGPU_SANITIZED  // shadow memory would make the figure meaningless
  EXPECT_LT(peak_mb, 128) << "hostile clients took the server past its memory target";
#endif
  std::istringstream log(process_->Log());
  size_t longest = 0;
  for (std::string line; std::getline(log, line);) longest = std::max(longest, line.size());
  EXPECT_LT(longest, 8u * 1024) << "a request made a huge log line";

  good_->Stop();
  std::printf("good requests meanwhile: %zu, p50 %.2f ms, p99 %.2f ms\n", good_->count(),
              good_->Percentile(50) / 1000, good_->Percentile(99) / 1000);
  EXPECT_EQ(good_->failures(), 0);
}

}  // namespace
}  // namespace cgpu
