// The real `cgpu-guard` binary as a process: its commands, its start-up errors, certificate
// rotation through its file watcher, and SIGTERM: readiness off first, then a clean exit 0.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "cluster/cluster_objects.h"
#include "support/child_process.h"
#include "support/fake_api_server.h"
#include "support/fixtures.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using testing::Process;
using testing::Spawn;
using testing::WaitForPort;

using namespace std::chrono_literals;

// The README's demo cluster: see scripts/local/README.md for what it holds.
const std::string kDemoState = std::string(CGPU_SOURCE_DIR) + "/scripts/local/cluster-state.json";

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

// --client-ca: only a client presenting a certificate the given CA signed gets an answer.
TEST(BinaryTest, ClientCertificatesAreVerifiedWhenAClientCaIsGiven) {
  // A refused client may still be writing when the server closes on it (TLS 1.3 verifies the
  // client's certificate after the client thinks the handshake is done).
  std::signal(SIGPIPE, SIG_IGN);
  const std::string dir = testing::MakeTempDir();
  const testing::TestCa serving_ca = testing::MakeTestCa("serving CA");
  testing::WriteServingFiles(dir, serving_ca, "cgpu-guard");
  const testing::TestCa client_ca = testing::MakeTestCa("API server clients CA");
  testing::WriteFile(dir + "/client-ca.crt", client_ca.cert_pem);
  const auto apiserver = testing::MakeClientPair(client_ca, "kube-apiserver");
  testing::WriteFile(dir + "/apiserver.crt", apiserver.cert_pem);
  testing::WriteFile(dir + "/apiserver.key", apiserver.key_pem);
  // Signed by a CA the webhook was not told of: the serving CA itself.
  const auto stranger = testing::MakeClientPair(serving_ca, "kube-apiserver");
  testing::WriteFile(dir + "/stranger.crt", stranger.cert_pem);
  testing::WriteFile(dir + "/stranger.key", stranger.key_pem);

  auto process =
      Spawn({"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--tls-cert",
             dir + "/tls.crt", "--tls-key", dir + "/tls.key", "--client-ca", dir + "/client-ca.crt",
             "--cluster-state", kDemoState, "--shutdown-delay", "0s"},
            dir);
  const int port = WaitForPort(*process, "webhook", "https");
  ASSERT_NE(port, 0) << process->Log();
  const std::string review =
      testing::ReadFixture("upstream/admissionreview-v1-pod-create-minimal.json");
  auto post = [&](const std::string& cert, const std::string& key) {
    auto client = cert.empty() ? std::make_unique<httplib::SSLClient>("127.0.0.1", port)
                               : std::make_unique<httplib::SSLClient>(
                                     "127.0.0.1", port, dir + "/" + cert, dir + "/" + key);
    client->set_ca_cert_path((dir + "/ca.crt").c_str());
    client->enable_server_certificate_verification(true);
    client->set_connection_timeout(2s);
    client->set_read_timeout(2s);
    auto result = client->Post("/validate", review, "application/json");
    return result ? result->status : -1;
  };
  EXPECT_EQ(post("apiserver.crt", "apiserver.key"), 200);
  EXPECT_EQ(post("", ""), -1);                          // no certificate: no answer
  EXPECT_EQ(post("stranger.crt", "stranger.key"), -1);  // another CA's: no answer
  EXPECT_EQ(post("apiserver.crt", "apiserver.key"), 200);
  EXPECT_NE(process->Log().find(R"("clientCertificates":"required, CA )"), std::string::npos);
  ASSERT_EQ(kill(process->pid, SIGTERM), 0);
  EXPECT_EQ(process->Wait(10s), 0) << process->Log();

  std::string output;
  testing::WriteFile(dir + "/empty-ca.crt", "not a certificate\n");
  EXPECT_EQ(RunToEnd({"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                      "--tls-cert", dir + "/tls.crt", "--tls-key", dir + "/tls.key", "--client-ca",
                      dir + "/empty-ca.crt", "--cluster-state", kDemoState},
                     output),
            1);
  EXPECT_NE(output.find("client CA: no PEM certificate in it"), std::string::npos) << output;
  EXPECT_EQ(RunToEnd({"serve", "--tls-cert", dir + "/tls.crt", "--tls-key", dir + "/tls.key",
                      "--client-ca", dir + "/missing.crt", "--cluster-state", kDemoState},
                     output),
            1);
  EXPECT_NE(output.find("cannot read " + dir + "/missing.crt"), std::string::npos) << output;
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
  auto process =
      Spawn({"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--tls-cert",
             dir + "/tls.crt", "--tls-key", dir + "/tls.key", "--cluster-state", kDemoState},
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
    testing::WriteServingFiles(dir_, ca_, "first");
    process_ =
        Spawn({"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--tls-cert",
               dir_ + "/tls.crt", "--tls-key", dir_ + "/tls.key", "--tls-reload-interval", "100ms",
               "--shutdown-delay", "1s", "--idle-timeout", "1s", "--cluster-state", kDemoState},
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
  EXPECT_TRUE(testing::WaitForLog(*process_, R"("msg":"decision")")) << process_->Log();
  const std::string log = process_->Log();
  EXPECT_NE(log.find(R"("uid":"705ab4f5-6393-11e8-b7cc-42010a800002")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("verdict":"allowed")"), std::string::npos) << log;
}

TEST_F(ServingBinaryTest, PicksUpRotatedCertificateFiles) {
  EXPECT_EQ(testing::Handshake(webhook_port_).peer_common_name, "first");
  auto rotated = testing::MakeServingPair(ca_, "rotated");
  testing::WriteFile(dir_ + "/tls.crt", rotated.cert_pem);
  testing::WriteFile(dir_ + "/tls.key", rotated.key_pem);
  std::string served;
  EXPECT_TRUE(testing::WaitUntil([&] {
    served = testing::Handshake(webhook_port_).peer_common_name;
    return served == "rotated";
  })) << served
      << process_->Log();
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
  EXPECT_TRUE(testing::WaitUntil([&] {
    auto result = ops.Get("/readyz");
    return result && result->status == 503;
  }));
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

// ---- Enforcement end to end: AdmissionReview in over TLS, the answer kubectl would show out ----

class EnforcementTest : public ServingBinaryTest {
 protected:
  nlohmann::json Review(const std::string& review) {
    httplib::SSLClient client("127.0.0.1", webhook_port_);
    client.set_ca_cert_path((dir_ + "/ca.crt").c_str());
    client.enable_server_certificate_verification(true);
    auto result = client.Post("/validate", review, "application/json");
    EXPECT_TRUE(result) << httplib::to_string(result.error());
    if (!result) return nullptr;
    EXPECT_EQ(result->status, 200) << result->body;
    return nlohmann::json::parse(result->body)["response"];
  }
  static nlohmann::json Binding(const std::string& pod, const std::string& node) {
    nlohmann::json binding = testing::MakeBinding(pod, node);
    binding["metadata"]["namespace"] = "ml";
    binding["metadata"]["uid"] =
        "local-" + pod;  // the pod's uid in scripts/local/cluster-state.json
    return binding;
  }
  static std::string BindingReview(const std::string& pod, const std::string& node) {
    std::string review =
        testing::MakeReview("uid-" + pod, "pods", "binding", "CREATE", pod, Binding(pod, node));
    nlohmann::json json = nlohmann::json::parse(review);
    json["request"]["namespace"] = "ml";
    return json.dump();
  }
};

TEST_F(EnforcementTest, BindingA21stPodToAGpuIsDeniedWithTheReason) {
  nlohmann::json response = Review(BindingReview("llm-20", "gpu-a10-1"));
  EXPECT_EQ(response["uid"], "uid-llm-20");
  EXPECT_EQ(response["allowed"], false);
  EXPECT_EQ(response["status"]["code"], 403);
  const std::string message = response["status"]["message"];
  EXPECT_NE(message.find("cannot run cGPU pod ml/llm-20 on node gpu-a10-1: GPU 0 already runs 20 "
                         "cGPU pods"),
            std::string::npos)
      << message;
  EXPECT_EQ(Review(BindingReview("embed-3", "gpu-a10-1"))["allowed"], true);
  EXPECT_EQ(Review(BindingReview("llm-20", "cpu-1"))["allowed"], true);

  EXPECT_TRUE(testing::WaitForLog(*process_, R"("reason":"pods-per-gpu")")) << process_->Log();
  httplib::Client ops("127.0.0.1", metrics_port_);
  const std::string metrics = ops.Get("/metrics")->body;
  EXPECT_NE(metrics.find(
                R"(cgpu_guard_policy_decisions_total{outcome="denied",reason="pods-per-gpu"} 1)"),
            std::string::npos)
      << metrics;
}

TEST_F(EnforcementTest, BindingToAnIncompatibleNodeSaysWhatToUpgrade) {
  nlohmann::json response = Review(BindingReview("legacy-0", "gpu-old-cgpu"));
  EXPECT_EQ(response["allowed"], false);
  const std::string message = response["status"]["message"];
  EXPECT_NE(message.find("cGPU 1.5.2 does not support NVIDIA driver 535.104.05 (535 series needs "
                         "cGPU 1.5.3-1.5.20); upgrade cGPU"),
            std::string::npos)
      << message;
}

TEST_F(EnforcementTest, PodCreatedOntoAFullGpuIsDenied) {
  testing::PodSpec spec{
      .name = "direct", .node = "gpu-a10-1", .gpus = {0}, .phase = "", .namespace_name = "ml"};
  nlohmann::json review = nlohmann::json::parse(
      testing::MakeReview("uid-direct", "pods", "", "CREATE", "direct", testing::MakePod(spec)));
  review["request"]["namespace"] = "ml";
  nlohmann::json response = Review(review.dump());
  EXPECT_EQ(response["allowed"], false);
  EXPECT_NE(response["status"]["message"].get<std::string>().find("GPU 0 already runs 20"),
            std::string::npos);
}

TEST_F(EnforcementTest, PodMovedOntoAFullGpuIsDenied) {
  testing::PodSpec before{
      .name = "embed-0", .node = "gpu-a10-1", .gpus = {1}, .namespace_name = "ml"};
  testing::PodSpec after = before;
  after.gpus = {0};
  nlohmann::json review =
      nlohmann::json::parse(testing::MakeReview("uid-move", "pods", "", "UPDATE", "embed-0",
                                                testing::MakePod(after), testing::MakePod(before)));
  review["request"]["namespace"] = "ml";
  EXPECT_EQ(Review(review.dump())["allowed"], false);
}

TEST_F(EnforcementTest, EnablingCgpuOnAnIncompatibleNodeIsDenied) {
  const nlohmann::json before =
      testing::MakeNode({.name = "gpu-new", .schedule = "", .kernel = "5.19.0-1.al8.x86_64"});
  const nlohmann::json after =
      testing::MakeNode({.name = "gpu-new", .kernel = "5.19.0-1.al8.x86_64"});
  nlohmann::json response =
      Review(testing::MakeReview("uid-node", "nodes", "", "UPDATE", "gpu-new", after, before));
  EXPECT_EQ(response["allowed"], false);
  EXPECT_NE(response["status"]["message"].get<std::string>().find(
                "cannot enable cGPU isolation (ack.node.gpu.schedule=cgpu) on node gpu-new"),
            std::string::npos);
}

}  // namespace
}  // namespace cgpu
