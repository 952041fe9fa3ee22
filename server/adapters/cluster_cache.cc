#include "adapters/cluster_cache.h"

#include <algorithm>
#include <tuple>

#include "adapters/nlohmann_view.h"
#include "adapters/object_view_reader.h"
#include "adapters/pod_facts_reader.h"
#include "core/max_pod_label.h"

namespace cgpu {

ClusterCache::ClusterCache(const RuleTable& rules, NodeFactsReader node_reader,
                           ClusterCacheOptions options)
    : rules_(rules), node_reader_(std::move(node_reader)), options_(std::move(options)) {}

void ClusterCache::UpsertNode(const nlohmann::json& node) {
  UpsertNode(ReadNodeObject(NlohmannView(node)));
}

void ClusterCache::UpsertNode(const NodeObject& node) {
  // Reading and judging happen outside the lock: they are the expensive part.
  NodeEntry entry{node_reader_.Read(node), {}, true};
  if (entry.facts.name.empty()) return;
  entry.evaluation = EvaluateNode(entry.facts, rules_);
  std::string name = entry.facts.name;
  if (options_.node_judged) options_.node_judged(entry.facts, entry.evaluation);
  std::lock_guard lock(mu_);
  nodes_[std::move(name)] = std::move(entry);
}

void ClusterCache::DeleteNode(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    nodes_.erase(name);
  }
  if (options_.node_gone) options_.node_gone(name);
}

void ClusterCache::BeginNodeResync() {
  std::lock_guard lock(mu_);
  for (auto& [name, entry] : nodes_) entry.seen = false;
}

void ClusterCache::EndNodeResync() {
  std::vector<std::string> gone;
  {
    std::lock_guard lock(mu_);
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      if (it->second.seen) {
        ++it;
        continue;
      }
      gone.push_back(it->first);
      it = nodes_.erase(it);
    }
  }
  if (options_.node_gone) {
    for (const std::string& name : gone) options_.node_gone(name);
  }
}

void ClusterCache::UpsertPod(const nlohmann::json& pod) { UpsertPodFacts(ReadPodFacts(pod)); }

void ClusterCache::UpsertPod(PodObject pod) { UpsertPodFacts(PodFactsFrom(std::move(pod))); }

void ClusterCache::UpsertPodFacts(const PodFacts& pod) {
  if (pod.name.empty()) return;
  std::lock_guard lock(mu_);
  if (pod.shares_gpu && !pod.gpus.known() && !pod.node_name.empty()) {
    // No GPU written on a bound pod: on a one-GPU node it can only be GPU 0.
    if (auto node = nodes_.find(pod.node_name); node != nodes_.end()) {
      std::vector<int> gpus = EffectiveGpus(pod.gpus, &node->second.facts);
      if (!gpus.empty()) {
        PodFacts placed = pod;
        placed.gpus.indices = std::move(gpus);
        ledger_.UpsertPod(placed);
        return;
      }
    }
  }
  ledger_.UpsertPod(pod);
}

void ClusterCache::DeletePod(const std::string& pod_key) {
  std::lock_guard lock(mu_);
  ledger_.RemovePod(pod_key);
}

void ClusterCache::BeginPodResync() {
  std::lock_guard lock(mu_);
  ledger_.BeginResync();
}

void ClusterCache::EndPodResync() {
  std::lock_guard lock(mu_);
  ledger_.RemoveUnseen();
}

std::optional<ClusterCache::PodInfo> ClusterCache::FindPod(const std::string& pod_key) const {
  std::lock_guard lock(mu_);
  const GpuLedger::PodRecord* pod = ledger_.FindPod(pod_key);
  if (pod == nullptr) return std::nullopt;
  return PodInfo{pod->uid, pod->shares_gpu, pod->node, pod->gpus};
}

std::optional<bool> ClusterCache::NodeIsCgpu(const std::string& node) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  return it->second.facts.cgpu_enabled;
}

std::optional<ClusterCache::NodeInfo> ClusterCache::FindNode(const std::string& node) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  return NodeInfo{it->second.facts.cgpu_enabled, it->second.facts.gpu_count};
}

