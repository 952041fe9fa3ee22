// The cluster cache fed by real informers from the tests' API server (FakeApiStore, reached in
// memory through MemoryKubeApi: the real list/watch wire format, the watch cache and its lag),
// and the admission controller's live reads: counts converge through drops, 410 Gone and
// relists, and bindings are judged on them.
#include "adapters/cluster_watch.h"

#include <gtest/gtest.h>

#include "adapters/embedded_rules.h"
#include "adapters/review_facts_reader.h"
#include "cluster/cluster_objects.h"
#include "support/fake_api_store.h"
#include "support/memory_kube_api.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::FakeApiStore;
using testing::MakeNode;
using testing::MakePod;
using testing::PodSpec;
using testing::WaitUntil;

NodeFactsReader Reader() { return NodeFactsReader::Create(FactSources{}, EmbeddedRules()).value(); }

class ClusterWatchTest : public ::testing::Test {
 protected:
  ClusterWatchTest() : cache_(EmbeddedRules(), Reader(), {}), facts_(Reader()) {
    api_.RequireToken("t0ken");
    client_ =
        std::make_unique<testing::MemoryKubeApi>(api_, testing::MemoryKubeApiOptions{"t0ken"});
  }
  ~ClusterWatchTest() override { Stop(); }

  void Start() {
    InformerOptions nodes;
    nodes.collection_path = "/api/v1/nodes";
    nodes.min_backoff = std::chrono::milliseconds(10);
    nodes.max_backoff = std::chrono::milliseconds(50);
    InformerOptions pods = nodes;
    pods.collection_path = "/api/v1/pods";
    pods.page_size = 7;  // several pages per list
    node_informer_ = std::make_unique<Informer>(*client_, nodes, node_handler_);
    pod_informer_ = std::make_unique<Informer>(*client_, pods, pod_handler_);
    node_informer_->Start();
    pod_informer_->Start();
    ASSERT_TRUE(WaitUntil([&] { return cache_.synced(); }));
  }
  void Stop() {
    if (pod_informer_) pod_informer_->Stop();
    if (node_informer_) node_informer_->Stop();
  }

  void AddPods(const std::string& node, int gpu, int count, const std::string& prefix = "p") {
    for (int i = 0; i < count; ++i) {
      api_.Add("pods",
               MakePod({.name = prefix + "-" + std::to_string(gpu) + "-" + std::to_string(i),
                        .node = node,
                        .gpus = {gpu}}));
    }
  }

  int PodsOnGpu(const std::string& node, int gpu) {
    const std::optional<int> left = cache_.SlotsLeft(node, {gpu}, "", PolicyOptions{});
    return left ? 20 - *left : -1;
  }

  // A binding of `pod` to `node`, carrying `gpus` when given.
  Decision Bind(const AdmissionController& controller, const std::string& pod,
                const std::string& node, const std::vector<int>& gpus = {}) {
    ReviewDecodeResult decoded = DecodeAdmissionReview(testing::MakeReview(
        "uid-" + pod, "pods", "binding", "CREATE", pod, testing::MakeBinding(pod, node, gpus)));
    return controller.Admit(facts_.Read(std::get<DecodedReview>(decoded)));
  }

  FakeApiStore api_;
  ClusterCache cache_;
  ReviewFactsReader facts_;
  std::unique_ptr<KubeApi> client_;
  PodWatchHandler pod_handler_{cache_};
  NodeWatchHandler node_handler_{cache_};
  std::unique_ptr<Informer> node_informer_;
  std::unique_ptr<Informer> pod_informer_;
};

TEST_F(ClusterWatchTest, ListThenWatchKeepsCountsRight) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  AddPods("gpu-1", 0, 15);
  api_.Add("pods", MakePod({.name = "plain", .node = "gpu-1", .cgpu = false}));
  Start();
  EXPECT_EQ(PodsOnGpu("gpu-1", 0), 15);

  AddPods("gpu-1", 0, 5, "q");
  EXPECT_TRUE(WaitUntil([&] { return PodsOnGpu("gpu-1", 0) == 20; })) << PodsOnGpu("gpu-1", 0);
  api_.Delete("pods", "q-0-0", "default");
  json finished = MakePod({.name = "q-0-1", .node = "gpu-1", .gpus = {0}, .phase = "Succeeded"});
  api_.Update("pods", finished);
  EXPECT_TRUE(WaitUntil([&] { return PodsOnGpu("gpu-1", 0) == 18; })) << PodsOnGpu("gpu-1", 0);
}

