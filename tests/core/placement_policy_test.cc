#include "core/placement_policy.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

RuleTable Rules() {
  RuleTable rules;
  rules.max_pods_per_gpu = 20;
  rules.texts["pods-per-gpu"] = {
      "pods beyond 20 fail with \"Error occurs when creating cGPU instance\"",
      "keep at most 20 pods on each GPU"};
  return rules;
}

NodeFacts CgpuNode(int gpus = 4) {
  NodeFacts node;
  node.name = "gpu-1";
  node.cgpu_enabled = true;
  node.cgpu_enabled_by = "ack.node.gpu.schedule=cgpu";
  node.gpu_count = gpus;
  return node;
}

NodeEvaluation Evaluation(NodeVerdict verdict, std::vector<Finding> findings = {}) {
  NodeEvaluation evaluation;
  evaluation.verdict = verdict;
  evaluation.findings = std::move(findings);
  return evaluation;
}

Placement On(std::vector<int> gpus) {
  Placement placement{"default/web-0", "gpu-1", {}};
  placement.gpus.indices = std::move(gpus);
  return placement;
}

class PlacementTest : public ::testing::Test {
 protected:
  Decision Decide(const Placement& placement, std::vector<int> counts) {
    NodeView view{&node_, &evaluation_, std::move(counts)};
    return DecidePlacement(placement, view, rules_, options_);
  }

  RuleTable rules_ = Rules();
  NodeFacts node_ = CgpuNode();
  NodeEvaluation evaluation_ = Evaluation(NodeVerdict::kCompatible);
  PolicyOptions options_;
};

TEST_F(PlacementTest, AllowsTheTwentiethPodAndDeniesTheTwentyFirst) {
  EXPECT_TRUE(Decide(On({1}), {0, 19}).allowed());
  Decision denied = Decide(On({1}), {0, 20});
  EXPECT_EQ(denied.verdict, Verdict::kDenied);
  EXPECT_EQ(denied.reason, "pods-per-gpu");
  EXPECT_EQ(denied.code, 403);
  EXPECT_NE(denied.message.find("pod default/web-0 on node gpu-1: GPU 1 already runs 20 cGPU pods"),
            std::string::npos)
      << denied.message;
  EXPECT_NE(denied.message.find("Error occurs when creating cGPU instance"), std::string::npos);
  EXPECT_NE(denied.message.find("keep at most 20 pods on each GPU"), std::string::npos);
}

TEST_F(PlacementTest, MultiGpuPodNeedsRoomOnEveryGpu) {
  EXPECT_TRUE(Decide(On({0, 1}), {19, 19}).allowed());
  Decision denied = Decide(On({0, 1, 2}), {19, 20, 20});
  EXPECT_FALSE(denied.allowed());
  EXPECT_NE(denied.message.find("GPUs 1, 2 already run 20"), std::string::npos) << denied.message;
}

TEST_F(PlacementTest, LowerLimitsFromTheNodeAndTheOptions) {
  node_.max_pods_per_gpu = 8;
  EXPECT_TRUE(Decide(On({0}), {7}).allowed());
  Decision denied = Decide(On({0}), {8});
  EXPECT_FALSE(denied.allowed());
  EXPECT_NE(denied.message.find("ack.node.gpu.max-pod"), std::string::npos) << denied.message;

  node_.max_pods_per_gpu = 50;  // a node label never raises cGPU's limit
  EXPECT_FALSE(Decide(On({0}), {20}).allowed());
  options_.max_pods_per_gpu = 5;
  EXPECT_FALSE(Decide(On({0}), {5}).allowed());
  EXPECT_EQ(PodsPerGpuLimit(node_, rules_, options_).value, 5);
}

// The limit a node's ack.node.gpu.max-pod label is judged against: never the label itself.
TEST_F(PlacementTest, ConfiguredLimitLeavesTheNodeLabelOut) {
  EXPECT_EQ(ConfiguredPodsPerGpuLimit(rules_, options_).value, 20);
  EXPECT_EQ(ConfiguredPodsPerGpuLimit(rules_, options_).source,
            "the most cGPU supports on one GPU");
  options_.max_pods_per_gpu = 30;  // the option never raises cGPU's limit either
  EXPECT_EQ(ConfiguredPodsPerGpuLimit(rules_, options_).value, 20);
  options_.max_pods_per_gpu = 10;
  EXPECT_EQ(ConfiguredPodsPerGpuLimit(rules_, options_).value, 10);
  EXPECT_EQ(ConfiguredPodsPerGpuLimit(rules_, options_).source,
            "the limit set by --max-pods-per-gpu");
  node_.max_pods_per_gpu = 4;
  EXPECT_EQ(ConfiguredPodsPerGpuLimit(rules_, options_).value, 10);
  EXPECT_EQ(PodsPerGpuLimit(node_, rules_, options_).value, 4);
}

