// The binary under real load (wrk over TLS, as bench/run drives it): a SIGTERM in the middle of
// the run, and certificate files replaced again and again, must not cost a single request that
// reached the server.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "support/child_process.h"
#include "support/fake_api_server.h"
#include "support/raw_tls_client.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kLocal = std::string(CGPU_SOURCE_DIR) + "/scripts/local";

// wrk posting one review; its summary as one JSON line: completed requests, and every kind of
// failure wrk tells apart. A connect error is a connection the server never accepted.
constexpr char kWrkScript[] = R"(
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local non_200 = 0
function response(status, headers, body)
  if status ~= 200 then non_200 = non_200 + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,"non200":%d}\n',
    summary.requests, e.connect, e.read, e.write, e.timeout, e.status, non_200))
end
)";

// Runs wrk on its own thread until Stop() (or `cap`, a bound the test should never reach);
// Result() waits for it and returns its summary line.
class Wrk {
 public:
  Wrk(const std::string& dir, int port, int connections, const std::string& cap = "60s")
      : pid_file_(dir + "/wrk.pid") {
    testing::WriteFile(dir + "/wrk.lua", kWrkScript);
    // The shell writes its pid, then becomes wrk: Stop() interrupts it as Ctrl-C would, and wrk
    // then reports as at the end of its run.
    const std::string command = "echo $$ > " + pid_file_ + "; BODY_FILE=" + kLocal +
                                "/binding-embed-3.json exec wrk --timeout 5s -t2 -c" +
                                std::to_string(connections) + " -d" + cap + " -s " + dir +
                                "/wrk.lua https://127.0.0.1:" + std::to_string(port) +
                                "/validate 2>&1";
    thread_ = std::thread([this, command] {
      FILE* pipe = popen(command.c_str(), "r");
      if (pipe == nullptr) return;
      char buffer[4096];
      while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output_ += buffer;
      pclose(pipe);
    });
  }
  ~Wrk() {
    Stop();
    if (thread_.joinable()) thread_.join();
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    std::string pid;
    testing::WaitUntil([&] {
      std::ifstream in(pid_file_);
      return static_cast<bool>(std::getline(in, pid)) && !pid.empty();
    });
    if (!pid.empty()) kill(std::stoi(pid), SIGINT);
  }

  json Result() {
    Stop();
    thread_.join();
    const size_t at = output_.rfind("{\"requests\"");
    if (at == std::string::npos) return json{{"output", output_}};
    return json::parse(output_.substr(at, output_.find('\n', at) - at));
  }
  const std::string& output() const { return output_; }

 private:
  std::string pid_file_;
  bool stopped_ = false;
  std::string output_;
  std::thread thread_;
};

int CountOf(const std::string& log, const std::string& needle) {
  int count = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

class UnderLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(std::system("command -v wrk >/dev/null"), 0)
        << "wrk is needed (scripts/install-deps.sh installs it)";
    dir_ = testing::MakeTempDir();
    ca_ = testing::MakeTestCa();
    testing::WriteServingFiles(dir_, ca_, "first");
  }

  void Serve(const std::vector<std::string>& extra) {
    std::vector<std::string> args =
        testing::ServeArgs(dir_, {"--cluster-state", kLocal + "/cluster-state.json"});
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = testing::Spawn(args, dir_);
    webhook_port_ = testing::WaitForPort(*process_, "webhook", "https");
    metrics_port_ = testing::WaitForPort(*process_, "metrics", "http");
    ASSERT_NE(webhook_port_, 0) << process_->Log();
  }

  int Readyz() {
    httplib::Client ops("127.0.0.1", metrics_port_);
    ops.set_connection_timeout(1s);
    auto result = ops.Get("/readyz");
    return result ? result->status : -1;
  }

  // cgpu_guard_tls_certificate_reloads_total{result=`result`}; 0 before the first.
  double Reloads(const std::string& result) {
    httplib::Client ops("127.0.0.1", metrics_port_);
    auto metrics = ops.Get("/metrics");
    if (!metrics) return -1;
    const std::string sample =
        "\ncgpu_guard_tls_certificate_reloads_total{result=\"" + result + "\"} ";
    const size_t at = metrics->body.find(sample);
    return at == std::string::npos ? 0 : std::stod(metrics->body.substr(at + sample.size()));
  }

  std::string dir_;
  testing::TestCa ca_;
  std::unique_ptr<testing::Process> process_;
  int webhook_port_ = 0;
  int metrics_port_ = 0;
};

