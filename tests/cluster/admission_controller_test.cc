// The admission controller over a real ClusterCache: each enforcement point, fed with
// AdmissionReviews as the API server sends them, decoded by the real codec.
#include "adapters/admission_controller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "adapters/cluster_state_file.h"
#include "adapters/embedded_rules.h"
#include "adapters/review_facts_reader.h"
#include "cluster/cluster_objects.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::GpuScheme;
using testing::MakeBinding;
using testing::MakeList;
using testing::MakeNode;
using testing::MakePod;
using testing::MakeReview;
using testing::NodeSpec;
using testing::PodSpec;

NodeFactsReader Reader() { return NodeFactsReader::Create(FactSources{}, EmbeddedRules()).value(); }

class ControllerTest : public ::testing::Test {
 protected:
  ControllerTest() : cache_(EmbeddedRules(), Reader(), CacheOptions()), facts_(Reader()) {}

  ClusterCacheOptions CacheOptions() {
    ClusterCacheOptions options;
    options.reservation_ttl = std::chrono::seconds(30);
    options.now = [this] { return now_; };
    return options;
  }

  void Load(std::vector<json> objects) {
    ASSERT_TRUE(LoadClusterState(MakeList(objects), cache_).ok());
  }

  // `count` running cGPU pods on GPU `gpu` of `node`.
  static void AddPods(std::vector<json>& objects, const std::string& node, int gpu, int count,
                      GpuScheme scheme = GpuScheme::kAllocationAnnotation,
                      const std::string& prefix = "") {
    for (int i = 0; i < count; ++i) {
      objects.push_back(
          MakePod({.name = prefix + node + "-g" + std::to_string(gpu) + "-" + std::to_string(i),
                   .node = node,
                   .gpus = {gpu},
                   .scheme = scheme}));
    }
  }

  ReviewFacts Facts(const std::string& review) const {
    ReviewDecodeResult decoded = DecodeAdmissionReview(review);
    const DecodedReview* ok = std::get_if<DecodedReview>(&decoded);
    EXPECT_NE(ok, nullptr) << std::get<ReviewDecodeError>(decoded).message;
    if (ok == nullptr) return {};
    return facts_.Read(*ok);
  }

  Decision Admit(const std::string& review) const { return controller_->Admit(Facts(review)); }

  static std::string BindingReview(const std::string& pod, const std::string& node) {
    return MakeReview("uid-bind-" + pod, "pods", "binding", "CREATE", pod, MakeBinding(pod, node));
  }

  Decision Bind(const std::string& pod, const std::string& node, std::vector<int> gpus = {},
                bool dry_run = false) const {
    return Admit(MakeReview("uid-bind-" + pod, "pods", "binding", "CREATE", pod,
                            MakeBinding(pod, node, gpus), nullptr, dry_run));
  }

  void UseController(PolicyOptions options = {}, ClusterReads reads = {},
                     std::function<std::string()> stale_reason = {}, LiveReadOptions live = {}) {
    if (!live.now) live.now = [this] { return now_; };
    controller_ = std::make_unique<AdmissionController>(cache_, options, std::move(reads),
                                                        std::move(stale_reason), std::move(live));
  }

  // A pending cGPU pod as the API server has it now: uid-<name>, as MakePod and MakeBinding say.
  static PodFacts LivePod(const std::string& name, std::vector<int> gpus) {
    PodFacts pod;
    pod.namespace_name = "default";
    pod.name = name;
    pod.uid = "uid-" + name;
    pod.shares_gpu = true;
    pod.gpus.indices = std::move(gpus);
    return pod;
  }

  // Live reads served from `pods` (by name; absent: 404) and, for the node recount, `on_node`.
  // Counts the reads in gets_ and lists_.
  void UseLivePods(std::map<std::string, PodFacts> pods, std::vector<PodFacts> on_node = {},
                   PolicyOptions options = {}) {
    gets_ = 0;
    lists_ = 0;
    ClusterReads live;
    live.get_pod = [this, pods](const std::string&, const std::string& name,
                                SteadyTime) -> StatusOr<std::optional<PodFacts>> {
      ++gets_;
      auto it = pods.find(name);
      if (it == pods.end()) return std::optional<PodFacts>();
      return std::optional<PodFacts>(it->second);
    };
    live.list_pods_on_node = [this, on_node](const std::string&,
                                             SteadyTime) -> StatusOr<std::vector<PodFacts>> {
      ++lists_;
      return on_node;
    };
    UseController(options, live);
  }

  SteadyTime now_{};
  int gets_ = 0;
  int lists_ = 0;
  ClusterCache cache_;
  ReviewFactsReader facts_;
  std::unique_ptr<AdmissionController> controller_ =
      std::make_unique<AdmissionController>(cache_, PolicyOptions{});
};

TEST_F(ControllerTest, BindingTheTwentyFirstPodOnAGpuIsDenied) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 20);
  objects.push_back(MakePod({.name = "new", .gpus = {1}, .phase = "Pending"}));
  objects.push_back(MakePod({.name = "other-gpu", .gpus = {2}, .phase = "Pending"}));
  Load(objects);

  Decision denied = Bind("new", "gpu-1");
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "pods-per-gpu");
  EXPECT_NE(denied.message.find("pod default/new on node gpu-1: GPU 1 already runs 20"),
            std::string::npos)
      << denied.message;
  EXPECT_TRUE(Bind("other-gpu", "gpu-1").allowed());
}