TEST_F(ClusterWatchTest, CountsConvergeAfterDroppedStreams) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  AddPods("gpu-1", 2, 3);
  Start();
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(WaitUntil([&] { return api_.open_watches() == 2; }));
    api_.DropWatches();
    AddPods("gpu-1", 2, 2, "r" + std::to_string(round));
  }
  EXPECT_TRUE(WaitUntil([&] { return PodsOnGpu("gpu-1", 2) == 9; })) << PodsOnGpu("gpu-1", 2);
  EXPECT_GE(pod_informer_->stats().watch_restarts.load(), 1);
}

TEST_F(ClusterWatchTest, GoneRelistsAndForgetsPodsDeletedMeanwhile) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  AddPods("gpu-1", 1, 6);
  Start();
  ASSERT_EQ(PodsOnGpu("gpu-1", 1), 6);
  // While the watch is away, pods go and history is compacted: the informer must relist, and
  // the relist must sweep away what it no longer holds.
  api_.PauseWatches();
  api_.Delete("pods", "p-1-0", "default");
  api_.Delete("pods", "p-1-1", "default");
  api_.Compact();
  ASSERT_TRUE(WaitUntil([&] { return api_.open_watches() == 2; }));
  api_.DropWatches();
  api_.ResumeWatches();
  EXPECT_TRUE(WaitUntil([&] { return pod_informer_->stats().relists.load() >= 1; }));
  EXPECT_TRUE(WaitUntil([&] { return PodsOnGpu("gpu-1", 1) == 4; })) << PodsOnGpu("gpu-1", 1);
}

TEST_F(ClusterWatchTest, BindingsAreJudgedOnWatchedStateAndLiveReads) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  AddPods("gpu-1", 1, 19);
  api_.Add("pods", MakePod({.name = "mine", .gpus = {1}, .phase = "Pending"}));
  Start();
  LiveReadOptions generous;  // the outcome must not depend on how fast reads are here
  generous.deadline = std::chrono::seconds(20);
  AdmissionController controller(cache_, PolicyOptions{}, LiveClusterReads(*client_), {}, generous);

  // Our watch is behind: another replica's 20th pod and a brand-new pod are only on the server
  // (and in its watch cache).
  api_.HoldWatchDelivery();
  api_.Add("pods", MakePod({.name = "theirs", .node = "gpu-1", .gpus = {1}}));
  api_.Add("pods", MakePod({.name = "fresh", .gpus = {3}, .phase = "Pending"}));
  const int lists_before = api_.CountRequests(testing::RequestKind::kList, "/api/v1/pods");
  Decision mine = Bind(controller, "mine", "gpu-1");
  EXPECT_FALSE(mine.allowed()) << "the last-slot recount must see the other replica's pod";
  // A one-pod quorum list for the current resourceVersion, then the node's pods from the API
  // server's watch cache no older than that: never a quorum scan of every pod.
  EXPECT_EQ(api_.CountRequests(testing::RequestKind::kList, "/api/v1/pods"), lists_before + 2);
  // The informers' own watch requests may come between, so only the pod lists are looked at.
  std::vector<testing::RecordedRequest> lists;
  for (const testing::RecordedRequest& request : api_.requests()) {
    if (request.kind == testing::RequestKind::kList && request.path == "/api/v1/pods") {
      lists.push_back(request);
    }
  }
  ASSERT_GE(lists.size(), 2u);
  const testing::RecordedRequest& head = lists[lists.size() - 2];
  const testing::RecordedRequest& recount = lists.back();
  EXPECT_EQ(head.params.at("limit"), "1");
  EXPECT_EQ(head.params.count("resourceVersion"), 0u);
  EXPECT_EQ(recount.params.at("resourceVersionMatch"), "NotOlderThan");
  EXPECT_EQ(recount.params.at("resourceVersion"), std::to_string(api_.resource_version()));
  EXPECT_EQ(recount.params.at("fieldSelector"), "spec.nodeName=gpu-1");
  // A pod the watch has not shown yet is fetched and judged.
  EXPECT_TRUE(Bind(controller, "fresh", "gpu-1").allowed());
  EXPECT_GE(api_.CountRequests(testing::RequestKind::kGet, "/api/v1/namespaces/default/pods/fresh"),
            1);
  api_.ReleaseWatchDelivery();
}

