// What each request needs before it is decided: the pure first step of every admission, over
// what the cluster state knows (adapters/admission_controller performs the reads it asks for).
#include "core/admission_plan.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

ReviewFacts PlanBindingReview(std::string uid = "uid-7", std::vector<int> gpus = {}) {
  static constexpr ResourceRoute kBinding = kResourceRoutes[1];
  ReviewFacts facts;
  facts.route = &kBinding;
  facts.request.operation = Operation::kCreate;
  facts.binding = BindingFacts{"team-a", "train-7", std::move(uid), "gpu-1", {}};
  facts.binding->gpus.indices = std::move(gpus);
  return facts;
}

ReviewFacts PlanPodReview(Operation operation, std::string node, std::vector<int> gpus) {
  static constexpr ResourceRoute kPods = kResourceRoutes[0];
  ReviewFacts facts;
  facts.route = &kPods;
  facts.request.operation = operation;
  PodFacts pod;
  pod.namespace_name = "team-a";
  pod.name = "train-7";
  pod.uid = "uid-7";
  pod.node_name = std::move(node);
  pod.shares_gpu = true;
  pod.gpus.indices = std::move(gpus);
  facts.pod = pod;
  return facts;
}

BindingLookup Synced(std::optional<KnownNode> node, std::optional<KnownPod> pod,
                     bool can_read_pod = true) {
  return BindingLookup{std::move(node), std::move(pod), true, can_read_pod};
}

KnownPod PendingCgpuPod(std::string uid = "uid-7", std::vector<int> gpus = {}) {
  return KnownPod{std::move(uid), true, "", std::move(gpus)};
}

constexpr KnownNode kFourGpus{true, 4};

TEST(DecidingPointTest, DeleteConnectAndUnroutedResourcesAreNotJudged) {
  ReviewFacts facts = PlanBindingReview();
  EXPECT_EQ(DecidingPoint(facts), EnforcementPoint::kBinding);
  facts.request.operation = Operation::kDelete;
  EXPECT_EQ(DecidingPoint(facts), EnforcementPoint::kNone);
  facts.request.operation = Operation::kConnect;
  EXPECT_EQ(DecidingPoint(facts), EnforcementPoint::kNone);
  facts.request.operation = Operation::kCreate;
  facts.route = nullptr;
  EXPECT_EQ(DecidingPoint(facts), EnforcementPoint::kNone);
}

TEST(PlanBindingTest, AnUnreadableBindingIsABadObjectNamingItsResource) {
  ReviewFacts facts = PlanBindingReview();
  facts.binding.reset();
  facts.object_error = "target.name is missing";
  const BindingPlan plan = PlanBinding(facts, Synced(kFourGpus, std::nullopt));
  ASSERT_TRUE(plan.decided);
  EXPECT_EQ(plan.decided->verdict, Verdict::kErrored);
  EXPECT_EQ(plan.decided->code, 400);
  EXPECT_EQ(plan.decided->message, "cannot read the pods/binding request: target.name is missing");
}

TEST(PlanBindingTest, ANonCgpuNodeIsAllowedEvenBeforeTheStateIsRead) {
  BindingLookup lookup{KnownNode{false, 8}, std::nullopt, /*synced=*/false, true};
  const BindingPlan plan = PlanBinding(PlanBindingReview(), lookup);
  ASSERT_TRUE(plan.decided);
  EXPECT_EQ(plan.decided->reason, "not-cgpu-node");
}

TEST(PlanBindingTest, BeforeTheStateIsReadACgpuOrUnknownNodeIsAnErrorToRetry) {
  for (const std::optional<KnownNode>& node :
       {std::optional<KnownNode>(kFourGpus), std::optional<KnownNode>()}) {
    BindingLookup lookup{node, PendingCgpuPod(), /*synced=*/false, true};
    const BindingPlan plan = PlanBinding(PlanBindingReview(), lookup);
    ASSERT_TRUE(plan.decided);
    EXPECT_EQ(plan.decided->reason, "cluster-state-not-synced");
    EXPECT_EQ(plan.decided->code, 503);
  }
}

TEST(PlanBindingTest, KnownPodsWithoutCgpuOrBoundAlreadyAreAllowedUnread) {
  KnownPod cpu_pod = PendingCgpuPod();
  cpu_pod.shares_gpu = false;
  BindingPlan plan = PlanBinding(PlanBindingReview(), Synced(kFourGpus, cpu_pod));
  ASSERT_TRUE(plan.decided);
  EXPECT_EQ(plan.decided->reason, "not-cgpu-pod");

  KnownPod bound = PendingCgpuPod();
  bound.node = "gpu-2";
  plan = PlanBinding(PlanBindingReview(), Synced(kFourGpus, bound));
  ASSERT_TRUE(plan.decided);
  EXPECT_EQ(plan.decided->reason, "pod-already-bound");
}