TEST_F(ControllerTest, BothAnnotationSchemesAndTheBindingsOwnAnnotationCount) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 0, 10, GpuScheme::kIndexAnnotation);
  AddPods(objects, "gpu-1", 0, 10, GpuScheme::kAllocationAnnotation, "framework-");
  objects.push_back(MakePod({.name = "new", .scheme = GpuScheme::kNone, .phase = "Pending"}));
  Load(objects);
  // The pod carries no GPU; the Binding does.
  Decision denied = Bind("new", "gpu-1", {0});
  EXPECT_FALSE(denied.allowed()) << denied.reason;
  EXPECT_TRUE(Bind("new", "gpu-1", {1}).allowed());
}

TEST_F(ControllerTest, FinishedDeletedAndNonCgpuPodsFreeTheirSlots) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 18);
  objects.push_back(MakePod({.name = "done", .node = "gpu-1", .gpus = {1}, .phase = "Succeeded"}));
  objects.push_back(MakePod({.name = "failed", .node = "gpu-1", .gpus = {1}, .phase = "Failed"}));
  objects.push_back(MakePod({.name = "plain", .node = "gpu-1", .cgpu = false}));
  objects.push_back(MakePod({.name = "a", .gpus = {1}, .phase = "Pending"}));
  objects.push_back(MakePod({.name = "b", .gpus = {1}, .phase = "Pending"}));
  objects.push_back(MakePod({.name = "c", .gpus = {1}, .phase = "Pending"}));
  Load(objects);
  EXPECT_TRUE(Bind("a", "gpu-1").allowed());  // 19
  EXPECT_TRUE(Bind("b", "gpu-1").allowed());  // 20
  EXPECT_FALSE(Bind("c", "gpu-1").allowed());
  cache_.DeletePod("default/gpu-1-g1-0");
  EXPECT_TRUE(Bind("c", "gpu-1").allowed());
}

TEST_F(ControllerTest, RetriedBindingIsAllowedAgainWithoutCountingTwice) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 19);
  objects.push_back(MakePod({.name = "new", .gpus = {1}, .phase = "Pending"}));
  objects.push_back(MakePod({.name = "late", .gpus = {1}, .phase = "Pending"}));
  Load(objects);
  EXPECT_TRUE(Bind("new", "gpu-1").allowed());
  EXPECT_TRUE(Bind("new", "gpu-1").allowed());  // the scheduler retried
  EXPECT_FALSE(Bind("late", "gpu-1").allowed());
}

TEST_F(ControllerTest, ReservationsExpireWhenTheWatchNeverShowsThePod) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 19);
  objects.push_back(MakePod({.name = "a", .gpus = {1}, .phase = "Pending"}));
  objects.push_back(MakePod({.name = "b", .gpus = {1}, .phase = "Pending"}));
  Load(objects);
  EXPECT_TRUE(Bind("a", "gpu-1").allowed());
  EXPECT_FALSE(Bind("b", "gpu-1").allowed());
  now_ += std::chrono::seconds(31);
  EXPECT_EQ(cache_.ExpireReservations(), 1u);
  EXPECT_TRUE(Bind("b", "gpu-1").allowed());
}

TEST_F(ControllerTest, DryRunReservesNothing) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 19);
  objects.push_back(MakePod({.name = "a", .gpus = {1}, .phase = "Pending"}));
  objects.push_back(MakePod({.name = "b", .gpus = {1}, .phase = "Pending"}));
  Load(objects);
  EXPECT_TRUE(Bind("a", "gpu-1", {}, /*dry_run=*/true).allowed());
  EXPECT_TRUE(Bind("b", "gpu-1").allowed());
}

TEST_F(ControllerTest, IncompatibleNodeDeniesCgpuPodsOnlyWithWhatToUpgrade) {
  Load({MakeNode({.name = "old", .cgpu_version = "1.5.2", .driver = "535.104.05"}),
        MakePod({.name = "shared", .gpus = {0}, .phase = "Pending"}),
        MakePod({.name = "plain", .phase = "Pending", .cgpu = false})});
  Decision denied = Bind("shared", "old");
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "driver");
  EXPECT_NE(denied.message.find("cGPU 1.5.2 does not support NVIDIA driver 535.104.05 (535 "
                                "series needs cGPU 1.5.3-1.5.20); upgrade cGPU"),
            std::string::npos)
      << denied.message;
  EXPECT_TRUE(Bind("plain", "old").allowed());
}

TEST_F(ControllerTest, PodCreateWithNodeNameSkipsTheSchedulerButNotTheCheck) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 3, 20);
  Load(objects);
  const json direct = MakePod({.name = "direct", .node = "gpu-1", .gpus = {3}, .phase = ""});
  Decision denied = Admit(MakeReview("u1", "pods", "", "CREATE", "direct", direct));
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "pods-per-gpu");
  const json unbound = MakePod({.name = "unbound", .gpus = {3}, .phase = ""});
  EXPECT_EQ(Admit(MakeReview("u2", "pods", "", "CREATE", "unbound", unbound)).reason, "not-bound");
}

TEST_F(ControllerTest, PodUpdateIsCheckedOnlyWhenItMovesTheGpus) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 2, 20);
  objects.push_back(MakePod({.name = "mover", .node = "gpu-1", .gpus = {1}}));
  Load(objects);
  const json before = MakePod({.name = "mover", .node = "gpu-1", .gpus = {1}});
  json relabelled = before;
  relabelled["metadata"]["labels"]["tier"] = "gold";
  EXPECT_EQ(Admit(MakeReview("u1", "pods", "", "UPDATE", "mover", relabelled, before)).reason,
            "gpus-unchanged");
  const json moved = MakePod({.name = "mover", .node = "gpu-1", .gpus = {2}});
  Decision denied = Admit(MakeReview("u2", "pods", "", "UPDATE", "mover", moved, before));
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "pods-per-gpu");
  // A status update of a pod already on the full GPU does not count it against itself.
  json status = MakePod({.name = "gpu-1-g2-0", .node = "gpu-1", .gpus = {2}});
  EXPECT_TRUE(
      Admit(MakeReview("u3", "pods", "", "UPDATE", "gpu-1-g2-0", status, status)).allowed());
}

