// The ACK scheduler driver against a small recording webhook: the reviews it sends are the ones
// the API server builds for each scheduler and endpoint (read back with our own codec), the
// allocation is written to the store first, and only an allowed binding binds the pod.
#include "support/ack_scheduler.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "adapters/admission_codec.h"
#include "cluster/cluster_objects.h"
#include "support/test_certificates.h"

namespace cgpu::testing {
namespace {

using nlohmann::json;

struct Received {
  std::string path;
  std::string timeout;  // the ?timeout= the API server appends
  std::string content_type;
  std::string body;
};

// A webhook over TLS that records each request and answers with `allowed_`.
class RecordingWebhook {
 public:
  RecordingWebhook() : dir_(MakeTempDir()), ca_(MakeTestCa()) {
    WriteServingFiles(dir_, ca_, "webhook");
    server_ = std::make_unique<httplib::SSLServer>((dir_ + "/tls.crt").c_str(),
                                                   (dir_ + "/tls.key").c_str());
    server_->Post("/validate", [this](const httplib::Request& request, httplib::Response& answer) {
      const json review = json::parse(request.body, nullptr, false);
      bool allowed = false;
      std::function<void()> during_review;
      {
        std::lock_guard<std::mutex> lock(mu_);
        received_.push_back({request.path, request.get_param_value("timeout"),
                             request.get_header_value("Content-Type"), request.body});
        allowed = allowed_;
        during_review = during_review_;
      }
      if (during_review) during_review();
      json response = {{"uid", review["request"]["uid"]}, {"allowed", allowed}};
      if (!allowed) response["status"] = {{"code", 403}, {"message", "GPU 3 of gpu-1 is full"}};
      answer.set_content(json{{"apiVersion", "admission.k8s.io/v1"},
                              {"kind", "AdmissionReview"},
                              {"response", response}}
                             .dump(),
                         "application/json");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    WaitUntil([this] { return server_->is_running(); });
  }
  ~RecordingWebhook() {
    server_->stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::string ca_file() const { return dir_ + "/ca.crt"; }
  void set_allowed(bool allowed) {
    std::lock_guard<std::mutex> lock(mu_);
    allowed_ = allowed;
  }
  // Runs inside each review, before the answer (set before the first one).
  void set_during_review(std::function<void()> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    during_review_ = std::move(hook);
  }
  std::vector<Received> received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  std::string dir_;
  TestCa ca_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mu_;
  std::function<void()> during_review_;
  bool allowed_ = true;
  std::vector<Received> received_;
};

DecodedReview Decode(const std::string& body) {
  ReviewDecodeResult result = DecodeAdmissionReview(body);
  if (const auto* error = std::get_if<ReviewDecodeError>(&result)) {
    ADD_FAILURE() << error->message;
    return {};
  }
  return std::get<DecodedReview>(std::move(result));
}

class AckSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api_.Add("nodes", MakeNode({.name = "gpu-1"}));  // 8 GPUs, 192 GiB
    api_.Add("pods", MakePod({.name = "p", .containers = 2, .phase = "Pending"}));
  }
  json StoredPod() { return api_.Find("pods", "p", "default").value_or(json()); }

  FakeApiServer api_;
  RecordingWebhook webhook_;
  AckSchedulerDriver driver_{api_, webhook_.port(), webhook_.ca_file()};
};

TEST_F(AckSchedulerTest, MakePodSetsTheUidTheBindingCarries) {
  EXPECT_EQ(StoredPod()["metadata"]["uid"], "uid-p");
}

TEST_F(AckSchedulerTest, ExtenderWritesItsAnnotationsThenBindsThroughPodsBinding) {
  const BindOutcome outcome = driver_.Bind("default", "p", "gpu-1", 3, AckScheduler::kExtender,
                                           BindingEndpoint::kPodsBinding);
  ASSERT_EQ(outcome.http_status, 200) << outcome.error;
  EXPECT_EQ(outcome.response["allowed"], true);
  EXPECT_TRUE(outcome.bound);

  const std::vector<Received> received = webhook_.received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].path, "/validate");
  EXPECT_EQ(received[0].timeout, "10s");
  EXPECT_EQ(received[0].content_type, "application/json");

