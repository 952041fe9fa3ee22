// Which Events decisions and node verdicts call for: decisions made by the real placement policy,
// so the mapping is tested against what the policy actually says.
#include "core/event_intent.h"

#include <gtest/gtest.h>

#include "core/placement_policy.h"

namespace cgpu {
namespace {

RuleTable EvRules() {
  RuleTable rules;
  rules.max_pods_per_gpu = 20;
  rules.texts["pods-per-gpu"] = {"pods beyond 20 fail", "keep at most 20 pods on each GPU"};
  return rules;
}

NodeFacts EvNode() {
  NodeFacts node;
  node.name = "gpu-1";
  node.uid = "node-uid-1";
  node.cgpu_enabled = true;
  node.cgpu_enabled_by = "ack.node.gpu.schedule=cgpu";
  node.gpu_count = 2;
  return node;
}

NodeEvaluation EvEvaluation(NodeVerdict verdict, std::vector<Finding> findings = {}) {
  NodeEvaluation evaluation;
  evaluation.verdict = verdict;
  evaluation.findings = std::move(findings);
  return evaluation;
}

ReviewFacts BindingReview(std::string uid = "pod-uid-7") {
  static constexpr ResourceRoute kBinding = kResourceRoutes[1];
  ReviewFacts facts;
  facts.route = &kBinding;
  facts.request.namespace_name = "team-a";
  facts.request.name = "train-7";
  facts.request.sub_resource = "binding";
  facts.binding = BindingFacts{"team-a", "train-7", std::move(uid), "gpu-1", {}};
  return facts;
}

class PodEventTest : public ::testing::Test {
 protected:
  Decision Place(std::vector<int> gpus, std::vector<int> counts) {
    Placement placement{"team-a/train-7", "gpu-1", {}};
    placement.gpus.indices = std::move(gpus);
    NodeView view{&node_, &evaluation_, std::move(counts)};
    return ApplyMode(DecidePlacement(placement, view, rules_, options_), options_.mode);
  }

  RuleTable rules_ = EvRules();
  NodeFacts node_ = EvNode();
  NodeEvaluation evaluation_ = EvEvaluation(NodeVerdict::kCompatible);
  PolicyOptions options_;
};

TEST_F(PodEventTest, AFullGpuDenialIsAGpuFullWarningOnThePodWithItsUid) {
  const Decision denied = Place({1}, {0, 20});
  ASSERT_EQ(denied.verdict, Verdict::kDenied);
  const std::optional<EventIntent> event = PodEventFor(BindingReview(), denied);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->reason, kReasonGpuFull);
  EXPECT_TRUE(event->warning);
  EXPECT_EQ(event->action, "Bind");
  EXPECT_EQ(event->regarding.kind, "Pod");
  EXPECT_EQ(event->regarding.namespace_name, "team-a");
  EXPECT_EQ(event->regarding.name, "train-7");
  EXPECT_EQ(event->regarding.uid, "pod-uid-7");
  EXPECT_NE(event->note.find("GPU 1 already runs 20 cGPU pods"), std::string::npos) << event->note;
  EXPECT_FALSE(event->state_report);
}

TEST_F(PodEventTest, AnIncompatibleNodeDenialNamesTheNodeAsTheCause) {
  evaluation_ = EvEvaluation(NodeVerdict::kIncompatible,
                             {{"driver", RuleVerdict::kIncompatible, "driver 470 is too old"}});
  const std::optional<EventIntent> event = PodEventFor(BindingReview(), Place({0}, {}));
  ASSERT_TRUE(event);
  EXPECT_EQ(event->reason, kReasonNodeIncompatible);
  EXPECT_NE(event->note.find("driver 470 is too old"), std::string::npos) << event->note;
}

TEST_F(PodEventTest, AnUnknownGpuAllowedWithAWarningIsUnchecked) {
  // No GPU written on the pod, node with two GPUs: allowed with a warning (unknown policy warn).
  const Decision allowed = Place({}, {3, 3});
  ASSERT_TRUE(allowed.allowed());
  ASSERT_FALSE(allowed.warnings.empty());
  const std::optional<EventIntent> event = PodEventFor(BindingReview(), allowed);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->reason, kReasonUnchecked);
  EXPECT_NE(event->note.find("allowed"), std::string::npos) << event->note;
}

TEST_F(PodEventTest, AnUnknownNodeVerdictDeniedByPolicyIsUncheckedNotIncompatible) {
  options_.unknown = UnknownPolicy::kDeny;
  evaluation_ = EvEvaluation(NodeVerdict::kUnknown,
                             {{"driver", RuleVerdict::kUnknown, "no driver version label"}});
  const Decision denied = Place({0}, {});
  ASSERT_EQ(denied.verdict, Verdict::kDenied);
  // The reason is the rule's name either way; the concern tells them apart.
  EXPECT_EQ(denied.reason, "driver");
  const std::optional<EventIntent> event = PodEventFor(BindingReview(), denied);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->reason, kReasonUnchecked);
}

