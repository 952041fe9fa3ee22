// The commands the chart runs around the server's life, as processes: `unregister` (its
// pre-delete hook) against the tests' API server, `selftest` (helm test) against the real server,
// and rotation to a new CA with no failed call while the caBundle trusts both CAs.
#include "shell/lifecycle_commands.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "support/child_process.h"
#include "support/fake_api_server.h"
#include "support/kubeconfig_writer.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::FakeApiServer;
using testing::RequestKind;
using testing::Spawn;
using testing::WaitUntil;
using namespace std::chrono_literals;

const std::string kDemoCluster = std::string(CGPU_SOURCE_DIR) + "/scripts/local/cluster-state.json";
constexpr char kConfigs[] = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

class UnregisterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    testing::WriteFile(dir_ + "/api-ca.crt", api_.ca_pem());
    testing::WriteKubeconfig(dir_ + "/kubeconfig", api_.port(), "api-ca.crt", "token: hook-token");
    api_.RequireToken("hook-token");
    api_.Add("validatingwebhookconfigurations",
             json{{"apiVersion", "admissionregistration.k8s.io/v1"},
                  {"kind", "ValidatingWebhookConfiguration"},
                  {"metadata", {{"name", "cgpu-guard"}}},
                  {"webhooks", json::array()}});
  }

  int Unregister(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"unregister", "--webhook-config", "cgpu-guard", "--kubeconfig",
                                     dir_ + "/kubeconfig"};
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = Spawn(args, dir_);
    return process_->Wait(30s);
  }

  std::string dir_;
  FakeApiServer api_;
  std::unique_ptr<testing::Process> process_;
};

TEST_F(UnregisterTest, DeletesTheRegistrationAndAGoneOneIsDone) {
  ASSERT_EQ(Unregister(), 0) << process_->Log();
  EXPECT_FALSE(api_.Find("validatingwebhookconfigurations", "cgpu-guard").has_value());
  EXPECT_EQ(api_.CountRequests(RequestKind::kDelete, std::string(kConfigs) + "/cgpu-guard"), 1);
  EXPECT_NE(process_->Log().find("deleted ValidatingWebhookConfiguration cgpu-guard"),
            std::string::npos);
  // An interrupted uninstall runs the hook again: nothing left to do is success.
  ASSERT_EQ(Unregister(), 0) << process_->Log();
  EXPECT_NE(process_->Log().find("already gone"), std::string::npos) << process_->Log();
}

TEST_F(UnregisterTest, RetriesServerErrorsAndStopsAtARefusal) {
  api_.FailNext(2, 503, RequestKind::kDelete);
  ASSERT_EQ(Unregister(), 0) << process_->Log();
  EXPECT_EQ(api_.CountRequests(RequestKind::kDelete), 3);

  api_.Add("validatingwebhookconfigurations",
           json{{"metadata", {{"name", "cgpu-guard"}}}, {"webhooks", json::array()}});
  api_.FailNext(1, 403, RequestKind::kDelete);
  EXPECT_EQ(Unregister(), 3) << process_->Log();
  EXPECT_NE(process_->Log().find("kubectl delete validatingwebhookconfiguration cgpu-guard"),
            std::string::npos)
      << process_->Log();
  EXPECT_TRUE(api_.Find("validatingwebhookconfigurations", "cgpu-guard").has_value());
}

TEST_F(UnregisterTest, AnUnreachableApiServerFailsWithWhatToDoByHand) {
  api_.Stop();
  EXPECT_EQ(Unregister({"--timeout", "200ms"}), 1) << process_->Log();
  EXPECT_NE(process_->Log().find("Delete it by hand before the server goes"), std::string::npos)
      << process_->Log();
}

TEST(UnregisterUsageTest, NeedsTheConfigsName) {
  auto process = Spawn({"unregister", "--kubeconfig", "/nonexistent"}, testing::MakeTempDir());
  EXPECT_EQ(process->Wait(20s), 2);
  EXPECT_NE(process->Log().find("--webhook-config is required"), std::string::npos);
}

// The real server, started on the demo cluster with a certificate from `ca`.
class ServedTest : public ::testing::Test {
 protected:
  void Serve(const testing::TestCa& ca) {
    dir_ = testing::MakeTempDir();
    testing::WriteServingFiles(dir_, ca, "first");
    process_ = Spawn(testing::ServeArgs(
                         dir_, {"--cluster-state", kDemoCluster, "--tls-reload-interval", "100ms"}),
                     dir_);
    webhook_port_ = testing::WaitForPort(*process_, "webhook", "https");
    metrics_port_ = testing::WaitForPort(*process_, "metrics", "http");
    ASSERT_NE(webhook_port_, 0) << process_->Log();
  }