TEST_F(ControllerTest, NodeLabelledForCgpuWhileIncompatibleIsDenied) {
  Load({});
  // cGPU 1.5.20 supports "5.x <= 5.15": a 5.19 kernel is past a bound the seed states.
  const json plain = MakeNode({.name = "n1", .schedule = "", .kernel = "5.19.0-1.al8.x86_64"});
  const json labelled = MakeNode({.name = "n1", .kernel = "5.19.0-1.al8.x86_64"});
  Decision denied = Admit(MakeReview("u1", "nodes", "", "UPDATE", "n1", labelled, plain));
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "kernel");
  EXPECT_NE(denied.message.find("cannot enable cGPU isolation (ack.node.gpu.schedule=cgpu) on node "
                                "n1"),
            std::string::npos)
      << denied.message;
  // The kubelet's status updates pass whatever the facts.
  EXPECT_TRUE(
      Admit(MakeReview("u2", "nodes", "status", "UPDATE", "n1", labelled, labelled)).allowed());
  // A compatible node may be labelled.
  const json good = MakeNode({.name = "n2"});
  EXPECT_TRUE(Admit(MakeReview("u3", "nodes", "", "CREATE", "n2", good)).allowed());
}

TEST_F(ControllerTest, StaleClusterStateAnswersPlacementsByTheStalePolicy) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"}),
                               MakeNode({.name = "plain-node", .schedule = ""})};
  AddPods(objects, "gpu-1", 1, 2);  // plenty of room: a fresh cache would allow
  objects.push_back(MakePod({.name = "new", .gpus = {1}, .phase = "Pending"}));
  Load(objects);
  std::string stale;  // what the cluster source would say
  auto stale_reason = [&stale] { return stale; };

  UseController({}, {}, stale_reason);
  EXPECT_TRUE(Bind("new", "gpu-1", {}, /*dry_run=*/true).allowed());
  stale = "the pods watch has been down for 42 s";
  Decision closed = Bind("new", "gpu-1");
  EXPECT_FALSE(closed.allowed());
  EXPECT_EQ(closed.reason, "cluster-state-stale");
  EXPECT_EQ(closed.code, 503);
  EXPECT_NE(closed.message.find("cannot check cGPU pod default/new on node gpu-1: cgpu-guard's "
                                "view of the cluster is stale (the pods watch has been down for "
                                "42 s)"),
            std::string::npos)
      << closed.message;
  // A pod created straight onto the node is a placement too.
  json direct = MakePod({.name = "direct", .node = "gpu-1", .gpus = {1}});
  EXPECT_EQ(Admit(MakeReview("u-direct", "pods", "", "CREATE", "direct", direct)).reason,
            "cluster-state-stale");
  // Nothing reserved: the refused binding does not count once the state is current again.
  EXPECT_EQ(cache_.Stats({}).reservations, 0u);
  // Node changes are judged on the node's own facts, not on counts: unaffected.
  EXPECT_TRUE(
      Admit(MakeReview("u-node", "nodes", "", "CREATE", "n2", MakeNode({.name = "n2"}))).allowed());
  // Pods without cGPU and nodes without cGPU are not placements to count.
  EXPECT_EQ(Bind("new", "plain-node").reason, "not-cgpu-node");

  PolicyOptions open;
  open.stale = StalePolicy::kFailOpen;
  UseController(open, {}, stale_reason);
  Decision opened = Bind("new", "gpu-1");
  EXPECT_TRUE(opened.allowed());
  EXPECT_EQ(opened.reason, "cluster-state-stale");
  ASSERT_EQ(opened.warnings.size(), 1u);
  EXPECT_NE(opened.warnings[0].find("was allowed without checking GPU limits"), std::string::npos)
      << opened.warnings[0];
  EXPECT_EQ(cache_.Stats({}).reservations, 0u);

  // Warn mode never denies, stale or not.
  PolicyOptions warn;
  warn.mode = EnforcementMode::kWarn;
  UseController(warn, {}, stale_reason);
  Decision warned = Bind("new", "gpu-1");
  EXPECT_TRUE(warned.allowed());
  EXPECT_TRUE(warned.would_deny);

  stale.clear();
  UseController({}, {}, stale_reason);
  Decision fresh = Bind("new", "gpu-1");
  EXPECT_TRUE(fresh.allowed());
  EXPECT_EQ(fresh.reason, "within-limits");
  EXPECT_EQ(cache_.Stats({}).reservations, 1u);
}

TEST_F(ControllerTest, ModesTurnDenialsIntoWarningsOrNothing) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 20);
  objects.push_back(MakePod({.name = "new", .gpus = {1}, .phase = "Pending"}));
  Load(objects);
  UseController({.mode = EnforcementMode::kWarn});
  Decision warned = Bind("new", "gpu-1");
  EXPECT_TRUE(warned.allowed());
  EXPECT_TRUE(warned.would_deny);
  ASSERT_FALSE(warned.warnings.empty());
  EXPECT_NE(warned.warnings[0].find("would deny"), std::string::npos);
  UseController({.mode = EnforcementMode::kDryRun});
  Decision dry = Bind("new", "gpu-1");
  EXPECT_TRUE(dry.allowed());
  EXPECT_TRUE(dry.would_deny);
  EXPECT_TRUE(dry.warnings.empty());
}

