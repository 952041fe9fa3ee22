#include "core/gpu_ledger.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

using std::chrono::seconds;

PodFacts Pod(const std::string& name, const std::string& node, std::vector<int> gpus,
             PodPhase phase = PodPhase::kRunning) {
  PodFacts pod;
  pod.namespace_name = "default";
  pod.name = name;
  pod.node_name = node;
  pod.phase = phase;
  pod.shares_gpu = true;
  pod.gpus.indices = std::move(gpus);
  return pod;
}

const SteadyTime kT0{};

TEST(GpuLedgerTest, CountsBoundCgpuPodsOncePerGpu) {
  GpuLedger ledger;
  ledger.UpsertPod(Pod("a", "n1", {1}));
  ledger.UpsertPod(Pod("b", "n1", {1}));
  ledger.UpsertPod(Pod("c", "n1", {0, 1}));  // a multi-GPU pod counts on each of its GPUs
  EXPECT_EQ(ledger.PodsOnGpu("n1", 0), 1);
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 3);
  EXPECT_EQ(ledger.PodsOnGpu("n1", 2), 0);
  EXPECT_EQ(ledger.PodsOnGpu("n2", 1), 0);
  EXPECT_EQ(ledger.PodsPerGpu("n1"), (std::vector<int>{1, 3}));
}

TEST(GpuLedgerTest, UnboundFinishedAndNonCgpuPodsDoNotCount) {
  GpuLedger ledger;
  ledger.UpsertPod(Pod("pending", "", {1}, PodPhase::kPending));
  ledger.UpsertPod(Pod("done", "n1", {1}, PodPhase::kSucceeded));
  ledger.UpsertPod(Pod("failed", "n1", {1}, PodPhase::kFailed));
  PodFacts plain = Pod("plain", "n1", {1});
  plain.shares_gpu = false;
  ledger.UpsertPod(plain);
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 0);
  // Every pod is remembered, so a binding can tell a plain pod from an unseen one.
  ASSERT_NE(ledger.FindPod("default/plain"), nullptr);
  EXPECT_FALSE(ledger.FindPod("default/plain")->shares_gpu);
  EXPECT_EQ(ledger.FindPod("default/nobody"), nullptr);
}

TEST(GpuLedgerTest, UpdatesMoveCountsAndDeletesRemoveThem) {
  GpuLedger ledger;
  ledger.UpsertPod(Pod("a", "n1", {1}));
  ledger.UpsertPod(Pod("a", "n1", {2}));  // the same pod, GPU changed
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 0);
  EXPECT_EQ(ledger.PodsOnGpu("n1", 2), 1);
  ledger.UpsertPod(Pod("a", "n1", {2}, PodPhase::kSucceeded));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 2), 0);
  ledger.UpsertPod(Pod("b", "n1", {2}));
  ledger.RemovePod("default/b");
  EXPECT_EQ(ledger.PodsOnGpu("n1", 2), 0);
  EXPECT_TRUE(ledger.NonEmptyGpuCounts().empty());
}

TEST(GpuLedgerTest, ResyncDropsPodsTheListNoLongerHolds) {
  GpuLedger ledger;
  ledger.UpsertPod(Pod("a", "n1", {0}));
  ledger.UpsertPod(Pod("b", "n1", {0}));
  ledger.BeginResync();
  ledger.UpsertPod(Pod("b", "n1", {0}));
  EXPECT_EQ(ledger.RemoveUnseen(), 1u);
  EXPECT_EQ(ledger.PodsOnGpu("n1", 0), 1);
  EXPECT_EQ(ledger.FindPod("default/a"), nullptr);
}

TEST(GpuLedgerTest, ReservationCountsUntilTheWatchShowsThePodBound) {
  GpuLedger ledger;
  ledger.UpsertPod(Pod("a", "", {1}, PodPhase::kPending));
  ledger.Reserve("default/a", "", "n1", {1}, kT0 + seconds(30));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 1);
  // The watch shows the pod still pending (e.g. an annotation change): still reserved.
  ledger.UpsertPod(Pod("a", "", {1}, PodPhase::kPending));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 1);
  EXPECT_EQ(ledger.reservation_count(), 1u);
  // Bound: the pod itself counts and the reservation is settled, so it counts once.
  ledger.UpsertPod(Pod("a", "n1", {1}));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 1);
  EXPECT_EQ(ledger.reservation_count(), 0u);
}

TEST(GpuLedgerTest, ReservationsExpireAndDeletionsSettleThem) {
  GpuLedger ledger;
  ledger.Reserve("default/a", "", "n1", {1}, kT0 + seconds(30));
  ledger.Reserve("default/b", "", "n1", {1}, kT0 + seconds(60));
  EXPECT_EQ(ledger.ExpireReservations(kT0 + seconds(29)), 0u);
  EXPECT_EQ(ledger.ExpireReservations(kT0 + seconds(30)), 1u);
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 1);
  ledger.RemovePod("default/b");
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 0);
  EXPECT_EQ(ledger.reservation_count(), 0u);
}

TEST(GpuLedgerTest, RetriedBindingDoesNotCountTwice) {
  GpuLedger ledger;
  ledger.Reserve("default/a", "", "n1", {1}, kT0 + seconds(30));
  ledger.Reserve("default/a", "", "n1", {1}, kT0 + seconds(30));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 1);
  // Already bound there per the watch: a reservation adds nothing.
  ledger.UpsertPod(Pod("a", "n1", {1}));
  ledger.Reserve("default/a", "", "n1", {1}, kT0 + seconds(30));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 1);
  EXPECT_EQ(ledger.reservation_count(), 0u);
}

