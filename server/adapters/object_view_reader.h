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

template <JsonView V>
bool RequestsCgpu(const V& containers) {
  bool found = false;
  containers.ForEachElement([&found](const V& container) {
    if (found) return;
    const V resources = container.Member("resources");
    for (const char* kind : {"limits", "requests"}) {
      const V amounts = resources.Member(kind);
      if (amounts.Member(kGpuMemResource).exists() || amounts.Member(kGpuCoreResource).exists()) {
        found = true;
      }
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
  out.requests_cgpu =
      RequestsCgpu(spec.Member("containers")) || RequestsCgpu(spec.Member("initContainers"));
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