TEST_F(ControllerTest, UnsyncedCacheErrsSoTheFailurePolicyDecides) {
  // Nothing loaded: not synced.
  Decision errored = Bind("p", "gpu-1");
  EXPECT_EQ(errored.verdict, Verdict::kErrored);
  EXPECT_EQ(errored.code, 503);
  // Nodes need no cache.
  EXPECT_TRUE(
      Admit(MakeReview("u", "nodes", "", "CREATE", "n2", MakeNode({.name = "n2"}))).allowed());
}

TEST_F(ControllerTest, NonCgpuNodesAndOtherResourcesPassAtOnce) {
  Load({MakeNode({.name = "cpu-1", .schedule = ""}),
        MakePod({.name = "p", .gpus = {0}, .phase = "Pending"})});
  EXPECT_EQ(Bind("p", "cpu-1").reason, "not-cgpu-node");
  EXPECT_EQ(
      Admit(MakeReview("u", "pods", "", "DELETE", "p", nullptr, MakePod({.name = "p"}))).reason,
      "not-checked");
  EXPECT_EQ(Admit(MakeReview("u", "pods", "status", "UPDATE", "p", MakePod({.name = "p"}),
                             MakePod({.name = "p"})))
                .reason,
            "not-checked");
}

TEST_F(ControllerTest, UnknownPodIsFetchedLiveOrFollowsTheUnknownPolicy) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 20);
  Load(objects);
  // Not in the cache and no live reads: allowed with a warning by default.
  Decision unknown = Bind("fresh", "gpu-1");
  EXPECT_TRUE(unknown.allowed());
  EXPECT_EQ(unknown.reason, "pod-unknown");
  EXPECT_EQ(unknown.warnings.size(), 1u);

  // With a live read the pod is found and judged.
  UseLivePods({{"fresh", LivePod("fresh", {1})}});
  Decision denied = Bind("fresh", "gpu-1");
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(gets_, 1);
}

TEST_F(ControllerTest, LastSlotTriggersAFreshCountOfTheNode) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 19);
  objects.push_back(MakePod({.name = "mine", .gpus = {1}, .phase = "Pending"}));
  Load(objects);
  // Another replica has just bound "theirs" to GPU 1; our watch has not shown it yet.
  PodFacts theirs = LivePod("theirs", {1});
  theirs.node_name = "gpu-1";
  UseLivePods({{"mine", LivePod("mine", {1})}}, {theirs});
  Decision denied = Bind("mine", "gpu-1");
  EXPECT_EQ(lists_, 1);
  EXPECT_FALSE(denied.allowed()) << "the fresh count must see the 20th pod";
}

// The real ACK flow: the scheduler writes the allocation on the pending pod, then binds; the
// watch has not delivered the write, so the cache's copy has no allocation. The live copy does.
TEST_F(ControllerTest, BindingDecidesOnTheAllocationTheSchedulerJustWrote) {
  for (GpuScheme scheme : {GpuScheme::kIndexAnnotation, GpuScheme::kAllocationAnnotation}) {
    SCOPED_TRACE(scheme == GpuScheme::kIndexAnnotation ? "extender" : "framework");
    std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
    AddPods(objects, "gpu-1", 1, 20, scheme);
    for (const char* name : {"to-full", "to-room"}) {
      objects.push_back(MakePod({.name = name, .scheme = GpuScheme::kNone, .phase = "Pending"}));
    }
    Load(objects);
    UseLivePods({{"to-full", LivePod("to-full", {1})}, {"to-room", LivePod("to-room", {2})}});

    Decision full = Bind("to-full", "gpu-1");
    EXPECT_FALSE(full.allowed());
    EXPECT_EQ(full.reason, "pods-per-gpu");
    Decision room = Bind("to-room", "gpu-1");
    EXPECT_TRUE(room.allowed());
    EXPECT_EQ(room.reason, "within-limits");
    EXPECT_TRUE(room.warnings.empty()) << room.warnings.front();
    EXPECT_EQ(gets_, 2);
    EXPECT_EQ(cache_.PodsOnGpu("gpu-1", 2), 1) << "the allowed pod is reserved on GPU 2";
  }
}

// A denied binding is retried and the scheduler may pick another GPU: the cache may still hold
// the allocation of the earlier attempt. The live one decides.
TEST_F(ControllerTest, AStaleCachedAllocationDoesNotDecide) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 20);
  objects.push_back(MakePod({.name = "moved-to-room", .gpus = {1}, .phase = "Pending"}));
  objects.push_back(MakePod({.name = "moved-to-full", .gpus = {3}, .phase = "Pending"}));
  Load(objects);
  UseLivePods({{"moved-to-room", LivePod("moved-to-room", {2})},
               {"moved-to-full", LivePod("moved-to-full", {1})}});
  EXPECT_TRUE(Bind("moved-to-room", "gpu-1").allowed());
  EXPECT_FALSE(Bind("moved-to-full", "gpu-1").allowed());
}

// A pod deleted and created again under its name: the cache's copy (another uid) is not it.
TEST_F(ControllerTest, AnEarlierPodOfTheSameNameIsNotTheOneBeingBound) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 20);
  json earlier = MakePod({.name = "db-0", .phase = "Pending", .cgpu = false});
  earlier["metadata"]["uid"] = "uid-earlier";
  objects.push_back(earlier);
  Load(objects);
  UseLivePods({{"db-0", LivePod("db-0", {1})}});  // uid-db-0, what the Binding names
  Decision denied = Bind("db-0", "gpu-1");
  EXPECT_EQ(gets_, 1) << "another uid in the cache: read the pod";
  EXPECT_FALSE(denied.allowed()) << denied.reason;

  // And when the live pod is not the one the Binding names, the API server will refuse the
  // binding: nothing to place.
  PodFacts replaced = LivePod("db-0", {1});
  replaced.uid = "uid-newer";
  UseLivePods({{"db-0", replaced}});
  Decision gone = Bind("db-0", "gpu-1");
  EXPECT_TRUE(gone.allowed());
  EXPECT_EQ(gone.reason, "pod-replaced");
}