TEST(GpuLedgerTest, CountsLeaveThePodBeingPlacedOut) {
  GpuLedger ledger;
  ledger.UpsertPod(Pod("a", "n1", {1}));
  ledger.UpsertPod(Pod("b", "n1", {1}));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1, "default/a"), 1);
  EXPECT_EQ(ledger.PodsPerGpu("n1", "default/a"), (std::vector<int>{0, 1}));
  ledger.Reserve("default/c", "", "n1", {1}, kT0 + seconds(30));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1, "default/c"), 2);
  EXPECT_EQ(ledger.PodsOnGpu("n1", 1), 3);
}

TEST(GpuLedgerTest, AFinishedPodSettlesItsReservation) {
  GpuLedger ledger;
  ledger.Reserve("default/a", "", "n1", {0}, kT0 + seconds(30));
  ledger.UpsertPod(Pod("a", "", {0}, PodPhase::kFailed));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 0), 0);
  EXPECT_EQ(ledger.reservation_count(), 0u);
}

}  // namespace
}  // namespace cgpu

namespace cgpu {
namespace {

PodFacts WithUid(PodFacts pod, std::string uid) {
  pod.uid = std::move(uid);
  return pod;
}

// A pod CREATE with generateName and spec.nodeName may be admitted under a key that is not its
// final name; the watch's copy, matched by uid, then replaces the reservation.
TEST(GpuLedgerTest, WatchedPodReplacesAReservationMadeUnderAnotherKeyByUid) {
  GpuLedger ledger;
  ledger.Reserve("default/(generated)", "uid-1", "n1", {2}, kT0 + std::chrono::seconds(30));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 2), 1);
  ledger.UpsertPod(WithUid(Pod("web-x7k2p", "n1", {2}), "uid-1"));
  EXPECT_EQ(ledger.PodsOnGpu("n1", 2), 1) << "counted once, not reservation + pod";
  EXPECT_EQ(ledger.reservation_count(), 0u);
}

TEST(GpuLedgerTest, AnEarlierPodOfTheSameNameDoesNotStandInForANewReservation) {
  GpuLedger ledger;
  ledger.UpsertPod(WithUid(Pod("db-0", "n1", {1}), "old-uid"));
  ledger.Reserve("default/db-0", "new-uid", "n1", {1}, kT0 + std::chrono::seconds(30));
  EXPECT_EQ(ledger.reservation_count(), 1u) << "another uid: a reservation of its own";
  // The same pod re-admitted where it already counts is not counted twice.
  GpuLedger same;
  same.UpsertPod(WithUid(Pod("db-0", "n1", {1}), "uid"));
  same.Reserve("default/db-0", "uid", "n1", {1}, kT0 + std::chrono::seconds(30));
  EXPECT_EQ(same.reservation_count(), 0u);
  EXPECT_EQ(same.PodsOnGpu("n1", 1), 1);
}

TEST(GpuLedgerTest, ReservingAgainByUidMovesTheReservation) {
  GpuLedger ledger;
  ledger.Reserve("default/a", "uid-a", "n1", {0}, kT0 + std::chrono::seconds(30));
  ledger.Reserve("default/a", "uid-a", "n1", {3}, kT0 + std::chrono::seconds(30));
  EXPECT_EQ(ledger.PodsPerGpu("n1"), (std::vector<int>{0, 0, 0, 1}));
  EXPECT_EQ(ledger.ExpireReservations(kT0 + std::chrono::seconds(31)), 1u);
  EXPECT_TRUE(ledger.PodsPerGpu("n1").empty());
}

// The audit's list of who is on a GPU agrees with the count, pod for pod: finished and unbound
// pods are not named, a multi-GPU pod is named on each of its GPUs, a reservation is named.
TEST(GpuLedgerTest, PodsHoldingGpuNamesExactlyTheCountedPods) {
  GpuLedger ledger;
  ledger.UpsertPod(Pod("b", "n1", {1}));
  ledger.UpsertPod(Pod("a", "n1", {0, 1}));
  ledger.UpsertPod(Pod("done", "n1", {1}, PodPhase::kSucceeded));
  ledger.UpsertPod(Pod("failed", "n1", {1}, PodPhase::kFailed));
  ledger.UpsertPod(Pod("pending", "", {1}, PodPhase::kPending));
  ledger.UpsertPod(Pod("elsewhere", "n2", {1}));
  ledger.Reserve("default/r", "uid-r", "n1", {1}, kT0 + std::chrono::seconds(30));
  EXPECT_EQ(ledger.PodsHoldingGpu("n1", 1),
            (std::vector<std::string>{"default/a", "default/b", "default/r"}));
  EXPECT_EQ(ledger.PodsHoldingGpu("n1", 0), (std::vector<std::string>{"default/a"}));
  EXPECT_EQ(ledger.PodsHoldingGpu("n1", 2), (std::vector<std::string>{}));
  for (int gpu : {0, 1, 2}) {
    EXPECT_EQ(static_cast<int>(ledger.PodsHoldingGpu("n1", gpu).size()),
              ledger.PodsOnGpu("n1", gpu));
  }
}

}  // namespace
}  // namespace cgpu