std::optional<int> ClusterCache::SlotsLeft(const std::string& node, const std::vector<int>& gpus,
                                           const std::string& pod_key,
                                           const PolicyOptions& options) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  const int limit = PodsPerGpuLimit(it->second.facts, rules_, options).value;
  const std::vector<int> counts = ledger_.PodsPerGpu(node, pod_key);
  int fullest = 0;
  if (gpus.empty()) {
    for (int count : counts) fullest = std::max(fullest, count);
  } else {
    for (int gpu : gpus) {
      if (gpu >= 0 && static_cast<size_t>(gpu) < counts.size()) {
        fullest = std::max(fullest, counts[gpu]);
      }
    }
  }
  return limit - fullest;
}

Decision ClusterCache::Place(const Placement& placement, const std::string& pod_key,
                             const std::string& pod_uid, const PolicyOptions& options, bool reserve,
                             const std::vector<PodFacts>* fresh_node_pods, ReservationKind kind) {
  std::lock_guard lock(mu_);
  NodeView view;
  auto node = nodes_.find(placement.node);
  if (node != nodes_.end()) {
    view.facts = &node->second.facts;
    view.evaluation = &node->second.evaluation;
    view.pods_per_gpu = ledger_.PodsPerGpu(placement.node, pod_key);
    if (fresh_node_pods != nullptr) AddUncounted(*fresh_node_pods, placement.node, pod_key, view);
  }
  Decision decision = DecidePlacement(placement, view, rules_, options);
  if (reserve && decision.allowed()) {
    ReserveLocked(placement, CountedGpusLocked(placement, view.facts), pod_key, pod_uid, kind);
  }
  return decision;
}

std::vector<int> ClusterCache::CountedGpusLocked(const Placement& placement,
                                                 const NodeFacts* facts) const {
  if (facts == nullptr || !facts->cgpu_enabled) return {};
  std::vector<int> gpus = EffectiveGpus(placement.gpus, facts);
  // A GPU the node does not have is never counted (the decision said so: gpu-unknown).
  const bool gpus_exist = !facts->gpu_count || std::all_of(gpus.begin(), gpus.end(), [&](int gpu) {
    return gpu < *facts->gpu_count;
  });
  if (!gpus_exist) return {};
  return gpus;
}

void ClusterCache::ReserveLocked(const Placement& placement, const std::vector<int>& gpus,
                                 const std::string& pod_key, const std::string& pod_uid,
                                 ReservationKind kind) {
  if (gpus.empty()) return;
  const auto ttl = kind == ReservationKind::kPodExists ? options_.reservation_ttl
                                                       : options_.unconfirmed_reservation_ttl;
  ledger_.Reserve(pod_key, pod_uid, placement.node, gpus, options_.now() + ttl);
}

std::vector<int> ClusterCache::CountedGpus(const Placement& placement) const {
  std::lock_guard lock(mu_);
  const auto node = nodes_.find(placement.node);
  return CountedGpusLocked(placement, node == nodes_.end() ? nullptr : &node->second.facts);
}

void ClusterCache::Reserve(const Placement& placement, const std::string& pod_key,
                           const std::string& pod_uid, ReservationKind kind) {
  std::lock_guard lock(mu_);
  const auto node = nodes_.find(placement.node);
  const NodeFacts* facts = node == nodes_.end() ? nullptr : &node->second.facts;
  ReserveLocked(placement, CountedGpusLocked(placement, facts), pod_key, pod_uid, kind);
}

void ClusterCache::AddUncounted(const std::vector<PodFacts>& fresh, const std::string& node,
                                const std::string& pod_key, NodeView& view) const {
  for (const PodFacts& pod : fresh) {
    if (pod.node_name != node || !pod.HoldsGpu()) continue;
    const std::string key = pod.Key();
    if (key == pod_key) continue;
    const GpuLedger::Holding counted = ledger_.HoldingOf(key);
    for (int gpu : EffectiveGpus(pod.gpus, view.facts)) {
      const bool already =
          counted.node == node &&
          std::find(counted.gpus.begin(), counted.gpus.end(), gpu) != counted.gpus.end();
      if (already || gpu < 0) continue;
      if (static_cast<size_t>(gpu) >= view.pods_per_gpu.size()) {
        view.pods_per_gpu.resize(gpu + 1, 0);
      }
      ++view.pods_per_gpu[gpu];
    }
  }
}

