// NodeFacts: what cgpu-guard knows about one node, as plain data.
//
// Filled from a Node object by adapters/node_facts_reader (labels, status.nodeInfo) and from
// settings (the ack-ai-installer version). Each versioned fact keeps the raw text and where it
// came from, so that a verdict can say "label cgpu-guard.io/cgpu-version is \"1.5.x\", not a
// version" instead of guessing.
#pragma once

#include <optional>
#include <string>

#include "core/version.h"

namespace cgpu {

struct VersionFact {
  std::optional<Version> value;  // set when `raw` parsed
  std::string raw;               // as found; empty when absent
  std::string source;  // "label cgpu-guard.io/cgpu-version", "status.nodeInfo.kernelVersion"

  bool present() const { return !raw.empty(); }
  bool unparseable() const { return present() && !value; }
};

struct NodeFacts {
  std::string name;
  std::string uid;  // metadata.uid, when known: what Events about the node refer to
  bool cgpu_enabled = false;
  std::string cgpu_enabled_by;  // "ack.node.gpu.schedule=cgpu"; why we consider it cGPU

  VersionFact cgpu_version;
  VersionFact driver_version;
  VersionFact toolkit_version;
  VersionFact kernel_version;
  VersionFact ai_installer_version;

  std::string instance_type;                   // "ecs.gn7i-c8g1.2xlarge"
  std::string instance_type_source;            // the label it came from
  std::optional<std::string> instance_family;  // "gn7i"; unset when absent or unparseable

  std::string os_image;
  bool container_optimized_os = false;

  std::optional<int> max_pods_per_gpu;  // ack.node.gpu.max-pod, when set and valid
  // The ack.node.gpu.max-pod label as found, valid or not; nullopt when the node has no such
  // label (see core/max_pod_label.h: whether to advise setting it).
  std::optional<std::string> max_pod_label;
  // Physical GPUs: capacity aliyun.com/gpu-count, else label aliyun.accelerator/nvidia_count.
  std::optional<int> gpu_count;
};

// "ecs.gn7i-c8g1.2xlarge" -> "gn7i", "ecs.gn8v-tee-8x.16xlarge" -> "gn8v-tee",
// "ecs.gn6t.3xlarge" -> "gn6t". Segments after the first belong to the family only when they are
// all letters ("tee"); size segments carry digits ("c8g1", "8x"). Not an ECS type: nullopt.
std::optional<std::string> InstanceFamily(const std::string& instance_type);

}  // namespace cgpu
