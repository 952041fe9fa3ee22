// The one traversal from a JSON Pod, Binding or Node to its object view (object_views.h),
// written once over a minimal read-only JSON interface so that the simdjson document of the
// admission codec and the nlohmann::json values of the informers read exactly alike.
//
// A JsonView is a cheap, copyable handle on a JSON value that may be missing (a default-constructed
// view is missing). Member() of a value that is not an object, or of an absent key, is missing;
// String() of anything but a string is "", Bool() of anything but a boolean is nullopt. Member()
// gives the last occurrence of a repeated key; ForEachMember() shows every occurrence in document
// order. The iteration functions do nothing on values of another type. TypeName() is what error
// messages call the type: "null", "boolean", "number", "string", "array", "object" ("" when
// missing). Views must not outlive their document. Nothing here throws or fails.
#pragma once

#include <concepts>
#include <optional>
#include <string>
#include <string_view>

#include "adapters/object_views.h"
#include "core/quantity.h"

namespace cgpu {

template <typename V>
concept JsonView = std::copyable<V> && std::default_initializable<V> &&
    requires(const V view, std::string_view key) {
  { view.exists() } -> std::same_as<bool>;
  { view.is_null() } -> std::same_as<bool>;
  { view.is_object() } -> std::same_as<bool>;
  { view.TypeName() } -> std::same_as<std::string_view>;
  { view.Bool() } -> std::same_as<std::optional<bool>>;
  { view.Member(key) } -> std::same_as<V>;
  { view.String() } -> std::same_as<std::string_view>;
  view.ForEachMember([](std::string_view, const V&) {});  // objects: each key and value
  view.ForEachElement([](const V&) {});                   // arrays: each element
};

template <JsonView V>
GpuAnnotations ReadGpuAnnotations(const V& annotations) {
  return GpuAnnotations{std::string(annotations.Member(kGpuIndexAnnotation).String()),
                        std::string(annotations.Member(kGpuAllocationAnnotation).String())};
}

// Whether some container of `containers` (spec.containers) shares a GPU through cGPU: it has a
// limit for kGpuMemResource or kGpuCoreResource whose quantity is above zero. This is the test of
// ACK's GPU-sharing schedulers, which read limits of spec.containers only (never init containers,
// never requests) and skip amounts that are not above zero:
//   - AliyunContainerService/gpushare-scheduler-extender pkg/utils/pod.go: IsGPUsharingPod is
//     GetGPUMemoryFromPodResource(pod) > 0, the sum of spec.containers[*].resources.limits
//     ["aliyun.com/gpu-mem"];
//   - the scheduler-framework plugin (zqzten/koordinator, a copy of ACK's plugins:
//     pkg/scheduler/plugins/ack/devicesharing/gpushare/gpushare.go PreFilter keeps a limit of
//     pod.Spec.Containers for aliyun.com/gpu-mem or aliyun.com/gpu-core.percentage only when
//     Value() > 0; devicesharing/runtime/utils.go IsMyPod likewise).
// Requests add nothing: the API server refuses a pod whose extended-resource request differs from
// its limit or has no limit, and any negative amount (kubernetes/kubernetes
// pkg/apis/core/validation/validation.go, validateResourceRequirements: "must be equal to ...
// limit", "Limit must be set for non overcommitable resources"; ValidateResourceQuantityValue).
// The API server writes every quantity as a JSON string (resource.Quantity.MarshalJSON); a limit
// of any other JSON type reads as no amount.
template <JsonView V>
bool ContainersShareGpu(const V& containers) {
  bool found = false;
  containers.ForEachElement([&found](const V& container) {
    if (found) return;
    const V limits = container.Member("resources").Member("limits");
    for (const char* resource : {kGpuMemResource, kGpuCoreResource}) {
      if (QuantityIsPositive(limits.Member(resource).String())) found = true;
    }
  });
  return found;
}

template <JsonView V>
PodObject ReadPodObject(const V& pod) {
  PodObject out;
  const V metadata = pod.Member("metadata");
  out.namespace_name = metadata.Member("namespace").String();
  out.name = metadata.Member("name").String();
  out.uid = metadata.Member("uid").String();
  const V spec = pod.Member("spec");
  out.node_name = spec.Member("nodeName").String();
  out.phase = pod.Member("status").Member("phase").String();
  out.requests_cgpu = ContainersShareGpu(spec.Member("containers"));
  out.gpu_annotations = ReadGpuAnnotations(metadata.Member("annotations"));
  return out;
}

template <JsonView V>
BindingObject ReadBindingObject(const V& binding) {
  BindingObject out;
  const V metadata = binding.Member("metadata");
  out.namespace_name = metadata.Member("namespace").String();
  out.name = metadata.Member("name").String();
  out.uid = metadata.Member("uid").String();
  out.target_name = binding.Member("target").Member("name").String();
  out.gpu_annotations = ReadGpuAnnotations(metadata.Member("annotations"));
  return out;
}

template <JsonView V>
NodeObject ReadNodeObject(const V& node) {
  NodeObject out;
  const V metadata = node.Member("metadata");
  out.name = metadata.Member("name").String();
  out.uid = metadata.Member("uid").String();
  metadata.Member("labels").ForEachMember([&out](std::string_view key, const V& value) {
    out.labels.emplace_back(std::string(key), std::string(value.String()));
  });
  const V status = node.Member("status");
  const V node_info = status.Member("nodeInfo");
  out.os_image = node_info.Member("osImage").String();
  out.kernel_version = node_info.Member("kernelVersion").String();
  out.gpu_count = status.Member("capacity").Member("aliyun.com/gpu-count").String();
  return out;
}

}  // namespace cgpu