TEST(PlanBindingTest, AnEarlierPodOfTheSameNameIsNotThisOne) {
  // The cache holds a bound CPU pod under the name, with another uid: this pod is read instead.
  KnownPod earlier{"uid-old", false, "gpu-2", {}};
  const BindingPlan plan = PlanBinding(PlanBindingReview("uid-7"), Synced(kFourGpus, earlier));
  EXPECT_FALSE(plan.decided);
  EXPECT_FALSE(plan.pod_known);
  EXPECT_TRUE(plan.read_pod);
  EXPECT_EQ(plan.pod_uid, "uid-7");
}

TEST(PlanBindingTest, TheCachedAllocationIsNeverTrustedOnAMultiGpuNode) {
  // The watch may hold an earlier attempt's allocation: the pod is read from the API server.
  const BindingPlan plan =
      PlanBinding(PlanBindingReview(), Synced(kFourGpus, PendingCgpuPod("uid-7", {3})));
  EXPECT_FALSE(plan.decided);
  EXPECT_TRUE(plan.read_pod);
  EXPECT_TRUE(plan.pod_known);
  EXPECT_FALSE(plan.placement.gpus.known());
}

TEST(PlanBindingTest, NothingIsReadWhenTheBindingNamesTheGpuOrTheNodeHasOne) {
  BindingPlan plan =
      PlanBinding(PlanBindingReview("uid-7", {2}), Synced(kFourGpus, PendingCgpuPod()));
  EXPECT_FALSE(plan.read_pod);
  EXPECT_EQ(plan.placement.gpus.indices, std::vector<int>{2});

  plan = PlanBinding(PlanBindingReview(), Synced(KnownNode{true, 1}, PendingCgpuPod()));
  EXPECT_FALSE(plan.decided);
  EXPECT_FALSE(plan.read_pod);
  EXPECT_EQ(plan.placement.node, "gpu-1");
  EXPECT_EQ(plan.placement.pod, "team-a/train-7");
}

TEST(PlanBindingTest, AnUnknownPodIsReadEvenWhenTheBindingNamesTheGpu) {
  // A reservation is only ever made for a pod known to exist.
  const BindingPlan plan = PlanBinding(PlanBindingReview("uid-7", {1}), Synced(kFourGpus, {}));
  EXPECT_TRUE(plan.read_pod);
  EXPECT_FALSE(plan.pod_known);
}

TEST(PlanBindingTest, WithoutLiveReadsTheFileIsAllThereIs) {
  BindingPlan plan =
      PlanBinding(PlanBindingReview(""), Synced(kFourGpus, PendingCgpuPod("uid-7", {3}), false));
  EXPECT_FALSE(plan.read_pod);
  EXPECT_EQ(plan.placement.gpus.indices, std::vector<int>{3});
  EXPECT_EQ(plan.pod_uid, "uid-7");  // the Binding had none: the known pod's
  EXPECT_FALSE(DecideUnreadPod(plan, *PlanBindingReview("").binding, UnknownPolicy::kDeny));

  // A pod the file does not have, on a Binding without a GPU: unknown, by the policy.
  const ReviewFacts facts = PlanBindingReview();
  plan = PlanBinding(facts, Synced(kFourGpus, std::nullopt, false));
  const std::optional<Decision> unknown =
      DecideUnreadPod(plan, *facts.binding, UnknownPolicy::kDeny);
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->verdict, Verdict::kDenied);
  EXPECT_EQ(unknown->reason, "pod-unknown");
  EXPECT_NE(unknown->message.find("pod team-a/train-7 is not in cgpu-guard's cluster state"),
            std::string::npos)
      << unknown->message;
  EXPECT_FALSE(DecideUnreadPod(plan, *facts.binding, UnknownPolicy::kAllow)->warnings.size());
}

TEST(ApplyPodReadTest, WhatThePodSaysNowSettlesOrFillsThePlan) {
  const ReviewFacts facts = PlanBindingReview("uid-7");
  BindingPlan plan = PlanBinding(facts, Synced(kFourGpus, std::nullopt));
  ASSERT_TRUE(plan.read_pod);

  EXPECT_EQ(ApplyPodRead(plan, *facts.binding, std::nullopt)->reason, "pod-not-found");

  PodFacts pod;
  pod.uid = "uid-other";
  pod.shares_gpu = true;
  EXPECT_EQ(ApplyPodRead(plan, *facts.binding, pod)->reason, "pod-replaced");

  pod.uid = "uid-7";
  pod.shares_gpu = false;
  EXPECT_EQ(ApplyPodRead(plan, *facts.binding, pod)->reason, "not-cgpu-pod");

  pod.shares_gpu = true;
  pod.node_name = "gpu-3";
  EXPECT_EQ(ApplyPodRead(plan, *facts.binding, pod)->reason, "pod-already-bound");

  pod.node_name = "";
  pod.gpus.indices = {2};
  EXPECT_FALSE(ApplyPodRead(plan, *facts.binding, pod));
  EXPECT_EQ(plan.placement.gpus.indices, std::vector<int>{2});
}

