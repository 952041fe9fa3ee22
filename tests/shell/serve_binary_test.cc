// The real `cgpu-guard` binary as a process: its commands, its start-up errors, certificate
// rotation through its file watcher, and SIGTERM: readiness off first, then a clean exit 0.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/fixtures.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using namespace std::chrono_literals;

struct Process {
  pid_t pid = -1;
  std::string log_path;

  std::string Log() const {
    std::ifstream in(log_path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // Exit status, or -1 if still running after `timeout`.
  int Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
  ~Process() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// Starts the binary with stdout and stderr going to a log file.
std::unique_ptr<Process> Spawn(const std::vector<std::string>& args, const std::string& dir) {
  auto process = std::make_unique<Process>();
  process->log_path = dir + "/out.log";
  process->pid = fork();
  if (process->pid == 0) {
    int fd = open(process->log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(CGPU_GUARD_BINARY)};
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(CGPU_GUARD_BINARY, argv.data());
    _exit(127);
  }
  return process;
}

// The port named in the "serving" log line's `field` ("webhook" or "metrics"), or 0 after 5 s.
int WaitForPort(const Process& process, const std::string& field, const std::string& scheme) {
  const std::regex pattern("\"" + field + "\":\"" + scheme + R"(://127\.0\.0\.1:(\d+)/)");
  for (int i = 0; i < 500; ++i) {
    std::smatch match;
    const std::string log = process.Log();
    if (std::regex_search(log, match, pattern)) return std::stoi(match[1]);
    std::this_thread::sleep_for(10ms);
  }
  return 0;
}

int RunToEnd(const std::vector<std::string>& args, std::string& output) {
  const std::string dir = testing::MakeTempDir();
  auto process = Spawn(args, dir);
  int status = process->Wait(20s);
  output = process->Log();
  return status;
}

TEST(BinaryTest, VersionAndHelp) {
  std::string output;
  EXPECT_EQ(RunToEnd({"version"}, output), 0);
  EXPECT_EQ(output.rfind("cgpu-guard 0.", 0), 0u) << output;
  EXPECT_EQ(RunToEnd({"serve", "--help"}, output), 0);
  EXPECT_NE(output.find("--tls-cert FILE"), std::string::npos) << output;
  EXPECT_EQ(RunToEnd({}, output), 2);
  EXPECT_EQ(RunToEnd({"frobnicate"}, output), 2);
  EXPECT_NE(output.find("unknown command \"frobnicate\""), std::string::npos);
}

TEST(BinaryTest, StartupErrorsAreClear) {
  std::string output;
  EXPECT_EQ(RunToEnd({"serve", "--tls-cert", "/nonexistent/tls.crt", "--tls-key", "/x"}, output),
            1);
  EXPECT_NE(output.find("cannot read /nonexistent/tls.crt"), std::string::npos) << output;
  EXPECT_EQ(RunToEnd({"serve", "--listen", "nowhere"}, output), 2);
  EXPECT_NE(output.find("--listen: expected HOST:PORT"), std::string::npos) << output;
}

// The README's run command makes its certificate with scripts/dev-certs.sh: it must verify for
// both names a local client uses, and a second run must keep the first pair.
TEST(BinaryTest, DevCertsScriptMakesAVerifiableServingCertificate) {
  const std::string dir = testing::MakeTempDir();
  const std::string script = std::string(CGPU_SOURCE_DIR) + "/scripts/dev-certs.sh";
  ASSERT_EQ(std::system((script + " " + dir + " 2>/dev/null").c_str()), 0);
  std::ifstream first_file(dir + "/tls.crt");
  std::stringstream first;
  first << first_file.rdbuf();
  auto process = Spawn({"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                        "--tls-cert", dir + "/tls.crt", "--tls-key", dir + "/tls.key"},
                       dir);
  const int port = WaitForPort(*process, "webhook", "https");
  ASSERT_NE(port, 0) << process->Log();
  for (const char* host : {"localhost", "127.0.0.1"}) {
    httplib::SSLClient client(host, port);
    client.set_ca_cert_path((dir + "/ca.crt").c_str());
    client.enable_server_certificate_verification(true);
    auto result = client.Post("/validate", "{}", "application/json");
    ASSERT_TRUE(result) << host << ": " << httplib::to_string(result.error());
    EXPECT_EQ(result->status, 400);  // verified TLS; the body is what is wrong
  }
  ASSERT_EQ(std::system((script + " " + dir + " 2>/dev/null").c_str()), 0);
  std::ifstream second_file(dir + "/tls.crt");
  std::stringstream second;
  second << second_file.rdbuf();
  EXPECT_EQ(first.str(), second.str());
}

class ServingBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    ca_ = testing::MakeTestCa();
    testing::WriteFile(dir_ + "/ca.crt", ca_.cert_pem);
    auto pair = testing::MakeServingPair(ca_, "first");
    testing::WriteFile(dir_ + "/tls.crt", pair.cert_pem);
    testing::WriteFile(dir_ + "/tls.key", pair.key_pem);
    process_ =
        Spawn({"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--tls-cert",
               dir_ + "/tls.crt", "--tls-key", dir_ + "/tls.key", "--tls-reload-interval", "100ms",
               "--shutdown-delay", "1s", "--idle-timeout", "1s"},
              dir_);
    // The "serving" log line names the ports the kernel chose.
    webhook_port_ = WaitForPort(*process_, "webhook", "https");
    metrics_port_ = WaitForPort(*process_, "metrics", "http");
    ASSERT_NE(webhook_port_, 0) << process_->Log();
  }

  std::string dir_;
  testing::TestCa ca_;
  std::unique_ptr<Process> process_;
  int webhook_port_ = 0;
  int metrics_port_ = 0;
};

TEST_F(ServingBinaryTest, AnswersReviewsAndLogsEachDecision) {
  httplib::SSLClient client("127.0.0.1", webhook_port_);
  client.set_ca_cert_path((dir_ + "/ca.crt").c_str());
  client.enable_server_certificate_verification(true);
  auto result = client.Post(
      "/validate", testing::ReadFixture("upstream/admissionreview-v1-pod-create-minimal.json"),
      "application/json");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  std::this_thread::sleep_for(50ms);
  const std::string log = process_->Log();
  EXPECT_NE(log.find(R"("msg":"decision")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("uid":"705ab4f5-6393-11e8-b7cc-42010a800002")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("verdict":"allowed")"), std::string::npos) << log;
}

TEST_F(ServingBinaryTest, PicksUpRotatedCertificateFiles) {
  EXPECT_EQ(testing::Handshake(webhook_port_).peer_common_name, "first");
  auto rotated = testing::MakeServingPair(ca_, "rotated");
  testing::WriteFile(dir_ + "/tls.crt", rotated.cert_pem);
  testing::WriteFile(dir_ + "/tls.key", rotated.key_pem);
  std::string served;
  for (int i = 0; i < 100 && served != "rotated"; ++i) {
    std::this_thread::sleep_for(50ms);
    served = testing::Handshake(webhook_port_).peer_common_name;
  }
  EXPECT_EQ(served, "rotated") << process_->Log();
  httplib::Client ops("127.0.0.1", metrics_port_);
  auto metrics = ops.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("cgpu_guard_tls_certificate_reloads_total{result=\"success\"} 1"),
            std::string::npos);
}

TEST_F(ServingBinaryTest, SigtermTurnsReadinessOffThenExitsCleanly) {
  httplib::Client ops("127.0.0.1", metrics_port_);
  ASSERT_EQ(ops.Get("/readyz")->status, 200);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(process_->pid, SIGTERM), 0);
  int readyz = 0;
  for (int i = 0; i < 50 && readyz != 503; ++i) {
    auto result = ops.Get("/readyz");
    readyz = result ? result->status : -1;
    if (readyz != 503) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(readyz, 503);
  // During the shutdown delay reviews are still answered.
  httplib::SSLClient client("127.0.0.1", webhook_port_);
  client.enable_server_certificate_verification(false);
  auto during = client.Post(
      "/validate", testing::ReadFixture("upstream/admissionreview-v1-pod-create-minimal.json"),
      "application/json");
  ASSERT_TRUE(during);
  EXPECT_EQ(during->status, 200);
  EXPECT_EQ(during->get_header_value("Connection"), "close");

  EXPECT_EQ(process_->Wait(15s), 0) << process_->Log();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1s);  // the shutdown delay was honoured
  EXPECT_NE(process_->Log().find(R"("msg":"stopped")"), std::string::npos);
}

}  // namespace
}  // namespace cgpu