TEST_F(ControllerTest, NonCgpuPodsAndNodesNeverReadLive) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"}),
                               MakeNode({.name = "plain", .schedule = ""}),
                               MakeNode({.name = "one-gpu", .gpus = 1})};
  AddPods(objects, "one-gpu", 0, 5);
  objects.push_back(MakePod({.name = "web", .phase = "Pending", .cgpu = false}));
  objects.push_back(MakePod({.name = "shared", .scheme = GpuScheme::kNone, .phase = "Pending"}));
  Load(objects);
  UseLivePods({});
  EXPECT_EQ(Bind("web", "gpu-1").reason, "not-cgpu-pod");
  EXPECT_EQ(Bind("shared", "plain").reason, "not-cgpu-node");
  EXPECT_EQ(Bind("unknown-pod", "plain").reason, "not-cgpu-node");
  // The Binding names the GPU itself, or the node has one GPU: nothing to read either.
  EXPECT_TRUE(Bind("shared", "gpu-1", {3}).allowed());
  Decision one_gpu = Bind("shared", "one-gpu");
  EXPECT_EQ(one_gpu.reason, "within-limits") << "counted on GPU 0, the only one";
  EXPECT_EQ(cache_.PodsOnGpu("one-gpu", 0), 6);
  EXPECT_EQ(gets_, 0);
  EXPECT_EQ(lists_, 0);

  EXPECT_FALSE(controller_->MayReadLive(Facts(BindingReview("web", "gpu-1"))));
  EXPECT_FALSE(controller_->MayReadLive(Facts(BindingReview("shared", "plain"))));
  EXPECT_TRUE(controller_->MayReadLive(Facts(BindingReview("shared", "gpu-1"))));
  // The Binding names a GPU with room: decided on the cache, on the event loop.
  EXPECT_FALSE(controller_->MayReadLive(Facts(MakeReview(
      "uid-b", "pods", "binding", "CREATE", "shared", MakeBinding("shared", "gpu-1", {3})))));
}

TEST_F(ControllerTest, ALiveReadPastTheDeadlineLeavesTheGpuUnknown) {
  std::vector<json> objects = {
      MakeNode({.name = "gpu-1"}),
      MakeNode({.name = "old", .cgpu_version = "1.5.2", .driver = "550.54.15"})};
  objects.push_back(MakePod({.name = "p", .scheme = GpuScheme::kNone, .phase = "Pending"}));
  Load(objects);
  std::vector<LiveReadReport> reports;
  ClusterReads live;
  SteadyTime seen_deadline{};
  live.get_pod = [&](const std::string&, const std::string&,
                     SteadyTime deadline) -> StatusOr<std::optional<PodFacts>> {
    seen_deadline = deadline;
    now_ = deadline;  // the API server answers too late
    return DeadlineExceeded("GET /api/v1/namespaces/default/pods/p: no answer within the deadline");
  };
  LiveReadOptions options;
  options.deadline = std::chrono::milliseconds(250);
  options.now = [this] { return now_; };
  options.observe = [&](const LiveReadReport& report) { reports.push_back(report); };
  now_ = SteadyTime{} + std::chrono::seconds(100);
  const SteadyTime start = now_;
  UseController({}, live, {}, options);

  Decision warned = Bind("p", "gpu-1");
  EXPECT_TRUE(warned.allowed());
  EXPECT_EQ(warned.reason, "gpu-unknown");
  ASSERT_EQ(warned.warnings.size(), 1u);
  EXPECT_NE(warned.warnings[0].find("cannot read pod default/p from the API server within 250 ms"),
            std::string::npos)
      << warned.warnings[0];
  EXPECT_EQ(seen_deadline, start + std::chrono::milliseconds(250));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].outcome, "deadline");
  EXPECT_EQ(reports[0].read, LiveRead::kGetPod);

  now_ = start;
  UseController({.unknown = UnknownPolicy::kDeny}, live, {}, options);
  Decision denied = Bind("p", "gpu-1");
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "gpu-unknown");

  // The node's compatibility needs no read: an incompatible node still denies.
  now_ = start;
  UseController({}, live, {}, options);
  Decision incompatible = Bind("p", "old");
  EXPECT_FALSE(incompatible.allowed()) << incompatible.reason;

  // A review that waited out its deadline before deciding makes no read at all.
  int reads = 0;
  live.get_pod = [&](const std::string&, const std::string&,
                     SteadyTime) -> StatusOr<std::optional<PodFacts>> {
    ++reads;
    return std::optional<PodFacts>();
  };
  reports.clear();
  UseController({}, live, {}, options);
  ReviewFacts late = Facts(BindingReview("p", "gpu-1"));
  late.received = now_ - std::chrono::seconds(2);
  Decision decided = controller_->Admit(late);
  EXPECT_EQ(reads, 0);
  EXPECT_EQ(decided.reason, "gpu-unknown");
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].outcome, "deadline");
}