  const DecodedReview review = Decode(received[0].body);
  EXPECT_EQ(review.api_version, ReviewApiVersion::kV1);
  EXPECT_EQ(review.request.kind.kind, "Binding");
  EXPECT_EQ(review.request.kind.version, "v1");
  EXPECT_EQ(review.request.resource.group, "");
  EXPECT_EQ(review.request.resource.version, "v1");
  EXPECT_EQ(review.request.resource.resource, "pods");
  EXPECT_EQ(review.request.sub_resource, "binding");
  EXPECT_EQ(review.request.name, "p");
  EXPECT_EQ(review.request.namespace_name, "default");
  EXPECT_EQ(review.request.operation, Operation::kCreate);
  EXPECT_EQ(review.request.user_name, "system:serviceaccount:kube-system:gpushare-schd-extender");
  EXPECT_FALSE(review.request.dry_run);
  ASSERT_TRUE(review.object.present);
  const auto* binding = std::get_if<BindingObject>(&review.object.view);
  ASSERT_NE(binding, nullptr);
  EXPECT_EQ(binding->name, "p");
  EXPECT_EQ(binding->namespace_name, "default");  // filled in by the API server (1.24+)
  EXPECT_EQ(binding->uid, "uid-p");
  EXPECT_EQ(binding->target_name, "gpu-1");
  EXPECT_FALSE(review.old_object.present);

  // What the codec does not read, read as JSON.
  const json request = json::parse(received[0].body)["request"];
  EXPECT_EQ(request["requestKind"], request["kind"]);
  EXPECT_EQ(request["requestResource"], request["resource"]);
  EXPECT_EQ(request["requestSubResource"], "binding");
  EXPECT_EQ(request["object"]["target"], (json{{"kind", "Node"}, {"name", "gpu-1"}}));
  EXPECT_TRUE(request["object"]["metadata"]["creationTimestamp"].is_null());
  EXPECT_FALSE(request["object"]["metadata"].contains("annotations"));
  EXPECT_TRUE(request["oldObject"].is_null());
  EXPECT_EQ(request["options"]["kind"], "CreateOptions");

