// LiveServeTest: `cgpu-guard serve --kubeconfig` as deployed, against the tests' local API server
// (tests/support/fake_api_server.h), with helpers to reach its webhook and ops ports.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/cluster_objects.h"
#include "support/child_process.h"
#include "support/fake_api_server.h"
#include "support/kubeconfig_writer.h"
#include "support/test_certificates.h"

namespace cgpu {

class LiveServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    ca_ = testing::MakeTestCa();
    testing::WriteServingFiles(dir_, ca_, "cgpu-guard");
    testing::WriteFile(dir_ + "/api-ca.crt", api_.ca_pem());
    testing::WriteFile(dir_ + "/token", "s3cret");
    api_.RequireToken("s3cret");
    testing::WriteKubeconfig(dir_ + "/kubeconfig", api_.port(), "api-ca.crt",
                             "tokenFile: " + dir_ + "/token");
  }

  void Serve(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = testing::ServeArgs(
        dir_,
        {"--kubeconfig", dir_ + "/kubeconfig", "--shutdown-delay", "0s", "--idle-timeout", "1s"});
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = testing::Spawn(args, dir_);
    webhook_port_ = testing::WaitForPort(*process_, "webhook", "https");
    metrics_port_ = testing::WaitForPort(*process_, "metrics", "http");
    ASSERT_NE(webhook_port_, 0) << process_->Log();
  }

  int Readyz() {
    httplib::Client ops("127.0.0.1", metrics_port_);
    auto result = ops.Get("/readyz");
    return result ? result->status : -1;
  }

  std::string OpsBody(const std::string& path) {
    httplib::Client ops("127.0.0.1", metrics_port_);
    auto result = ops.Get(path);
    return result ? result->body : "";
  }

  // The value of one sample line of /metrics, e.g. "cgpu_guard_cluster_state_stale"; -1 if absent.
  double Metric(const std::string& sample) {
    const std::string text = OpsBody("/metrics");
    const size_t at = text.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + sample.size() + 2));
  }

  nlohmann::json Bind(const std::string& pod, const std::string& node) {
    httplib::SSLClient client("127.0.0.1", webhook_port_);
    client.set_ca_cert_path((dir_ + "/ca.crt").c_str());
    client.enable_server_certificate_verification(true);
    auto result = client.Post("/validate",
                              testing::MakeReview("uid-" + pod, "pods", "binding", "CREATE", pod,
                                                  testing::MakeBinding(pod, node)),
                              "application/json");
    EXPECT_TRUE(result);
    if (!result) return nullptr;
    if (result->status != 200) return nlohmann::json{{"httpStatus", result->status}};
    return nlohmann::json::parse(result->body)["response"];
  }

  testing::FakeApiServer api_;
  std::string dir_;
  testing::TestCa ca_;
  std::unique_ptr<testing::Process> process_;
  int webhook_port_ = 0;
  int metrics_port_ = 0;
};

}  // namespace cgpu