// What a live read returns decides one review and is never written to the cache: a pod the watch
// removed while the read was in flight is not counted again afterwards.
TEST_F(ControllerTest, LiveReadsNeverRollTheCacheBack) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 19);
  objects.push_back(MakePod({.name = "mine", .scheme = GpuScheme::kNone, .phase = "Pending"}));
  Load(objects);
  ClusterReads live;
  live.get_pod = [this](const std::string&, const std::string&,
                        SteadyTime) -> StatusOr<std::optional<PodFacts>> {
    return std::optional<PodFacts>(LivePod("mine", {1}));
  };
  // The recount's list was taken just before gpu-1-g1-0 finished and was deleted; the watch
  // delivers the deletion while the list is on its way.
  live.list_pods_on_node = [this](const std::string& node,
                                  SteadyTime) -> StatusOr<std::vector<PodFacts>> {
    std::vector<PodFacts> listed;
    for (int i = 0; i < 19; ++i) {
      PodFacts pod = LivePod("gpu-1-g1-" + std::to_string(i), {1});
      pod.node_name = node;
      pod.phase = PodPhase::kRunning;
      listed.push_back(pod);
    }
    cache_.DeletePod("default/gpu-1-g1-0");
    return listed;
  };
  UseController({}, live);
  EXPECT_TRUE(Bind("mine", "gpu-1").allowed());  // 19 others, this one the 20th
  EXPECT_FALSE(cache_.FindPod("default/gpu-1-g1-0").has_value()) << "deleted stays deleted";
  EXPECT_EQ(cache_.PodsOnGpu("gpu-1", 1), 19) << "18 watched + this one's reservation";
}

TEST_F(ControllerTest, LegacyBindingsAreJudgedLikePodsBinding) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 20);
  objects.push_back(MakePod({.name = "new", .gpus = {1}, .phase = "Pending"}));
  Load(objects);
  // POST /api/v1/namespaces/default/bindings: resource "bindings", no subresource.
  Decision denied =
      Admit(MakeReview("uid-legacy", "bindings", "", "CREATE", "new", MakeBinding("new", "gpu-1")));
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "pods-per-gpu");
}

TEST_F(ControllerTest, AGpuIndexPastTheNodesGpusIsUnknownNeverCounted) {
  std::vector<json> objects = {MakeNode({.name = "gpu-4", .gpus = 4})};
  Load(objects);
  UseLivePods({{"p", LivePod("p", {7})}});
  Decision warned = Bind("p", "gpu-4");
  EXPECT_TRUE(warned.allowed());
  EXPECT_EQ(warned.reason, "gpu-unknown");
  ASSERT_EQ(warned.warnings.size(), 1u);
  EXPECT_NE(warned.warnings[0].find("names GPU 7"), std::string::npos) << warned.warnings[0];
  EXPECT_NE(warned.warnings[0].find("the node has 4 GPUs"), std::string::npos);
  EXPECT_EQ(cache_.Stats({}).reservations, 0u) << "nothing reserved on a GPU that does not exist";

  UseLivePods({{"p", LivePod("p", {7})}}, {}, {.unknown = UnknownPolicy::kDeny});
  EXPECT_FALSE(Bind("p", "gpu-4").allowed());
}

// Anyone who can reach the webhook port can post a review: a reservation is made only for a pod
// the cluster holds, pending, with the Binding's uid, and one only a review vouches for lapses in
// seconds.
TEST_F(ControllerTest, ReservationsOnlyForPodsThatExist) {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
  AddPods(objects, "gpu-1", 1, 15);
  Load(objects);
  UseLivePods({});  // the API server has no pod "made-up"
  // A made-up Binding that even names its GPU: read, not found, nothing reserved.
  Decision made_up = Bind("made-up", "gpu-1", {1});
  EXPECT_EQ(made_up.reason, "pod-not-found");
  EXPECT_EQ(gets_, 1);
  EXPECT_EQ(cache_.Stats({}).reservations, 0u);

  // A pod bound already: the API server refuses to bind it again; nothing placed.
  EXPECT_EQ(Bind("gpu-1-g1-0", "gpu-1", {1}).reason, "pod-already-bound");
  PodFacts bound_live = LivePod("racing", {1});
  bound_live.node_name = "gpu-1";
  UseLivePods({{"racing", bound_live}});
  EXPECT_EQ(Bind("racing", "gpu-1").reason, "pod-already-bound");
  EXPECT_EQ(cache_.Stats({}).reservations, 0u);

  // A pod CREATE with spec.nodeName is vouched for by the review alone until the watch shows the
  // pod: its reservation lapses after 5 s, a binding's after --reservation-ttl (30 s here).
  json created = MakePod({.name = "direct", .node = "gpu-1", .gpus = {2}, .phase = ""});
  EXPECT_TRUE(Admit(MakeReview("uid-c", "pods", "", "CREATE", "direct", created)).allowed());
  cache_.UpsertPod(MakePod({.name = "pending", .gpus = {3}, .phase = "Pending"}));
  UseLivePods({{"pending", LivePod("pending", {3})}});
  EXPECT_TRUE(Bind("pending", "gpu-1").allowed());
  EXPECT_EQ(cache_.PodsOnGpu("gpu-1", 2), 1);
  EXPECT_EQ(cache_.PodsOnGpu("gpu-1", 3), 1);
  now_ += std::chrono::seconds(6);
  EXPECT_EQ(cache_.ExpireReservations(), 1u);
  EXPECT_EQ(cache_.PodsOnGpu("gpu-1", 2), 0) << "the CREATE's reservation lapsed";
  EXPECT_EQ(cache_.PodsOnGpu("gpu-1", 3), 1) << "the binding's still counts";
}