  // The pod: the extender's annotations, then bound by the API server.
  const json pod = StoredPod();
  const json& annotations = pod["metadata"]["annotations"];
  EXPECT_EQ(annotations["ALIYUN_COM_GPU_MEM_IDX"], "3");
  EXPECT_EQ(annotations["ALIYUN_COM_GPU_MEM_DEV"], "24");
  EXPECT_EQ(annotations["ALIYUN_COM_GPU_MEM_POD"], "4");  // two containers of 2 GiB
  EXPECT_EQ(annotations["ALIYUN_COM_GPU_MEM_ASSIGNED"], "false");
  EXPECT_FALSE(annotations["ALIYUN_COM_GPU_MEM_ASSUME_TIME"].get<std::string>().empty());
  EXPECT_EQ(pod["spec"]["nodeName"], "gpu-1");
  EXPECT_EQ(pod["status"]["conditions"][0], (json{{"type", "PodScheduled"}, {"status", "True"}}));
}

TEST_F(AckSchedulerTest, FrameworkPluginOnTheLegacyEndpointLosesTheUid) {
  const BindOutcome outcome = driver_.Bind("default", "p", "gpu-1", 1, AckScheduler::kFramework,
                                           BindingEndpoint::kLegacyBindings);
  ASSERT_EQ(outcome.http_status, 200) << outcome.error;
  const std::vector<Received> received = webhook_.received();
  ASSERT_EQ(received.size(), 1u);
  const DecodedReview review = Decode(received[0].body);
  EXPECT_EQ(review.request.resource.resource, "bindings");
  EXPECT_EQ(review.request.sub_resource, "");
  EXPECT_EQ(review.request.name, "p");  // from the object: the path names none
  EXPECT_EQ(review.request.namespace_name, "default");
  EXPECT_EQ(review.request.kind.kind, "Binding");
  EXPECT_EQ(review.request.user_name, "system:kube-scheduler");
  const json request = json::parse(received[0].body)["request"];
  EXPECT_FALSE(request.contains("subResource"));
  EXPECT_FALSE(request.contains("requestSubResource"));
  EXPECT_EQ(request["object"]["metadata"]["namespace"], "default");
  EXPECT_FALSE(request["object"]["metadata"].contains("uid"));  // WipeObjectMetaSystemFields
  if (const auto* binding = std::get_if<BindingObject>(&review.object.view)) {
    EXPECT_EQ(binding->uid, "");
    EXPECT_EQ(binding->target_name, "gpu-1");
  }

  const json annotations = StoredPod()["metadata"]["annotations"];
  EXPECT_EQ(json::parse(annotations["scheduler.framework.gpushare.allocation"].get<std::string>()),
            (json{{"0", {{"1", 2}}}, {"1", {{"1", 2}}}}));
  EXPECT_EQ(annotations["scheduler.framework.gpushare.assigned"], "false");
  EXPECT_EQ(json::parse(annotations["gpushare.alibabacloud.com/device-resource"].get<std::string>())
                .size(),
            8u);
  EXPECT_EQ(StoredPod()["spec"]["nodeName"], "gpu-1");
}

TEST_F(AckSchedulerTest, FrameworkPluginBindsThroughDefaultBinder) {
  ASSERT_EQ(
      driver_
          .Bind("default", "p", "gpu-1", 2, AckScheduler::kFramework, BindingEndpoint::kPodsBinding)
          .http_status,
      200);
  const DecodedReview review = Decode(webhook_.received().at(0).body);
  EXPECT_EQ(review.request.sub_resource, "binding");
  EXPECT_EQ(review.request.user_name, "system:kube-scheduler");
  const auto* binding = std::get_if<BindingObject>(&review.object.view);
  ASSERT_NE(binding, nullptr);
  EXPECT_EQ(binding->namespace_name, "default");
  EXPECT_EQ(binding->uid, "uid-p");
}

TEST_F(AckSchedulerTest, BeforeKube124TheExtendersBindingArrivesWithoutNamespace) {
  AckSchedulerDriver old_cluster(api_, webhook_.port(), webhook_.ca_file(),
                                 {.namespace_before_admission = false});
  ASSERT_EQ(old_cluster
                .SendBinding("default", "p", "uid-p", "gpu-1", AckScheduler::kExtender,
                             BindingEndpoint::kPodsBinding)
                .http_status,
            200);
  const json request = json::parse(webhook_.received().at(0).body)["request"];
  EXPECT_EQ(request["namespace"], "default");
  EXPECT_FALSE(request["object"]["metadata"].contains("namespace"));
  // SendBinding writes nothing to the store.
  EXPECT_FALSE(StoredPod()["metadata"]["annotations"].contains("ALIYUN_COM_GPU_MEM_IDX"));
  EXPECT_FALSE(StoredPod()["spec"].contains("nodeName"));
}

TEST_F(AckSchedulerTest, EachReviewHasAFreshUid) {
  for (int i = 0; i < 2; ++i) {
    driver_.SendBinding("default", "p", "uid-p", "gpu-1", AckScheduler::kExtender,
                        BindingEndpoint::kPodsBinding);
  }
  const std::vector<Received> received = webhook_.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_NE(Decode(received[0].body).request.uid, Decode(received[1].body).request.uid);
}

TEST_F(AckSchedulerTest, ADeniedBindingLeavesTheAllocationAndTheUnboundPod) {
  webhook_.set_allowed(false);
  const BindOutcome outcome = driver_.Bind("default", "p", "gpu-1", 3, AckScheduler::kFramework,
                                           BindingEndpoint::kPodsBinding);
  EXPECT_EQ(outcome.http_status, 200);
  EXPECT_EQ(outcome.response["allowed"], false);
  EXPECT_FALSE(outcome.bound);
  const json pod = StoredPod();
  EXPECT_FALSE(pod["spec"].contains("nodeName"));
  EXPECT_TRUE(pod["metadata"]["annotations"].contains("scheduler.framework.gpushare.allocation"));
}

// The race: the allocation is committed (a quorum read sees it) but the watch cache, and so every
// watch, has not taken it when the binding reaches the webhook.
TEST_F(AckSchedulerTest, TheAllocationIsInTheStoreButNotYetInTheWatchCache) {
  int64_t pod_version = 0;
  int64_t cache_version = 0;
  std::string stored_index;
  webhook_.set_during_review([&] {
    const json pod = StoredPod();
    pod_version = std::stoll(pod["metadata"]["resourceVersion"].get<std::string>());
    stored_index = pod["metadata"]["annotations"].value("ALIYUN_COM_GPU_MEM_IDX", "");
    cache_version = api_.watch_cache_version();
  });
  api_.PauseWatches();
  const BindOutcome outcome = driver_.Bind("default", "p", "gpu-1", 5, AckScheduler::kExtender,
                                           BindingEndpoint::kPodsBinding);
  EXPECT_EQ(outcome.http_status, 200) << outcome.error;
  EXPECT_EQ(stored_index, "5");
  EXPECT_LT(cache_version, pod_version);
  api_.ResumeWatches();
  EXPECT_TRUE(WaitUntil([&] { return api_.watch_cache_version() == api_.resource_version(); }));
}

TEST_F(AckSchedulerTest, AMissingPodIsReportedNotSent) {
  const BindOutcome outcome = driver_.Bind("default", "ghost", "gpu-1", 0, AckScheduler::kExtender,
                                           BindingEndpoint::kPodsBinding);
  EXPECT_EQ(outcome.http_status, 0);
  EXPECT_NE(outcome.error.find("no pod default/ghost"), std::string::npos);
  EXPECT_TRUE(webhook_.received().empty());
}

}  // namespace
}  // namespace cgpu::testing
