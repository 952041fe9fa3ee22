// Pods, nodes, bindings and AdmissionReviews shaped as the API server sends them, for the
// cluster and policy tests. Shapes follow the ACK examples in tests/fixtures/upstream/ (GPU
// sharing requests aliyun.com/gpu-mem) and the two GPU-assignment annotations of ACK's
// schedulers (ALIYUN_COM_GPU_MEM_IDX, scheduler.framework.gpushare.allocation).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cgpu::testing {

enum class GpuScheme { kIndexAnnotation, kAllocationAnnotation, kNone };

struct PodSpec {
  std::string name;
  std::string node;  // empty: not bound
  std::vector<int> gpus;
  GpuScheme scheme = GpuScheme::kAllocationAnnotation;
  int containers = 1;  // each container requests gpu-mem on the pod's GPUs
  std::string phase = "Running";
  bool cgpu = true;  // requests aliyun.com/gpu-mem
  std::string namespace_name = "default";
};

nlohmann::json MakePod(const PodSpec& spec);

struct NodeSpec {
  std::string name;
  int gpus = 8;
  std::string schedule = "cgpu";  // ack.node.gpu.schedule; "" for none
  std::string cgpu_version = "1.5.20";
  std::string driver = "535.161.08";
  std::string toolkit = "1.16.2";
  std::string instance_type = "ecs.gn7i-c8g1.2xlarge";
  std::string kernel = "5.10.134-16.3.al8.x86_64";
};

nlohmann::json MakeNode(const NodeSpec& spec);

// A Binding of pod default/<pod> to <node>, optionally carrying the allocation annotation.
nlohmann::json MakeBinding(const std::string& pod, const std::string& node,
                           const std::vector<int>& gpus = {});

// An admission.k8s.io/v1 AdmissionReview around `object`.
std::string MakeReview(const std::string& uid, const std::string& resource,
                       const std::string& sub_resource, const std::string& operation,
                       const std::string& name, const nlohmann::json& object,
                       const nlohmann::json& old_object = nullptr, bool dry_run = false);

// `kubectl get nodes,pods -A -o json`: a List of the given objects.
std::string MakeList(const std::vector<nlohmann::json>& items);

}  // namespace cgpu::testing