// A pod created with generateName and spec.nodeName skips the scheduler; the watch's copy of it
// replaces its reservation (matched by uid), so it is counted once.
TEST_F(ControllerTest, AGeneratedPodCreatedOnANodeIsCountedOnce) {
  Load({MakeNode({.name = "gpu-1"})});
  json pod = MakePod({.name = "job-x7k2p", .node = "gpu-1", .gpus = {5}, .phase = ""});
  pod["metadata"]["generateName"] = "job-";
  for (const bool named : {true, false}) {
    SCOPED_TRACE(named ? "named by the API server" : "no name at admission");
    json admitted = pod;
    if (!named) admitted["metadata"].erase("name");
    EXPECT_TRUE(Admit(MakeReview("uid-create", "pods", "", "CREATE", "", admitted)).allowed());
    EXPECT_EQ(cache_.PodsOnGpu("gpu-1", 5), 1);
    cache_.UpsertPod(pod);  // the watch shows it
    EXPECT_EQ(cache_.PodsOnGpu("gpu-1", 5), 1) << "replaced, not added";
    EXPECT_EQ(cache_.Stats({}).reservations, 0u);
    cache_.DeletePod("default/job-x7k2p");
  }
}

// 64 bindings at once for one GPU holding 19 pods: exactly one wins.
void RaceBindings(ControllerTest& test, std::vector<json> objects, int racers,
                  const std::function<Decision(int)>& bind, int expected_allowed) {
  std::atomic<int> allowed{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < racers; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < racers) std::this_thread::yield();
      if (bind(i).allowed()) allowed.fetch_add(1);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(allowed.load(), expected_allowed);
}

TEST_F(ControllerTest, SixtyFourConcurrentBindingsForTheLastSlotAllowExactlyOne) {
  struct Case {
    const char* label;
    GpuScheme scheme;
    int containers;
    std::vector<int> gpus;
  };
  for (const Case& c : {Case{"index annotation", GpuScheme::kIndexAnnotation, 1, {1}},
                        Case{"allocation annotation", GpuScheme::kAllocationAnnotation, 1, {1}},
                        Case{"multi-container", GpuScheme::kAllocationAnnotation, 3, {1}},
                        Case{"multi-GPU", GpuScheme::kAllocationAnnotation, 1, {0, 1}}}) {
    SCOPED_TRACE(c.label);
    ClusterCache cache(EmbeddedRules(), Reader(), {});
    std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
    AddPods(objects, "gpu-1", 1, 19, c.scheme);
    AddPods(objects, "gpu-2", 1, 5, c.scheme);  // another node's GPU 1 does not count
    objects.push_back(MakeNode({.name = "gpu-2"}));
    objects.push_back(MakePod({.name = "done", .node = "gpu-1", .gpus = {1}, .phase = "Failed"}));
    for (int i = 0; i < 64; ++i) {
      objects.push_back(MakePod({.name = "racer-" + std::to_string(i),
                                 .gpus = c.gpus,
                                 .scheme = c.scheme,
                                 .containers = c.containers,
                                 .phase = "Pending"}));
    }
    ASSERT_TRUE(LoadClusterState(MakeList(objects), cache).ok());
    AdmissionController controller(cache, PolicyOptions{});
    RaceBindings(
        *this, objects, 64,
        [&](int i) {
          const std::string pod = "racer-" + std::to_string(i);
          ReviewDecodeResult decoded = DecodeAdmissionReview(MakeReview(
              "uid-" + pod, "pods", "binding", "CREATE", pod, MakeBinding(pod, "gpu-1")));
          return controller.Admit(facts_.Read(std::get<DecodedReview>(decoded)));
        },
        1);
  }
}

// The same race after the slot was freed by a deletion, a pod that finished, or a reservation
// that expired: the freed slot goes to exactly one binding.
TEST_F(ControllerTest, SixtyFourConcurrentBindingsForAFreedSlotAllowExactlyOne) {
  enum class Freed { kDeleted, kFinished, kReservationExpired };
  for (Freed freed : {Freed::kDeleted, Freed::kFinished, Freed::kReservationExpired}) {
    SCOPED_TRACE(static_cast<int>(freed));
    SteadyTime now{};
    ClusterCacheOptions options;
    options.now = [&now] { return now; };
    ClusterCache cache(EmbeddedRules(), Reader(), options);
    std::vector<json> objects = {MakeNode({.name = "gpu-1"})};
    AddPods(objects, "gpu-1", 1, freed == Freed::kReservationExpired ? 19 : 20);
    objects.push_back(MakePod({.name = "early", .gpus = {1}, .phase = "Pending"}));
    for (int i = 0; i < 64; ++i) {
      objects.push_back(
          MakePod({.name = "racer-" + std::to_string(i), .gpus = {1}, .phase = "Pending"}));
    }
    ASSERT_TRUE(LoadClusterState(MakeList(objects), cache).ok());
    AdmissionController controller(cache, PolicyOptions{});
    auto bind = [&](const std::string& pod) {
      ReviewDecodeResult decoded = DecodeAdmissionReview(
          MakeReview("uid-" + pod, "pods", "binding", "CREATE", pod, MakeBinding(pod, "gpu-1")));
      return controller.Admit(facts_.Read(std::get<DecodedReview>(decoded)));
    };
    switch (freed) {
      case Freed::kDeleted:
        cache.DeletePod("default/gpu-1-g1-0");
        break;
      case Freed::kFinished:
        cache.UpsertPod(
            MakePod({.name = "gpu-1-g1-0", .node = "gpu-1", .gpus = {1}, .phase = "Succeeded"}));
        break;
      case Freed::kReservationExpired:
        ASSERT_TRUE(bind("early").allowed());  // the 20th, reserved, never seen in the watch
        ASSERT_FALSE(bind("racer-0").allowed());
        now += std::chrono::seconds(31);
        ASSERT_EQ(cache.ExpireReservations(), 1u);
        break;
    }
    RaceBindings(
        *this, objects, 64, [&](int i) { return bind("racer-" + std::to_string(i)); }, 1);
  }
}

}  // namespace
}  // namespace cgpu