TEST_F(PlacementTest, OneGpuNodeNeedsNoAnnotation) {
  node_ = CgpuNode(1);
  EXPECT_TRUE(Decide(On({}), {19}).allowed());
  EXPECT_FALSE(Decide(On({}), {20}).allowed());
}

TEST_F(PlacementTest, UnknownGpuFollowsTheUnknownPolicyUnlessEveryGpuIsFull) {
  Decision warned = Decide(On({}), {20, 3});
  EXPECT_TRUE(warned.allowed());
  EXPECT_EQ(warned.reason, "gpu-unknown");
  ASSERT_EQ(warned.warnings.size(), 1u);
  EXPECT_NE(warned.warnings[0].find("cannot tell which GPU"), std::string::npos);

  options_.unknown = UnknownPolicy::kAllow;
  EXPECT_TRUE(Decide(On({}), {20, 3}).warnings.empty());
  options_.unknown = UnknownPolicy::kDeny;
  EXPECT_FALSE(Decide(On({}), {20, 3}).allowed());

  options_.unknown = UnknownPolicy::kAllow;
  Decision full = Decide(On({}), {20, 20, 20, 20});
  EXPECT_FALSE(full.allowed());
  EXPECT_NE(full.message.find("every GPU of the node already runs 20"), std::string::npos);
}

TEST_F(PlacementTest, IncompatibleNodeIsDeniedWithItsFirstProblemAndRemedy) {
  evaluation_ = Evaluation(NodeVerdict::kIncompatible,
                           {{"driver", RuleVerdict::kIncompatible,
                             "cGPU 1.5.2 does not support NVIDIA driver 535.104.05; upgrade cGPU"},
                            {"nvml", RuleVerdict::kIncompatible, "NVML is blocked"},
                            {"kernel", RuleVerdict::kUnknown, "kernel unknown"}});
  Decision denied = Decide(On({1}), {0, 0});
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "driver");
  EXPECT_NE(denied.message.find("cannot run cGPU pod default/web-0 on node gpu-1: the node's cGPU "
                                "setup is incompatible: cGPU 1.5.2 does not support NVIDIA driver "
                                "535.104.05; upgrade cGPU (1 more: nvml"),
            std::string::npos)
      << denied.message;
}

TEST_F(PlacementTest, UnknownCompatibilityWarnsByDefaultAndStillCounts) {
  evaluation_ = Evaluation(NodeVerdict::kUnknown,
                           {{"driver", RuleVerdict::kUnknown, "driver version unknown"}});
  Decision allowed = Decide(On({1}), {0, 3});
  EXPECT_TRUE(allowed.allowed());
  ASSERT_EQ(allowed.warnings.size(), 1u);
  EXPECT_NE(allowed.warnings[0].find("driver version unknown"), std::string::npos);
  // The pod limit is still enforced on a node of unknown compatibility.
  EXPECT_FALSE(Decide(On({1}), {0, 20}).allowed());
  options_.unknown = UnknownPolicy::kDeny;
  EXPECT_EQ(Decide(On({1}), {0, 3}).reason, "driver");
  EXPECT_FALSE(Decide(On({1}), {0, 3}).allowed());
}

TEST_F(PlacementTest, NonCgpuAndUnknownNodes) {
  node_.cgpu_enabled = false;
  EXPECT_EQ(Decide(On({1}), {0, 25}).reason, "not-cgpu-node");
  EXPECT_TRUE(Decide(On({1}), {0, 25}).allowed());

  NodeView missing;
  Decision unknown = DecidePlacement(On({1}), missing, rules_, options_);
  EXPECT_TRUE(unknown.allowed());
  EXPECT_EQ(unknown.reason, "node-unknown");
  options_.unknown = UnknownPolicy::kDeny;
  EXPECT_FALSE(DecidePlacement(On({1}), missing, rules_, options_).allowed());
}

TEST(NodeChangeTest, DeniesOnlyNewlyEnablingCgpuOnAnIncompatibleNode) {
  AdmissionRequest update;
  update.operation = Operation::kUpdate;
  NodeFacts before = CgpuNode();
  before.cgpu_enabled = false;
  NodeFacts after = CgpuNode();
  const NodeEvaluation bad = Evaluation(
      NodeVerdict::kIncompatible, {{"kernel", RuleVerdict::kIncompatible, "kernel 6.6 too new"}});
  PolicyOptions options;

  Decision denied = DecideNodeChange(update, &before, after, bad, options);
  EXPECT_FALSE(denied.allowed());
  EXPECT_EQ(denied.reason, "kernel");
  EXPECT_NE(denied.message.find("cannot enable cGPU isolation (ack.node.gpu.schedule=cgpu) on node "
                                "gpu-1: its cGPU setup is incompatible: kernel 6.6 too new"),
            std::string::npos)
      << denied.message;
  EXPECT_FALSE(DecideNodeChange(AdmissionRequest{}, nullptr, after, bad, options).allowed());

  // Already enabled: allowed with a warning. Status updates: always allowed.
  Decision warned = DecideNodeChange(update, &after, after, bad, options);
  EXPECT_TRUE(warned.allowed());
  EXPECT_EQ(warned.warnings.size(), 1u);
  AdmissionRequest status = update;
  status.sub_resource = "status";
  EXPECT_TRUE(DecideNodeChange(status, &before, after, bad, options).allowed());
  // Not cGPU at all, or compatible: allowed.
  NodeFacts plain = CgpuNode();
  plain.cgpu_enabled = false;
  EXPECT_EQ(DecideNodeChange(update, nullptr, plain, bad, options).reason, "not-cgpu-node");
  EXPECT_TRUE(
      DecideNodeChange(update, &before, after, Evaluation(NodeVerdict::kCompatible), options)
          .allowed());
}