int ClusterCache::PodsOnGpu(const std::string& node, int gpu) const {
  std::lock_guard lock(mu_);
  return ledger_.PodsOnGpu(node, gpu);
}

size_t ClusterCache::ExpireReservations() {
  const SteadyTime now = options_.now();
  std::lock_guard lock(mu_);
  return ledger_.ExpireReservations(now);
}

ClusterStats ClusterCache::Stats(const PolicyOptions& options) const {
  ClusterStats stats;
  std::lock_guard lock(mu_);
  stats.nodes = nodes_.size();
  for (const auto& [name, entry] : nodes_) {
    if (!entry.facts.cgpu_enabled) continue;
    ++stats.cgpu_nodes;
    if (entry.evaluation.verdict == NodeVerdict::kIncompatible) ++stats.incompatible_nodes;
    const int limit = PodsPerGpuLimit(entry.facts, rules_, options).value;
    // The label's own limit aside: the rules' and --max-pods-per-gpu (core/max_pod_label.h).
    if (AdviseMaxPodLabel(entry.facts.max_pod_label,
                          ConfiguredPodsPerGpuLimit(rules_, options).value, name)
            .due()) {
      ++stats.cgpu_nodes_without_max_pod;
    }
    for (int count : CountsOnNodeGpus(name, entry)) {
      if (count <= 0) continue;
      ++stats.gpus_in_use;
      stats.max_pods_on_a_gpu = std::max(stats.max_pods_on_a_gpu, count);
      if (count >= limit) ++stats.gpus_at_limit;
    }
  }
  stats.pods = ledger_.pod_count();
  stats.reservations = ledger_.reservation_count();
  return stats;
}

std::vector<int> ClusterCache::CountsOnNodeGpus(const std::string& name,
                                                const NodeEntry& entry) const {
  std::vector<int> counts = ledger_.PodsPerGpu(name);
  // A pod naming a GPU the node does not have is not on any GPU.
  if (entry.facts.gpu_count && counts.size() > static_cast<size_t>(*entry.facts.gpu_count)) {
    counts.resize(std::max(0, *entry.facts.gpu_count));
  }
  return counts;
}

std::vector<ClusterCache::NodeSnapshot> ClusterCache::Nodes() const {
  std::vector<NodeSnapshot> nodes;
  {
    std::lock_guard lock(mu_);
    nodes.reserve(nodes_.size());
    for (const auto& [name, entry] : nodes_) nodes.push_back({entry.facts, entry.evaluation});
  }
  std::sort(nodes.begin(), nodes.end(), [](const NodeSnapshot& a, const NodeSnapshot& b) {
    return a.facts.name < b.facts.name;
  });
  return nodes;
}

std::vector<ClusterCache::GpuOverLimit> ClusterCache::GpusOverLimit(
    const PolicyOptions& options) const {
  std::vector<GpuOverLimit> over;
  std::lock_guard lock(mu_);
  for (const auto& [name, entry] : nodes_) {
    if (!entry.facts.cgpu_enabled) continue;
    const PodLimit limit = PodsPerGpuLimit(entry.facts, rules_, options);
    const std::vector<int> counts = CountsOnNodeGpus(name, entry);
    for (size_t gpu = 0; gpu < counts.size(); ++gpu) {
      if (counts[gpu] <= limit.value) continue;
      over.push_back({name, static_cast<int>(gpu), counts[gpu], limit,
                      ledger_.PodsHoldingGpu(name, static_cast<int>(gpu))});
    }
  }
  std::sort(over.begin(), over.end(), [](const GpuOverLimit& a, const GpuOverLimit& b) {
    return std::tie(a.node, a.gpu) < std::tie(b.node, b.gpu);
  });
  return over;
}

}  // namespace cgpu
