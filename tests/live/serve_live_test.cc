// The real binary, as deployed: `cgpu-guard serve --kubeconfig` against the tests' local API
// server. Not ready until pods and nodes are listed; then bindings are judged on watched state.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include "cluster/cluster_objects.h"
#include "support/child_process.h"
#include "support/fake_api_server.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::MakeNode;
using testing::MakePod;
using testing::WaitUntil;

class ServeLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    ca_ = testing::MakeTestCa();
    testing::WriteServingFiles(dir_, ca_, "cgpu-guard");
    testing::WriteFile(dir_ + "/api-ca.crt", api_.ca_pem());
    testing::WriteFile(dir_ + "/token", "s3cret");
    api_.RequireToken("s3cret");
    testing::WriteFile(dir_ + "/kubeconfig", R"(apiVersion: v1
kind: Config
current-context: test
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:)" + std::to_string(api_.port()) +
                                                 R"(
    certificate-authority: api-ca.crt
users:
- name: guard
  user:
    tokenFile: )" + dir_ + R"(/token
contexts:
- name: test
  context: {cluster: local, user: guard}
)");
  }

  void Serve() {
    process_ = testing::Spawn(
        {"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--tls-cert",
         dir_ + "/tls.crt", "--tls-key", dir_ + "/tls.key", "--kubeconfig", dir_ + "/kubeconfig",
         "--shutdown-delay", "0s", "--idle-timeout", "1s"},
        dir_);
    webhook_port_ = testing::WaitForPort(*process_, "webhook", "https");
    metrics_port_ = testing::WaitForPort(*process_, "metrics", "http");
    ASSERT_NE(webhook_port_, 0) << process_->Log();
  }

  int Readyz() {
    httplib::Client ops("127.0.0.1", metrics_port_);
    auto result = ops.Get("/readyz");
    return result ? result->status : -1;
  }

  json Bind(const std::string& pod, const std::string& node) {
    httplib::SSLClient client("127.0.0.1", webhook_port_);
    client.set_ca_cert_path((dir_ + "/ca.crt").c_str());
    client.enable_server_certificate_verification(true);
    auto result = client.Post("/validate",
                              testing::MakeReview("uid-" + pod, "pods", "binding", "CREATE", pod,
                                                  testing::MakeBinding(pod, node)),
                              "application/json");
    EXPECT_TRUE(result);
    if (!result) return nullptr;
    if (result->status != 200) return json{{"httpStatus", result->status}};
    return json::parse(result->body)["response"];
  }

  testing::FakeApiServer api_;
  std::string dir_;
  testing::TestCa ca_;
  std::unique_ptr<testing::Process> process_;
  int webhook_port_ = 0;
  int metrics_port_ = 0;
};

TEST_F(ServeLiveTest, NotReadyUntilListedThenEnforcesOnWatchedState) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  for (int i = 0; i < 19; ++i) {
    api_.Add("pods", MakePod({.name = "p" + std::to_string(i), .node = "gpu-1", .gpus = {4}}));
  }
  api_.Add("pods", MakePod({.name = "a", .gpus = {4}, .phase = "Pending"}));
  api_.Add("pods", MakePod({.name = "b", .gpus = {4}, .phase = "Pending"}));
  api_.FailNext(4, 503, testing::RequestKind::kList);  // the API server is slow to come up
  Serve();
  EXPECT_TRUE(WaitUntil([&] { return Readyz() == 200; })) << process_->Log();

  json first = Bind("a", "gpu-1");
  EXPECT_EQ(first["allowed"], true) << first.dump();
  // "a" is reserved until the watch shows it bound; "b" would be the 21st.
  json second = Bind("b", "gpu-1");
  EXPECT_EQ(second["allowed"], false) << second.dump();
  EXPECT_NE(second["status"]["message"].get<std::string>().find("GPU 4 already runs 20"),
            std::string::npos);

  // The scheduler's binding lands; then a pod goes away: "b" fits.
  api_.Update("pods", MakePod({.name = "a", .node = "gpu-1", .gpus = {4}}));
  api_.Delete("pods", "p0", "default");
  EXPECT_TRUE(WaitUntil([&] { return Bind("b", "gpu-1")["allowed"] == true; })) << process_->Log();
  EXPECT_GE(api_.CountRequests(testing::RequestKind::kWatch, "/api/v1/pods"), 1);

  ASSERT_EQ(kill(process_->pid, SIGTERM), 0);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(15)), 0) << process_->Log();
}

TEST_F(ServeLiveTest, UnreachableApiServerKeepsItNotReadyAndSaysWhy) {
  api_.Stop();
  Serve();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Readyz(), 503);
  httplib::Client ops("127.0.0.1", metrics_port_);
  auto result = ops.Get("/readyz");
  ASSERT_TRUE(result);
  EXPECT_NE(result->body.find("cluster state not synced"), std::string::npos) << result->body;
  // Bindings onto nodes it does not know cannot be counted: an error the failurePolicy decides.
  EXPECT_EQ(Bind("x", "gpu-1")["httpStatus"], 503);
}

}  // namespace
}  // namespace cgpu
