// ClusterCache: what cgpu-guard knows of the cluster, as compact facts, shared by all requests.
//
// Fed by the pod and node informers (or once from a state file): nodes become NodeFacts with
// their rule verdict computed once per change, pods become a few bytes each in a GpuLedger.
// Requests read it under one mutex; a placement is judged and, when allowed, reserved in the same
// critical section, so that concurrent bindings on this replica can never both take the last slot
// of a GPU. No I/O happens under the lock. Thread-safe.
//
// Only the watch (and state files) write pods: what a live read of the API server returns is
// used for the one decision it was made for and never written here, so a slow read can never
// roll the cache back past a deletion or a finish the watch applied meanwhile.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "adapters/node_facts_reader.h"
#include "core/admission_plan.h"
#include "core/compatibility.h"
#include "core/gpu_ledger.h"
#include "core/placement_policy.h"
#include "core/rule_table.h"

namespace cgpu {

// Who vouches for the pod a reservation is made for. Anyone who can reach the webhook port can
// post a review, so a reservation only lasts its full TTL for a pod the cluster is known to hold.
enum class ReservationKind {
  kPodExists,    // a binding of a pod the cache or a live read showed pending, with its uid
  kUnconfirmed,  // a pod CREATE or UPDATE: only the review says the pod exists until the watch does
};

struct ClusterCacheOptions {
  // How long an allowed binding counts before the watch must have shown its pod. Bindings reach
  // the watch in well under a second; the margin covers a watch that is reconnecting.
  std::chrono::milliseconds reservation_ttl{30'000};
  // How long a kUnconfirmed reservation counts: the watch shows a real pod in well under a
  // second, so made-up reviews cannot hold a GPU's slots for long.
  std::chrono::milliseconds unconfirmed_reservation_ttl{5'000};
  std::function<SteadyTime()> now = [] { return std::chrono::steady_clock::now(); };
  // Told each node as it is judged (upserted), and each node's name as it goes (deleted, or gone
  // at the end of a resync); outside the cache's lock, on the caller's thread. For Events about
  // nodes (core/event_intent.h NodeVerdictTracker).
  std::function<void(const NodeFacts&, const NodeEvaluation&)> node_judged;
  std::function<void(const std::string& name)> node_gone;
};

struct ClusterStats {
  size_t nodes = 0;
  size_t cgpu_nodes = 0;
  size_t incompatible_nodes = 0;
  size_t pods = 0;
  size_t reservations = 0;
  int max_pods_on_a_gpu = 0;
  size_t gpus_in_use = 0;
  size_t gpus_at_limit = 0;
  // cGPU nodes whose ack.node.gpu.max-pod label is missing, unreadable or above their limit: the
  // GPU-sharing scheduler does not count pods per GPU there (see DESIGN notes in the README).
  size_t cgpu_nodes_without_max_pod = 0;
};

class ClusterCache {
 public:
  ClusterCache(const RuleTable& rules, NodeFactsReader node_reader, ClusterCacheOptions options);

  // ---- Feeding: from the informers' thread(s) or a state file ----
  // Nodes and pods come as JSON (state files, tests) or as object views already read from it
  // (the informers, which parse with simdjson and build no JSON tree).
  void UpsertNode(const nlohmann::json& node);
  void UpsertNode(const NodeObject& node);
  void DeleteNode(const std::string& name);
  void BeginNodeResync();
  void EndNodeResync();  // nodes not upserted since BeginNodeResync are gone
  void UpsertPod(const nlohmann::json& pod);
  void UpsertPod(PodObject pod);
  void UpsertPodFacts(const PodFacts& pod);
  void DeletePod(const std::string& pod_key);
  void BeginPodResync();
  void EndPodResync();
  void MarkNodesSynced() { nodes_synced_ = true; }
  void MarkPodsSynced() { pods_synced_ = true; }
  bool synced() const { return nodes_synced_ && pods_synced_; }

  // ---- Deciding ----
  // What the cache knows of a pod: nullopt when it has not been seen.
  using PodInfo = KnownPod;
  std::optional<PodInfo> FindPod(const std::string& pod_key) const;
  // nullopt when the node is not known; else whether it is cGPU-enabled.
  std::optional<bool> NodeIsCgpu(const std::string& node) const;
  using NodeInfo = KnownNode;
  std::optional<NodeInfo> FindNode(const std::string& node) const;
  // Pods left on `node`'s fullest GPU among `gpus` (or all GPUs when empty) before the limit,
  // reservations included, `pod_key` left out. Used to decide when a fresh recount is worth it.
  std::optional<int> SlotsLeft(const std::string& node, const std::vector<int>& gpus,
                               const std::string& pod_key, const PolicyOptions& options) const;
  // Judges `placement` and, when it is allowed and `reserve` is set, reserves its GPU slots for
  // `pod_key` (uid `pod_uid`), all under one lock. `pod_key` is left out of the counts
  // (re-admitting a pod never counts it twice).
  //
  // `fresh_node_pods`, when given, are the node's pods as a read just now returned them: a pod
  // they show holding a GPU that the cache does not count there yet (bound through another
  // replica, or not yet delivered by the watch) is counted too, for this decision only. A pod the
  // cache counts stays counted even if the read does not show it: the union can only overcount a
  // pod that left in the last moments, never undercount one that arrived.
  Decision Place(const Placement& placement, const std::string& pod_key, const std::string& pod_uid,
                 const PolicyOptions& options, bool reserve,
                 const std::vector<PodFacts>* fresh_node_pods = nullptr,
                 ReservationKind kind = ReservationKind::kPodExists);

  // The GPU slots a reservation of `placement` takes: empty when its node is unknown or not
  // cGPU-enabled, or its GPUs are unknown or not the node's.
  std::vector<int> CountedGpus(const Placement& placement) const;
  // Reserves those slots for `pod_key` (uid `pod_uid`) without judging: the caller has (Place
  // with reserve false), and recorded the placement elsewhere first.
  void Reserve(const Placement& placement, const std::string& pod_key, const std::string& pod_uid,
               ReservationKind kind);

  // cGPU pods on GPU `gpu` of `node` now, reservations included.
  int PodsOnGpu(const std::string& node, int gpu) const;
  // Expires reservations whose pods the watch never showed; returns how many.
  size_t ExpireReservations();
  ClusterStats Stats(const PolicyOptions& options) const;

  // ---- Auditing (`check`) ----
  struct NodeSnapshot {
    NodeFacts facts;
    NodeEvaluation evaluation;
  };
  std::vector<NodeSnapshot> Nodes() const;  // every node, by name
  struct GpuOverLimit {
    std::string node;
    int gpu = 0;
    int pods = 0;                       // cGPU pods counted on the GPU, reservations included
    PodLimit limit;                     // the node's limit (PodsPerGpuLimit)
    std::vector<std::string> pod_keys;  // "namespace/name" of each, sorted
  };
  // Every GPU of a cGPU node holding more cGPU pods than the node's limit, by node then GPU.
  // Counted as placements and Stats count them (the ledger; a pod naming a GPU the node does not
  // have is on no GPU).
  std::vector<GpuOverLimit> GpusOverLimit(const PolicyOptions& options) const;
  const RuleTable& rules() const { return rules_; }
  const NodeFactsReader& node_reader() const { return node_reader_; }

 private:
  struct NodeEntry {
    NodeFacts facts;
    NodeEvaluation evaluation;
    bool seen = true;
  };

  // CountedGpus with mu_ held, for a node entry already found (null: unknown node).
  std::vector<int> CountedGpusLocked(const Placement& placement, const NodeFacts* facts) const;
  void ReserveLocked(const Placement& placement, const std::vector<int>& gpus,
                     const std::string& pod_key, const std::string& pod_uid, ReservationKind kind);

  // The ledger's pods per GPU of node `name`, cut to the GPUs the node has. mu_ held.
  std::vector<int> CountsOnNodeGpus(const std::string& name, const NodeEntry& entry) const;

  // Adds to view.pods_per_gpu the pods of `fresh` holding GPUs of `node` that the ledger does not
  // count there. mu_ held.
  void AddUncounted(const std::vector<PodFacts>& fresh, const std::string& node,
                    const std::string& pod_key, NodeView& view) const;

  const RuleTable& rules_;
  const NodeFactsReader node_reader_;
  const ClusterCacheOptions options_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, NodeEntry> nodes_;  // guarded by mu_
  GpuLedger ledger_;                                  // guarded by mu_
  std::atomic<bool> nodes_synced_{false};
  std::atomic<bool> pods_synced_{false};
};

}  // namespace cgpu
