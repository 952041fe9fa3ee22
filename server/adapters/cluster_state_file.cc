#include "adapters/cluster_state_file.h"

#include <fstream>
#include <sstream>

#include "adapters/node_list.h"

namespace cgpu {

StatusOr<ClusterStateCounts> LoadClusterState(std::string_view text, ClusterCache& cache) {
  StatusOr<std::vector<nlohmann::json>> objects = ReadObjectsOfKinds(text, {"Node", "Pod"});
  if (!objects.ok()) return objects.status();
  ClusterStateCounts counts;
  cache.BeginNodeResync();
  for (const nlohmann::json& object : *objects) {
    if (object["kind"] == "Node") {
      cache.UpsertNode(object);
      ++counts.nodes;
    }
  }
  cache.EndNodeResync();
  cache.BeginPodResync();
  for (const nlohmann::json& object : *objects) {
    if (object["kind"] == "Pod") {
      cache.UpsertPod(object);
      ++counts.pods;
    }
  }
  cache.EndPodResync();
  cache.MarkNodesSynced();
  cache.MarkPodsSynced();
  return counts;
}

StatusOr<ClusterStateCounts> LoadClusterStateFile(const std::string& path, ClusterCache& cache) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read cluster state file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  StatusOr<ClusterStateCounts> counts = LoadClusterState(text.str(), cache);
  if (!counts.ok()) return InvalidArgument(path + ": " + counts.status().message());
  return counts;
}

}  // namespace cgpu