// SIGTERM once 500 requests of a run of 16 connections were decided: /readyz fails at once while
// answers go on (each with "Connection: close") for --shutdown-delay; then the listener closes,
// an idle keep-alive connection is closed, and the process exits 0. Every request the server
// decided on reached wrk (the server logs one line per decision), and wrk saw no failure other
// than connections refused once the listener was gone.
TEST_F(UnderLoadTest, SigtermDuringLoadLosesNoAcceptedRequest) {
  Serve({"--shutdown-delay", "1500ms", "--idle-timeout", "30s"});
  ASSERT_FALSE(HasFatalFailure());
  // A keep-alive connection that has served a request and then sits idle, as the API server's do.
  auto idle = testing::RawTlsClient::Connect(webhook_port_);
  ASSERT_TRUE(idle);
  ASSERT_TRUE(idle->Send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"));

  Wrk wrk(dir_, webhook_port_, 16);
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return CountOf(process_->Log(), R"("msg":"decision")") > 500; }, 30s))
      << wrk.output();
  ASSERT_EQ(Readyz(), 200);
  ASSERT_EQ(kill(process_->pid, SIGTERM), 0);
  EXPECT_TRUE(testing::WaitUntil([&] { return Readyz() == 503; })) << "readiness fails first";
  const int decided_at_signal = CountOf(process_->Log(), R"("msg":"decision")");

  // The idle connection is closed when the listener closes (after the delay, while answers went
  // on), not at its 30 s idle timeout (the process could not exit before that). It first gets
  // the 404 for its request.
  const std::string idle_bytes = idle->ReadUntilClosed(20s);
  const int decided_at_idle_close = CountOf(process_->Log(), R"("msg":"decision")");
  EXPECT_EQ(idle_bytes.substr(0, 12), "HTTP/1.1 404") << idle_bytes;
  EXPECT_GT(decided_at_idle_close, decided_at_signal) << "closed at once, not after the delay";

  EXPECT_EQ(process_->Wait(20s), 0) << process_->Log().substr(0, 2000);
  // wrk keeps trying against the closed port until stopped; a refused connect is instant.
  const json result = wrk.Result();
  ASSERT_TRUE(result.contains("requests")) << wrk.output();
  const std::string log = process_->Log();
  const int decided = CountOf(log, R"("msg":"decision")") - 1;  // less the idle client's 404
  EXPECT_GT(decided, 500) << result.dump();
  // How many depends on the machine's speed; that some did, on nothing.
  EXPECT_GT(decided - decided_at_signal, 0) << "answers went on during --shutdown-delay";
  EXPECT_EQ(result["requests"], decided) << result.dump();
  EXPECT_EQ(result["read"], 0) << result.dump();
  EXPECT_EQ(result["write"], 0) << result.dump();
  EXPECT_EQ(result["timeout"], 0) << result.dump();
  EXPECT_EQ(result["status"], 0) << result.dump();
  EXPECT_EQ(result["non200"], 0) << result.dump();
  EXPECT_GT(result["connect"], 0) << "wrk kept trying after the listener closed";
  EXPECT_NE(log.find(R"("msg":"stopped")"), std::string::npos);
}

// The serving certificate is replaced 10 times during a run whose connections are recycled
// every 20 requests (so handshakes keep happening), each time by rewriting the two files in
// place, as a careless tool would: for a moment the pair on disk does not match, and the server
// looks at it then. New handshakes move to the new certificate; no request fails.
TEST_F(UnderLoadTest, CertificateRotationDuringLoadFailsNoRequest) {
  Serve({"--tls-reload-interval", "100ms", "--keep-alive-max-requests", "20", "--shutdown-delay",
         "0s"});
  ASSERT_FALSE(HasFatalFailure());
  Wrk wrk(dir_, webhook_port_, 16);
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return CountOf(process_->Log(), R"("msg":"decision")") > 200; }, 30s))
      << wrk.output();
  std::string last;
  for (int i = 1; i <= 10; ++i) {
    last = "rotated-" + std::to_string(i);
    const testing::ServingPair pair = testing::MakeServingPair(ca_, last);
    const double failures = Reloads("failure"), successes = Reloads("success");
    testing::WriteFile(dir_ + "/tls.crt", pair.cert_pem);
    ASSERT_TRUE(testing::WaitUntil([&] { return Reloads("failure") > failures; }))
        << "the server looks between the two writes";
    testing::WriteFile(dir_ + "/tls.key", pair.key_pem);
    ASSERT_TRUE(testing::WaitUntil([&] { return Reloads("success") > successes; }));
    // Load on the new certificate before the next rotation: 100 more answers, five recycled
    // connections' worth, however fast the machine is.
    const int decided = CountOf(process_->Log(), R"("msg":"decision")");
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return CountOf(process_->Log(), R"("msg":"decision")") >= decided + 100; }, 60s))
        << wrk.output();
  }
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return testing::Handshake(webhook_port_).peer_common_name == last; }));
  const json result = wrk.Result();
  ASSERT_TRUE(result.contains("requests")) << wrk.output();
  // 200 before the rotations and 100 after each, less the few wrk had in flight when stopped.
  EXPECT_GT(result["requests"], 1000) << result.dump();
  for (const char* failure : {"connect", "read", "write", "timeout", "status", "non200"}) {
    EXPECT_EQ(result[failure], 0) << failure << ": " << result.dump();
  }
  httplib::Client ops("127.0.0.1", metrics_port_);
  auto metrics = ops.Get("/metrics");
  ASSERT_TRUE(metrics);
  const std::regex reloads(R"(cgpu_guard_tls_certificate_reloads_total\{result="success"\} (\d+))");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(metrics->body, match, reloads)) << metrics->body;
  EXPECT_GE(std::stoi(match[1]), 10);
  // Between the two writes the pair on disk did not match: seen, reported, the old one kept.
  EXPECT_NE(metrics->body.find(R"(cgpu_guard_tls_certificate_reloads_total{result="failure"})"),
            std::string::npos);
  ASSERT_EQ(kill(process_->pid, SIGTERM), 0);
  EXPECT_EQ(process_->Wait(20s), 0);
}

}  // namespace
}  // namespace cgpu
