// GpuLedger: how many cGPU pods each GPU of each node holds, counted from cluster state plus the
// placements this process has allowed but not yet seen come back through the watch.
//
// Every pod is remembered in a few bytes (is it a cGPU pod, where is it, which GPUs does it say),
// so that a binding can be judged without fetching its pod; only cGPU pods are counted.
//
// A pod counts once per GPU index it uses while it HoldsGpu(). A reservation is an allowed
// placement (a binding) that the watch has not shown yet: it counts until the watch shows the pod
// bound, finished or deleted, or until it expires, so two concurrent bindings can never both take
// the last slot. Re-admitting the same pod to the same place does not count it twice. A
// reservation is matched to the watch's copy of its pod by name or by uid, so a pod admitted
// before its name was known (generateName) is replaced by its watched copy, not added to it.
//
// Plain data structure: no clock, no locks, no I/O. The caller passes the time and serialises
// access (adapters/cluster_cache holds the lock).
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/pod_facts.h"

namespace cgpu {

using SteadyTime = std::chrono::steady_clock::time_point;

class GpuLedger {
 public:
  // The pod's latest state from the cluster. Replaces what was known of it; settles its
  // reservation once the pod shows up bound (or finished).
  void UpsertPod(const PodFacts& pod);
  void RemovePod(const std::string& pod_key);

  // Marks every pod unseen; RemoveUnseen() then drops those not upserted since (a relist).
  void BeginResync();
  size_t RemoveUnseen();

  // Counts `gpus` on `node` for `pod_key` (uid `pod_uid`, "" when unknown) until `expires` or
  // until the watch settles it. Replaces an earlier reservation of the same pod.
  void Reserve(const std::string& pod_key, const std::string& pod_uid, const std::string& node,
               const std::vector<int>& gpus, SteadyTime expires);
  size_t ExpireReservations(SteadyTime now);

  // Pods holding `gpu` of `node`, reservations included, leaving `except_pod` out (the pod being
  // placed, so that re-admitting it does not count it against itself).
  int PodsOnGpu(const std::string& node, int gpu, const std::string& except_pod = "") const;
  // Per GPU index of `node`, the same count; sized to the highest index in use + 1.
  std::vector<int> PodsPerGpu(const std::string& node, const std::string& except_pod = "") const;
  // Who those are: one pod key per pod counted on `gpu` of `node` (a reservation beside the
  // watched copy of its pod on the same GPU, counted twice, is named twice), sorted. Its size is
  // PodsOnGpu(node, gpu). Scans every pod: for audits, not for the request path.
  std::vector<std::string> PodsHoldingGpu(const std::string& node, int gpu) const;

  // Where a pod is counted now (from the cluster or a reservation): empty node when nowhere.
  struct Holding {
    std::string node;
    std::vector<int> gpus;
  };
  Holding HoldingOf(const std::string& pod_key) const;

  // What the cluster last said of a pod; nullptr when it has not been seen.
  struct PodRecord {
    std::string uid;
    bool shares_gpu = false;
    bool holds = false;     // HoldsGpu(): counted on `node`, `gpus`
    std::string node;       // spec.nodeName
    std::vector<int> gpus;  // the GPU assignment written on the pod
    bool seen = true;       // for resyncs
  };
  const PodRecord* FindPod(const std::string& pod_key) const;

  size_t pod_count() const { return pods_.size(); }
  size_t reservation_count() const { return reservations_.size(); }
  // Counts of every GPU that holds at least one pod, for the pods-per-GPU metric.
  std::vector<int> NonEmptyGpuCounts() const;

 private:
  struct Reservation {
    Holding holding;
    SteadyTime expires;
    std::string uid;
  };

  void Add(const Holding& holding, int delta);
  // Drops the reservation at `it`, uncounting it.
  void Unreserve(std::unordered_map<std::string, Reservation>::iterator it);

  static Holding HoldingOf(const PodRecord& pod);

  std::unordered_map<std::string, PodRecord> pods_;
  std::unordered_map<std::string, Reservation> reservations_;   // by pod key
  std::unordered_map<std::string, std::string> reserved_uids_;  // uid -> key in reservations_
  std::unordered_map<std::string, std::vector<int>> usage_;     // node -> pods per GPU index
};

}  // namespace cgpu