  int Selftest(const std::string& ca_file, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "selftest",
        "--webhook-url",
        "https://localhost:" + std::to_string(webhook_port_) + "/validate",
        "--ca-file",
        ca_file,
        "--ready-url",
        "http://127.0.0.1:" + std::to_string(metrics_port_) + "/readyz"};
    args.insert(args.end(), extra.begin(), extra.end());
    selftest_ = Spawn(args, dir_);
    return selftest_->Wait(60s);
  }

  std::string dir_;
  std::unique_ptr<testing::Process> process_, selftest_;
  int webhook_port_ = 0;
  int metrics_port_ = 0;
};

TEST_F(ServedTest, SelftestPassesAgainstTheServerWithItsCa) {
  const testing::TestCa ca = testing::MakeTestCa();
  Serve(ca);
  ASSERT_EQ(Selftest(dir_ + "/ca.crt"), 0) << selftest_->Log() << process_->Log();
  EXPECT_NE(selftest_->Log().find("passed"), std::string::npos);
  // The review it sent was judged and allowed as a pod that asks for no GPU (the log is written
  // by a thread of its own, a moment later).
  EXPECT_TRUE(WaitUntil([&] {
    return process_->Log().find("\"name\":\"cgpu-guard-selftest\",\"verdict\":\"allowed\"") !=
           std::string::npos;
  })) << process_->Log();
}

TEST_F(ServedTest, SelftestFailsOnAnotherCaAndSaysSo) {
  Serve(testing::MakeTestCa());
  testing::WriteFile(dir_ + "/other-ca.crt", testing::MakeTestCa("another CA").cert_pem);
  EXPECT_EQ(Selftest(dir_ + "/other-ca.crt", {"--timeout", "1s"}), 1) << selftest_->Log();
  EXPECT_NE(selftest_->Log().find("not signed by the CA in"), std::string::npos)
      << selftest_->Log();
}

TEST(SelftestReviewTest, IsADryRunPodCreateThatAsksForNoGpu) {
  const json review = json::parse(SelftestReview("u-1", "cgpu-guard"));
  EXPECT_EQ(review["request"]["uid"], "u-1");
  EXPECT_EQ(review["request"]["dryRun"], true);
  EXPECT_EQ(review["request"]["operation"], "CREATE");
  EXPECT_FALSE(review["request"]["object"]["spec"]["containers"][0].contains("resources"));
}

// One verified POST on a fresh connection (so a fresh handshake): "" or what failed.
std::string VerifiedPost(int port, const std::string& ca_file) {
  httplib::SSLClient client("localhost", port);
  client.set_ca_cert_path(ca_file.c_str());
  client.enable_server_certificate_verification(true);
  auto answer = client.Post("/validate", SelftestReview("rotation", "default"), "application/json");
  if (!answer) return httplib::to_string(answer.error());
  if (answer->status != 200) return "HTTP " + std::to_string(answer->status);
  return "";
}

// Rotation without a window (README "Rotating the serving certificate"): the caBundle trusts the
// old and the new CA while the server moves from a certificate of the old to one of the new;
// every call in between succeeds. A client that trusts only the old CA shows the move happened.
TEST_F(ServedTest, ACaBundleWithBothCasKeepsEveryCallWorkingThroughARotation) {
  const testing::TestCa old_ca = testing::MakeTestCa("old CA");
  const testing::TestCa new_ca = testing::MakeTestCa("new CA");
  Serve(old_ca);
  testing::WriteFile(dir_ + "/old-ca.crt", old_ca.cert_pem);
  testing::WriteFile(dir_ + "/bundle.crt", new_ca.cert_pem + old_ca.cert_pem);
  ASSERT_EQ(VerifiedPost(webhook_port_, dir_ + "/bundle.crt"), "");
  ASSERT_EQ(VerifiedPost(webhook_port_, dir_ + "/old-ca.crt"), "");  // the old certificate served

  const testing::ServingPair next = testing::MakeServingPair(new_ca, "rotated");
  testing::WriteFile(dir_ + "/tls.crt", next.cert_pem);
  testing::WriteFile(dir_ + "/tls.key", next.key_pem);
  int calls = 0;
  std::vector<std::string> failures;
  // Until the server serves the new certificate (the old-CA-only client is refused), and some
  // calls after: every one through the bundle must succeed.
  int after_switch = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        ++calls;
        if (std::string failed = VerifiedPost(webhook_port_, dir_ + "/bundle.crt");
            !failed.empty()) {
          failures.push_back(failed);
        }
        if (after_switch > 0 || !VerifiedPost(webhook_port_, dir_ + "/old-ca.crt").empty()) {
          ++after_switch;
        }
        return after_switch >= 20;
      },
      30s))
      << process_->Log();
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << calls
                                << " failed, first: " << (failures.empty() ? "" : failures.front());
}

}  // namespace
}  // namespace cgpu
