#include "core/gpu_ledger.h"

#include <algorithm>

namespace cgpu {

void GpuLedger::Add(const Holding& holding, int delta) {
  if (holding.node.empty() || holding.gpus.empty()) return;
  std::vector<int>& counts = usage_[holding.node];
  for (int gpu : holding.gpus) {
    if (gpu < 0) continue;
    if (static_cast<size_t>(gpu) >= counts.size()) counts.resize(gpu + 1, 0);
    counts[gpu] += delta;
  }
  if (std::all_of(counts.begin(), counts.end(), [](int c) { return c == 0; })) {
    usage_.erase(holding.node);
  }
}

void GpuLedger::Unreserve(std::unordered_map<std::string, Reservation>::iterator it) {
  Add(it->second.holding, -1);
  if (!it->second.uid.empty()) reserved_uids_.erase(it->second.uid);
  reservations_.erase(it);
}

void GpuLedger::UpsertPod(const PodFacts& pod) {
  const std::string key = pod.Key();

  // A reservation is settled once the cluster shows the pod bound (wherever), finished, or not a
  // cGPU pod after all. While it still shows as a pending cGPU pod, the reservation counts for it.
  // It is found by name, or by uid when it was made under another key (before the name was known).
  auto reservation = reservations_.find(key);
  if (reservation == reservations_.end() && !pod.uid.empty()) {
    if (auto by_uid = reserved_uids_.find(pod.uid); by_uid != reserved_uids_.end()) {
      reservation = reservations_.find(by_uid->second);
    }
  }
  if (reservation != reservations_.end()) {
    const bool still_pending = pod.shares_gpu && pod.node_name.empty() &&
                               pod.phase != PodPhase::kSucceeded && pod.phase != PodPhase::kFailed;
    if (!still_pending) Unreserve(reservation);
  }

  PodRecord& record = pods_[key];
  Add(HoldingOf(record), -1);
  record.uid = pod.uid;
  record.shares_gpu = pod.shares_gpu;
  record.holds = pod.HoldsGpu();
  record.node = pod.node_name;
  record.gpus = pod.gpus.indices;
  record.seen = true;
  Add(HoldingOf(record), +1);
}

GpuLedger::Holding GpuLedger::HoldingOf(const PodRecord& pod) {
  if (!pod.holds) return {};
  return Holding{pod.node, pod.gpus};
}

const GpuLedger::PodRecord* GpuLedger::FindPod(const std::string& pod_key) const {
  auto it = pods_.find(pod_key);
  return it == pods_.end() ? nullptr : &it->second;
}

void GpuLedger::RemovePod(const std::string& pod_key) {
  if (auto it = pods_.find(pod_key); it != pods_.end()) {
    Add(HoldingOf(it->second), -1);
    pods_.erase(it);
  }
  if (auto it = reservations_.find(pod_key); it != reservations_.end()) Unreserve(it);
}

void GpuLedger::BeginResync() {
  for (auto& [key, entry] : pods_) entry.seen = false;
}

size_t GpuLedger::RemoveUnseen() {
  size_t removed = 0;
  for (auto it = pods_.begin(); it != pods_.end();) {
    if (!it->second.seen) {
      Add(HoldingOf(it->second), -1);
      it = pods_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

void GpuLedger::Reserve(const std::string& pod_key, const std::string& pod_uid,
                        const std::string& node, const std::vector<int>& gpus, SteadyTime expires) {
  if (auto it = reservations_.find(pod_key); it != reservations_.end()) Unreserve(it);
  if (!pod_uid.empty()) {
    if (auto by_uid = reserved_uids_.find(pod_uid); by_uid != reserved_uids_.end()) {
      if (auto it = reservations_.find(by_uid->second); it != reservations_.end()) Unreserve(it);
    }
  }
  // Already counted there from the cluster: a retried binding must not count twice. (An earlier
  // pod of the same name, another uid, is another pod.)
  Reservation reservation{Holding{node, gpus}, expires, pod_uid};
  std::sort(reservation.holding.gpus.begin(), reservation.holding.gpus.end());
  if (auto it = pods_.find(pod_key);
      it != pods_.end() && it->second.holds && it->second.node == node &&
      it->second.gpus == reservation.holding.gpus &&
      (pod_uid.empty() || it->second.uid.empty() || it->second.uid == pod_uid)) {
    return;
  }
  Add(reservation.holding, +1);
  if (!pod_uid.empty()) reserved_uids_[pod_uid] = pod_key;
  reservations_.emplace(pod_key, std::move(reservation));
}

size_t GpuLedger::ExpireReservations(SteadyTime now) {
  size_t expired = 0;
  for (auto it = reservations_.begin(); it != reservations_.end();) {
    if (it->second.expires <= now) {
      Add(it->second.holding, -1);
      if (!it->second.uid.empty()) reserved_uids_.erase(it->second.uid);
      it = reservations_.erase(it);
      ++expired;
    } else {
      ++it;
    }
  }
  return expired;
}

int GpuLedger::PodsOnGpu(const std::string& node, int gpu, const std::string& except_pod) const {
  int count = 0;
  if (auto it = usage_.find(node);
      it != usage_.end() && gpu >= 0 && static_cast<size_t>(gpu) < it->second.size()) {
    count = it->second[gpu];
  }
  if (!except_pod.empty()) {
    const Holding holding = HoldingOf(except_pod);
    if (holding.node == node &&
        std::find(holding.gpus.begin(), holding.gpus.end(), gpu) != holding.gpus.end()) {
      --count;
    }
  }
  return count;
}

std::vector<int> GpuLedger::PodsPerGpu(const std::string& node,
                                       const std::string& except_pod) const {
  std::vector<int> counts;
  if (auto it = usage_.find(node); it != usage_.end()) counts = it->second;
  if (!except_pod.empty()) {
    const Holding holding = HoldingOf(except_pod);
    if (holding.node == node) {
      for (int gpu : holding.gpus) {
        if (gpu >= 0 && static_cast<size_t>(gpu) < counts.size()) --counts[gpu];
      }
    }
  }
  return counts;
}

std::vector<std::string> GpuLedger::PodsHoldingGpu(const std::string& node, int gpu) const {
  auto holds = [&](const Holding& holding) {
    return holding.node == node &&
           std::find(holding.gpus.begin(), holding.gpus.end(), gpu) != holding.gpus.end();
  };
  std::vector<std::string> keys;
  for (const auto& [key, pod] : pods_) {
    if (holds(HoldingOf(pod))) keys.push_back(key);
  }
  for (const auto& [key, reservation] : reservations_) {
    if (holds(reservation.holding)) keys.push_back(key);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

GpuLedger::Holding GpuLedger::HoldingOf(const std::string& pod_key) const {
  // A reservation is the newer fact: it is what this process just allowed.
  if (auto it = reservations_.find(pod_key); it != reservations_.end()) {
    return it->second.holding;
  }
  if (auto it = pods_.find(pod_key); it != pods_.end()) return HoldingOf(it->second);
  return {};
}

std::vector<int> GpuLedger::NonEmptyGpuCounts() const {
  std::vector<int> counts;
  for (const auto& [node, gpus] : usage_) {
    for (int count : gpus) {
      if (count > 0) counts.push_back(count);
    }
  }
  return counts;
}

}  // namespace cgpu
