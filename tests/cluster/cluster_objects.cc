#include "cluster/cluster_objects.h"

namespace cgpu::testing {

using nlohmann::json;

nlohmann::json MakePod(const PodSpec& spec) {
  json annotations = json::object();
  if (!spec.gpus.empty() && spec.scheme == GpuScheme::kIndexAnnotation) {
    std::string list;
    for (int gpu : spec.gpus) list += (list.empty() ? "" : ",") + std::to_string(gpu);
    annotations["ALIYUN_COM_GPU_MEM_IDX"] = list;
    annotations["ALIYUN_COM_GPU_MEM_ASSIGNED"] = "true";
    annotations["ALIYUN_COM_GPU_MEM_POD"] = "4";
  } else if (!spec.gpus.empty() && spec.scheme == GpuScheme::kAllocationAnnotation) {
    json allocation = json::object();
    for (int c = 0; c < spec.containers; ++c) {
      for (int gpu : spec.gpus) allocation[std::to_string(c)][std::to_string(gpu)] = 2;
    }
    annotations["scheduler.framework.gpushare.allocation"] = allocation.dump();
  }
  json containers = json::array();
  for (int c = 0; c < spec.containers; ++c) {
    json resources = spec.cgpu ? json{{"limits", {{"aliyun.com/gpu-mem", "2"}}}}
                               : json{{"limits", {{"cpu", "1"}}}};
    containers.push_back(
        {{"name", "c" + std::to_string(c)},
         {"image", "registry.cn-hangzhou.aliyuncs.com/ai-samples/gpushare-sample:tensorflow-1.5"},
         {"resources", resources}});
  }
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", spec.name},
                {"namespace", spec.namespace_name},
                {"uid", "uid-" + spec.name},
                {"labels", {{"app", "binpack"}}},
                {"annotations", annotations}}},
              {"spec", {{"containers", containers}, {"schedulerName", "default-scheduler"}}},
              {"status", {{"phase", spec.phase}}}};
  if (!spec.node.empty()) pod["spec"]["nodeName"] = spec.node;
  return pod;
}

nlohmann::json MakeNode(const NodeSpec& spec) {
  json labels = {{"kubernetes.io/os", "linux"},
                 {"kubernetes.io/hostname", spec.name},
                 {"node.kubernetes.io/instance-type", spec.instance_type},
                 {"aliyun.accelerator/nvidia_name", "NVIDIA-A10"},
                 {"aliyun.accelerator/nvidia_count", std::to_string(spec.gpus)},
                 {"cgpu-guard.io/cgpu-version", spec.cgpu_version},
                 {"cgpu-guard.io/nvidia-driver-version", spec.driver},
                 {"cgpu-guard.io/container-toolkit-version", spec.toolkit}};
  if (!spec.schedule.empty()) labels["ack.node.gpu.schedule"] = spec.schedule;
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", spec.name}, {"labels", labels}}},
          {"status",
           {{"capacity",
             {{"aliyun.com/gpu-count", std::to_string(spec.gpus)},
              {"aliyun.com/gpu-mem", std::to_string(24 * spec.gpus)}}},
            {"nodeInfo",
             {{"kernelVersion", spec.kernel},
              {"osImage", "Alibaba Cloud Linux 3.2104 LTS (Soaring Falcon)"},
              {"kubeletVersion", "v1.30.1-aliyun.1"}}}}}};
}

nlohmann::json MakeBinding(const std::string& pod, const std::string& node,
                           const std::vector<int>& gpus) {
  json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", pod}, {"namespace", "default"}, {"uid", "uid-" + pod}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node}}}};
  if (!gpus.empty()) {
    json allocation = json::object();
    for (int gpu : gpus) allocation["0"][std::to_string(gpu)] = 2;
    binding["metadata"]["annotations"] = {
        {"scheduler.framework.gpushare.allocation", allocation.dump()}};
  }
  return binding;
}

std::string MakeReview(const std::string& uid, const std::string& resource,
                       const std::string& sub_resource, const std::string& operation,
                       const std::string& name, const nlohmann::json& object,
                       const nlohmann::json& old_object, bool dry_run) {
  const bool is_node = resource == "nodes";
  json request = {{"uid", uid},
                  {"kind",
                   {{"group", ""},
                    {"version", "v1"},
                    {"kind", is_node                                                 ? "Node"
                             : (sub_resource == "binding" || resource == "bindings") ? "Binding"
                                                                                     : "Pod"}}},
                  {"resource", {{"group", ""}, {"version", "v1"}, {"resource", resource}}},
                  {"name", name},
                  {"operation", operation},
                  {"userInfo", {{"username", "system:kube-scheduler"}}},
                  {"object", object},
                  {"oldObject", old_object},
                  {"dryRun", dry_run}};
  if (!sub_resource.empty()) request["subResource"] = sub_resource;
  if (!is_node) request["namespace"] = "default";
  return json{
      {"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"request", request}}
      .dump();
}

std::string MakeList(const std::vector<nlohmann::json>& items) {
  return json{{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}}.dump();
}

}  // namespace cgpu::testing
