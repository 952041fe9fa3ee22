// NodeFactsReader: a Kubernetes Node object (its NodeObject view, or JSON through it) into
// NodeFacts.
//
// Which labels hold which fact is configurable (FactSources), because no ACK label reports the
// installed cGPU, driver or toolkit version: cgpu-guard's node agent writes its own keys, and
// NVIDIA GPU Feature Discovery's driver labels are read as a fallback. Reading never fails: a
// missing or malformed field leaves the fact absent or unparseable, with its source named, and
// the rules turn that into `unknown`. Create() once; Read() is const and thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <unordered_map>
#include <vector>

#include "adapters/object_views.h"
#include "core/label_keys.h"
#include "core/max_pod_label.h"
#include "core/node_facts.h"
#include "core/rule_table.h"
#include "core/status.h"

namespace cgpu {

struct FactSources {
  FactLabelKeys labels;
  // GPU Feature Discovery: <prefix>.major, .minor, .rev; used when the driver label is absent.
  std::string gfd_driver_label_prefix = "nvidia.com/cuda.driver";
  // First present wins.
  std::vector<std::string> instance_type_labels = {"node.kubernetes.io/instance-type",
                                                   "beta.kubernetes.io/instance-type"};
  std::string max_pods_per_gpu_label = kMaxPodLabel;  // "ack.node.gpu.max-pod"
  // Matched case-insensitively against status.nodeInfo.osImage. The container-optimized image's
  // exact osImage string is not confirmed, hence a pattern.
  std::string container_os_pattern = "container-optimized|containeros";
  // ack-ai-installer is a cluster component: its version is a setting, not a node label.
  std::string ai_installer_version;
  // When set, every cGPU node is evaluated as if it ran this cGPU version ("what if I upgrade").
  std::string assume_cgpu_version;
};

class NodeFactsReader {
 public:
  // Fails when the OS pattern is not a valid regular expression.
  static StatusOr<NodeFactsReader> Create(FactSources sources, const RuleTable& table);

  NodeFacts Read(const NodeObject& node) const;
  NodeFacts Read(const nlohmann::json& node) const;  // Read(ReadNodeObject(node))

 private:
  // What container_os_ said about each OS image seen. A case-insensitive std::regex search costs
  // microseconds (a locale lookup per character) and a cluster runs a handful of OS images, so
  // answers are remembered; copies of a reader share them. Forgotten all at once past kMaxEntries.
  struct OsImageMemo {
    static constexpr size_t kMaxEntries = 64;
    std::mutex mu;
    std::unordered_map<std::string, bool> matches;  // guarded by mu
  };

  NodeFactsReader(FactSources sources, std::regex container_os, std::vector<LabelMatch> enabled,
                  LabelMatch disabled)
      : sources_(std::move(sources)),
        container_os_(std::move(container_os)),
        cgpu_enabled_labels_(std::move(enabled)),
        isolation_disabled_label_(std::move(disabled)) {}

  bool IsContainerOs(const std::string& os_image) const;

  // Constant after construction.
  FactSources sources_;
  std::regex container_os_;
  std::vector<LabelMatch> cgpu_enabled_labels_;
  LabelMatch isolation_disabled_label_;
  std::shared_ptr<OsImageMemo> os_image_memo_ = std::make_shared<OsImageMemo>();
};

}  // namespace cgpu