TEST(NodeChangeTest, ANodeRegisteringWithUnknownFactsIsLetInWhateverTheUnknownPolicy) {
  // Its facts come from the node-facts agent, which runs on it only once it has joined:
  // refusing its registration would keep it out for good.
  const NodeEvaluation unknown = Evaluation(
      NodeVerdict::kUnknown, {{"driver", RuleVerdict::kUnknown, "no driver version label"}});
  PolicyOptions options;
  options.unknown = UnknownPolicy::kDeny;
  AdmissionRequest create;
  create.operation = Operation::kCreate;
  const Decision registering = DecideNodeChange(create, nullptr, CgpuNode(), unknown, options);
  EXPECT_TRUE(registering.allowed());
  ASSERT_EQ(registering.warnings.size(), 1u);
  EXPECT_NE(registering.warnings[0].find("a registering node is let in"), std::string::npos);
  // An existing node turning cGPU on with unknown facts still follows the policy.
  AdmissionRequest update;
  update.operation = Operation::kUpdate;
  NodeFacts before = CgpuNode();
  before.cgpu_enabled = false;
  EXPECT_FALSE(DecideNodeChange(update, &before, CgpuNode(), unknown, options).allowed());
}

TEST(StaleStateTest, FailClosedDeniesAndFailOpenAllowsBothSayingWhy) {
  const Placement placement{"ml/llm-3", "gpu-a10-1", {}};
  const Decision closed = DecideOnStaleState(placement, "the pods watch has been down for 31 s",
                                             StalePolicy::kFailClosed);
  EXPECT_EQ(closed.verdict, Verdict::kDenied);
  EXPECT_EQ(closed.code, 503);
  EXPECT_EQ(closed.reason, "cluster-state-stale");
  EXPECT_EQ(closed.message,
            "cannot check cGPU pod ml/llm-3 on node gpu-a10-1: cgpu-guard's view of the cluster is "
            "stale (the pods watch has been down for 31 s), so pods per GPU cannot be counted; "
            "retry once its watch of the API server is back");

  const Decision open = DecideOnStaleState(placement, "the pods watch has been down for 31 s",
                                           StalePolicy::kFailOpen);
  EXPECT_EQ(open.verdict, Verdict::kAllowed);
  EXPECT_EQ(open.reason, "cluster-state-stale");
  ASSERT_EQ(open.warnings.size(), 1u);
  EXPECT_EQ(open.warnings[0],
            "cgpu-guard: pod ml/llm-3 on node gpu-a10-1 was allowed without checking GPU limits or "
            "node compatibility: its view of the cluster is stale (the pods watch has been down "
            "for 31 s)");
  EXPECT_EQ(ToString(StalePolicy::kFailOpen), "fail-open");
  EXPECT_EQ(ToString(StalePolicy::kFailClosed), "fail-closed");
}

TEST(ModeTest, WarnAndDryRunLetDenialsThrough) {
  const Decision denied = Deny("pods-per-gpu", "GPU 1 is full");
  EXPECT_FALSE(ApplyMode(denied, EnforcementMode::kEnforce).allowed());

  Decision warned = ApplyMode(denied, EnforcementMode::kWarn);
  EXPECT_TRUE(warned.allowed());
  EXPECT_TRUE(warned.would_deny);
  EXPECT_EQ(warned.reason, "pods-per-gpu");
  ASSERT_EQ(warned.warnings.size(), 1u);
  EXPECT_EQ(warned.warnings[0], "cgpu-guard (warn mode) would deny: GPU 1 is full");

  Decision dry = ApplyMode(denied, EnforcementMode::kDryRun);
  EXPECT_TRUE(dry.allowed());
  EXPECT_TRUE(dry.would_deny);
  EXPECT_TRUE(dry.warnings.empty());
  EXPECT_EQ(dry.message, "GPU 1 is full");

  EXPECT_FALSE(ApplyMode(Allow("x"), EnforcementMode::kWarn).would_deny);
}

}  // namespace
}  // namespace cgpu
