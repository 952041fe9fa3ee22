// Cluster state from a file, for running without an API server (a laptop, a demo, `check`).
//
// The file is what `kubectl get nodes,pods -A -o json` (or -o yaml) prints: a List of Nodes and
// Pods, or NodeLists and PodLists. Nodes are loaded before pods, so a pod's one-GPU node is known
// when the pod is counted. Loading replaces what the cache held and marks it synced.
#pragma once

#include <string>
#include <string_view>

#include "adapters/cluster_cache.h"
#include "core/status.h"

namespace cgpu {

struct ClusterStateCounts {
  size_t nodes = 0;
  size_t pods = 0;
};

StatusOr<ClusterStateCounts> LoadClusterState(std::string_view text, ClusterCache& cache);
StatusOr<ClusterStateCounts> LoadClusterStateFile(const std::string& path, ClusterCache& cache);

}  // namespace cgpu