TEST(ApplyPodReadTest, TheBindingsOwnGpuWinsOverThePods) {
  const ReviewFacts facts = PlanBindingReview("", {1});
  BindingPlan plan = PlanBinding(facts, Synced(kFourGpus, std::nullopt));
  PodFacts pod;
  pod.uid = "uid-read";
  pod.shares_gpu = true;
  pod.gpus.indices = {3};
  EXPECT_FALSE(ApplyPodRead(plan, *facts.binding, pod));
  EXPECT_EQ(plan.placement.gpus.indices, std::vector<int>{1});
  EXPECT_EQ(plan.pod_uid, "uid-read");
}

TEST(ApplyFailedPodReadTest, AnUnknownPodIsUnknownAKnownOneIsPlacedWithoutItsGpu) {
  const ReviewFacts facts = PlanBindingReview();
  BindingPlan unknown_pod = PlanBinding(facts, Synced(kFourGpus, std::nullopt));
  const std::optional<Decision> decided =
      ApplyFailedPodRead(unknown_pod, "cannot read pod team-a/train-7", UnknownPolicy::kWarn);
  ASSERT_TRUE(decided);
  EXPECT_TRUE(decided->allowed());
  EXPECT_EQ(decided->reason, "pod-unknown");
  ASSERT_EQ(decided->warnings.size(), 1u);
  EXPECT_NE(decided->warnings[0].find("so its cGPU use on node gpu-1 was not checked"),
            std::string::npos)
      << decided->warnings[0];

  BindingPlan known_pod = PlanBinding(facts, Synced(kFourGpus, PendingCgpuPod("uid-7", {3})));
  EXPECT_FALSE(ApplyFailedPodRead(known_pod, "no answer", UnknownPolicy::kDeny));
  EXPECT_FALSE(known_pod.placement.gpus.known());
  EXPECT_EQ(known_pod.placement.gpus.error, "no answer");
}

TEST(PlanPodAdmissionTest, OnlyABoundCgpuPodWhoseGpusChangeIsPlaced) {
  PodPlan plan = PlanPodAdmission(PlanPodReview(Operation::kCreate, "", {}), true, true);
  EXPECT_EQ(plan.decided->reason, "not-bound");

  ReviewFacts cpu = PlanPodReview(Operation::kCreate, "gpu-1", {});
  cpu.pod->shares_gpu = false;
  EXPECT_EQ(PlanPodAdmission(cpu, true, true).decided->reason, "not-cgpu-pod");

  ReviewFacts relabel = PlanPodReview(Operation::kUpdate, "gpu-1", {1});
  relabel.old_pod = relabel.pod;
  EXPECT_EQ(PlanPodAdmission(relabel, true, true).decided->reason, "gpus-unchanged");

  ReviewFacts moved = relabel;
  moved.pod->gpus.indices = {2};
  plan = PlanPodAdmission(moved, true, true);
  ASSERT_FALSE(plan.decided);
  EXPECT_EQ(plan.placement.pod, "team-a/train-7");
  EXPECT_EQ(plan.placement.gpus.indices, std::vector<int>{2});

  EXPECT_EQ(PlanPodAdmission(moved, false, true).decided->reason, "not-cgpu-node");
  EXPECT_EQ(PlanPodAdmission(moved, std::nullopt, false).decided->reason,
            "cluster-state-not-synced");
}

TEST(PlanPodAdmissionTest, AGenerateNamePodIsKeyedByItsUid) {
  ReviewFacts facts = PlanPodReview(Operation::kCreate, "gpu-1", {0});
  facts.pod->name = "";
  const PodPlan plan = PlanPodAdmission(facts, true, true);
  ASSERT_FALSE(plan.decided);
  EXPECT_EQ(plan.placement.pod, "team-a/(uid uid-7)");
}

TEST(PlanPodAdmissionTest, AnUnreadablePodIsABadObject) {
  ReviewFacts facts = PlanPodReview(Operation::kCreate, "gpu-1", {0});
  facts.pod.reset();
  facts.object_error = "spec is not an object";
  const PodPlan plan = PlanPodAdmission(facts, true, true);
  ASSERT_TRUE(plan.decided);
  EXPECT_EQ(plan.decided->message, "cannot read the pod: spec is not an object");
}

}  // namespace
}  // namespace cgpu