// When the API server's own watch cache lags too, the recount cannot be served before the
// review's deadline: the decision is made on what the cache knows, and the read is reported.
TEST_F(ClusterWatchTest, ARecountTheApiServerCannotServeInTimeFallsBackToTheCache) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  AddPods("gpu-1", 1, 19);
  api_.Add("pods", MakePod({.name = "mine", .gpus = {1}, .phase = "Pending"}));
  Start();
  std::vector<std::string> outcomes;
  LiveReadOptions live;
  live.deadline = std::chrono::milliseconds(300);
  live.observe = [&outcomes](const LiveReadReport& report) {
    outcomes.push_back(std::string(ToString(report.read)) + " " + std::string(report.outcome));
  };
  AdmissionController controller(cache_, PolicyOptions{}, LiveClusterReads(*client_), {}, live);
  api_.PauseWatches();  // the API server's watch cache takes nothing more
  api_.Add("pods", MakePod({.name = "unrelated", .phase = "Pending", .cgpu = false}));
  // The Binding names the GPU, so the recount is the only read.
  Decision mine = Bind(controller, "mine", "gpu-1", {1});
  api_.ResumeWatches();
  EXPECT_TRUE(mine.allowed()) << mine.reason << ": 19 counted, this one the 20th";
  EXPECT_EQ(outcomes, (std::vector<std::string>{"list-node-pods deadline"}));
}

// Objects whose fields have odd JSON types are read through the informer's views as the
// nlohmann readers read them: the odd field is empty, nothing throws, nothing is counted wrong.
TEST_F(ClusterWatchTest, OddlyTypedObjectsReadAsEmptyFields) {
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  json odd_node = MakeNode({.name = "gpu-2"});
  odd_node["metadata"]["labels"] = json::array({"not", "a", "map"});
  odd_node["status"] = "not an object";
  api_.Add("nodes", odd_node);
  AddPods("gpu-1", 0, 2);
  json odd_pod = MakePod({.name = "odd", .node = "gpu-1", .gpus = {0}});
  odd_pod["metadata"]["annotations"] = 42;  // no GPU index: the one-GPU rule does not apply
  odd_pod["status"]["phase"] = json::array();
  api_.Add("pods", odd_pod);
  json nameless = MakePod({.name = "x", .node = "gpu-1", .gpus = {0}});
  nameless["metadata"]["name"] = 1;
  api_.Add("pods", nameless);
  Start();
  EXPECT_EQ(PodsOnGpu("gpu-1", 0), 2);
  EXPECT_EQ(cache_.NodeIsCgpu("gpu-2"), std::optional<bool>(false));
  EXPECT_TRUE(cache_.FindPod("default/odd").has_value());
  EXPECT_EQ(cache_.Stats(PolicyOptions{}).pods, 3u);  // the nameless pod is not kept

  json odd_again = odd_pod;
  odd_again["spec"]["containers"] = "nothing";
  api_.Update("pods", odd_again);
  api_.Delete("pods", "p-0-0", "default");
  EXPECT_TRUE(WaitUntil([&] { return PodsOnGpu("gpu-1", 0) == 1; })) << PodsOnGpu("gpu-1", 0);
  EXPECT_TRUE(WaitUntil([&] { return !cache_.FindPod("default/odd")->shares_gpu; }));
  EXPECT_EQ(pod_informer_->stats().errors, 0);
  EXPECT_EQ(node_informer_->stats().errors, 0);
}

TEST_F(ClusterWatchTest, NotSyncedUntilBothCollectionsListed) {
  api_.FailNext(3, 500, testing::RequestKind::kList);
  api_.Add("nodes", MakeNode({.name = "gpu-1"}));
  EXPECT_FALSE(cache_.synced());
  Start();  // waits for the sync through the failures
  EXPECT_TRUE(cache_.synced());
}

}  // namespace
}  // namespace cgpu