TEST_F(PodEventTest, WarnModeRecordsWhatEnforcementWouldHaveDenied) {
  options_.mode = EnforcementMode::kWarn;
  const Decision allowed = Place({1}, {0, 20});
  ASSERT_TRUE(allowed.allowed());
  const std::optional<EventIntent> event = PodEventFor(BindingReview(), allowed);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->reason, kReasonWouldDeny);
  EXPECT_NE(event->note.find("would deny"), std::string::npos) << event->note;
}

TEST_F(PodEventTest, StaleStateFailOpenIsUnchecked) {
  const Decision allowed =
      DecideOnStaleState({"team-a/train-7", "gpu-1", {}}, "watch down 2m", StalePolicy::kFailOpen);
  const std::optional<EventIntent> event = PodEventFor(BindingReview(), allowed);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->reason, kReasonUnchecked);
}

TEST_F(PodEventTest, PlainAllowsErrorsDryRunsAndNodesHaveNoEvent) {
  EXPECT_FALSE(PodEventFor(BindingReview(), Place({1}, {0, 3})));
  EXPECT_FALSE(PodEventFor(BindingReview(), Errored("bad-object", "garbled", 400)));
  ReviewFacts dry_run = BindingReview();
  dry_run.request.dry_run = true;
  EXPECT_FALSE(PodEventFor(dry_run, Place({1}, {0, 20})));
  static constexpr ResourceRoute kNodes = kResourceRoutes[3];
  ReviewFacts node_review;
  node_review.route = &kNodes;
  node_review.request.name = "gpu-1";
  EXPECT_FALSE(PodEventFor(node_review, Deny("driver", "incompatible")));
}

TEST_F(PodEventTest, APodCreateUsesThePodsOwnIdentity) {
  static constexpr ResourceRoute kPods = kResourceRoutes[0];
  ReviewFacts facts;
  facts.route = &kPods;
  facts.request.operation = Operation::kCreate;
  PodFacts pod;
  pod.namespace_name = "team-b";
  pod.name = "direct-1";
  pod.uid = "uid-direct";
  facts.pod = pod;
  const std::optional<EventIntent> event = PodEventFor(facts, Place({1}, {0, 20}));
  ASSERT_TRUE(event);
  EXPECT_EQ(event->action, "Create");
  EXPECT_EQ(event->regarding.namespace_name, "team-b");
  EXPECT_EQ(event->regarding.uid, "uid-direct");
}

TEST(NodeVerdictTrackerTest, TellsFirstSightingsOfTroubleAndChangesOnly) {
  NodeVerdictTracker tracker;
  const NodeFacts node = EvNode();
  const NodeEvaluation bad =
      EvEvaluation(NodeVerdict::kIncompatible, {{"kernel", RuleVerdict::kIncompatible, "k 3.10"}});
  const NodeEvaluation good = EvEvaluation(NodeVerdict::kCompatible);

  std::optional<EventIntent> first = tracker.Observe(node, bad);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->reason, kReasonNodeIncompatible);
  EXPECT_EQ(first->regarding.kind, "Node");
  EXPECT_EQ(first->regarding.uid, "node-uid-1");
  EXPECT_TRUE(first->regarding.namespace_name.empty());
  EXPECT_TRUE(first->state_report);
  EXPECT_NE(first->note.find("k 3.10"), std::string::npos);

  // A resync shows the same node again: nothing new.
  EXPECT_FALSE(tracker.Observe(node, bad));
  EXPECT_FALSE(tracker.Observe(node, bad));

  // Failing another rule is a change, though still incompatible.
  const NodeEvaluation worse = EvEvaluation(NodeVerdict::kIncompatible,
                                            {{"kernel", RuleVerdict::kIncompatible, "k 3.10"},
                                             {"driver", RuleVerdict::kIncompatible, "driver 470"}});
  ASSERT_TRUE(tracker.Observe(node, worse));

  std::optional<EventIntent> fixed = tracker.Observe(node, good);
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->reason, kReasonNodeCompatible);
  EXPECT_FALSE(fixed->warning);
  EXPECT_FALSE(tracker.Observe(node, good));
}

TEST(NodeVerdictTrackerTest, QuietForCompatibleAndNonCgpuNodesAndForgetsGoneOnes) {
  NodeVerdictTracker tracker;
  NodeFacts node = EvNode();
  EXPECT_FALSE(tracker.Observe(node, EvEvaluation(NodeVerdict::kCompatible)));
  NodeFacts plain = EvNode();
  plain.name = "cpu-1";
  plain.cgpu_enabled = false;
  EXPECT_FALSE(tracker.Observe(plain, EvEvaluation(NodeVerdict::kNotCgpu)));
  EXPECT_EQ(tracker.size(), 1u);

  const NodeEvaluation unknown =
      EvEvaluation(NodeVerdict::kUnknown, {{"driver", RuleVerdict::kUnknown, "no driver label"}});
  std::optional<EventIntent> event = tracker.Observe(node, unknown);
  ASSERT_TRUE(event);
  EXPECT_EQ(event->reason, kReasonNodeUnknown);

  tracker.Forget("gpu-1");
  EXPECT_EQ(tracker.size(), 0u);
  // Back after a deletion: a first sighting again.
  EXPECT_TRUE(tracker.Observe(node, unknown));
}

}  // namespace
}  // namespace cgpu