namespace cgpu {
namespace {

// Cluster-state text is read item by item with simdjson when it is a plain JSON list, as a whole
// simdjson document when it is another JSON shape, and through nlohmann (YAML, refusals)
// otherwise: every path must leave the cache in the same state, and refusals keep their words.
class ClusterStateLoadTest : public ::testing::Test {
 protected:
  static ClusterStats Load(const std::string& text) {
    ClusterCache cache(EmbeddedRules(), Reader(), {});
    StatusOr<ClusterStateCounts> counts = LoadClusterState(text, cache);
    EXPECT_TRUE(counts.ok()) << counts.status().message() << "\n" << text.substr(0, 300);
    EXPECT_TRUE(cache.synced());
    return cache.Stats(PolicyOptions{});
  }
  static std::string Error(const std::string& text) {
    ClusterCache cache(EmbeddedRules(), Reader(), {});
    StatusOr<ClusterStateCounts> counts = LoadClusterState(text, cache);
    EXPECT_FALSE(counts.ok()) << text;
    EXPECT_FALSE(cache.synced());
    return counts.ok() ? "" : counts.status().message();
  }
  static void ExpectSame(const ClusterStats& a, const ClusterStats& b, const std::string& what) {
    EXPECT_EQ(a.nodes, b.nodes) << what;
    EXPECT_EQ(a.cgpu_nodes, b.cgpu_nodes) << what;
    EXPECT_EQ(a.pods, b.pods) << what;
    EXPECT_EQ(a.max_pods_on_a_gpu, b.max_pods_on_a_gpu) << what;
    EXPECT_EQ(a.gpus_in_use, b.gpus_in_use) << what;
  }
};

std::vector<json> SomeObjects() {
  std::vector<json> objects = {MakeNode({.name = "gpu-1"}), MakeNode({.name = "gpu-2"})};
  for (int i = 0; i < 5; ++i) {
    objects.push_back(MakePod({.name = "p" + std::to_string(i), .node = "gpu-1", .gpus = {i % 2}}));
  }
  json odd = MakePod({.name = "odd", .node = "gpu-2", .gpus = {0}});
  odd["metadata"]["annotations"] = json::array();
  odd["status"] = 3.5;
  objects.push_back(odd);
  objects.push_back({{"kind", "ConfigMap"}, {"metadata", {{"name", "skipped"}}}});
  objects.push_back(7);  // not an object: skipped
  return objects;
}

TEST_F(ClusterStateLoadTest, EveryPathLoadsTheSameCache) {
  const std::vector<json> objects = SomeObjects();
  const json list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", objects}};
  const ClusterStats compact = Load(list.dump());
  EXPECT_EQ(compact.nodes, 2u);
  EXPECT_EQ(compact.pods, 6u);
  EXPECT_EQ(compact.max_pods_on_a_gpu, 3);
  ExpectSame(Load(list.dump(2)), compact, "pretty");
  // kind after items, numbers and nulls at the top: what kubectl prints, and odder.
  const std::string reordered =
      R"({"items": )" + json(objects).dump() +
      R"(, "n": 12, "z": null, "t": true, "kind": "List", "m": {"a": [1]}})";
  ExpectSame(Load(reordered), compact, "reordered");
  // An escaped key forces the whole-document path.
  ExpectSame(Load(R"({"k\u0069nd": "List", )" + reordered.substr(1)), compact, "escaped");
  // YAML goes through nlohmann.
  std::string yaml = "kind: List\nitems:\n";
  for (const json& object : objects) yaml += "- " + object.dump() + "\n";
  ExpectSame(Load(yaml), compact, "yaml");
}

TEST_F(ClusterStateLoadTest, TypedListsSingleObjectsAndEmptyLists) {
  json pods = json::array();
  for (int i = 0; i < 3; ++i) {
    json pod = MakePod({.name = "p" + std::to_string(i), .node = "gpu-1", .gpus = {1}});
    pod.erase("kind");  // a PodList's items may omit their kind
    pods.push_back(pod);
  }
  EXPECT_EQ(Load(json{{"kind", "PodList"}, {"items", pods}}.dump()).pods, 3u);
  EXPECT_EQ(Load(MakeNode({.name = "gpu-1"}).dump()).nodes, 1u);
  EXPECT_EQ(Load(R"({"kind": "NodeList", "items": null})").nodes, 0u);
  EXPECT_EQ(Load(R"({"kind": "List", "items": []})").nodes, 0u);
  EXPECT_EQ(Load(R"({"kind": "List"})").nodes, 0u);
}

TEST_F(ClusterStateLoadTest, RefusalsAreWordedAsBeforeAndLeaveTheCacheAlone) {
  const std::string list = MakeList(SomeObjects());
  EXPECT_EQ(Error(list.substr(0, list.size() - 3)), "input looks like JSON but does not parse");
  EXPECT_EQ(Error(list + " x"), "input looks like JSON but does not parse");
  EXPECT_EQ(Error(R"({"kind": "List", "items": [{"a": tru}]})"),
            "input looks like JSON but does not parse");
  EXPECT_EQ(Error(R"({"kind": "List", "items": {}})"), "List.items must be a list");
  EXPECT_EQ(Error(R"({"kind": "Secret"})"),
            "expected a Node, Pod, NodeList, PodList or List, got kind \"Secret\"");
  std::string deep = R"({"kind": "List", "items": [{"kind": "Pod", "x": )";
  for (int i = 0; i < kMaxJsonDepth; ++i) deep += "[";
  for (int i = 0; i < kMaxJsonDepth; ++i) deep += "]";
  EXPECT_EQ(Error(deep + "}]}"), "input is nested more than 128 levels deep");
}

}  // namespace
}  // namespace cgpu
