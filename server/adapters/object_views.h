// Object views: the few fields of a Pod, Binding or Node that cgpu-guard's facts come from, as
// plain data with no JSON library in sight.
//
// Two adapters fill them, through the one traversal in object_view_reader.h: the admission
// codec from its simdjson document (the request hot path), and the nlohmann readers used by the
// informers, `check` and cluster-state files. The facts readers (pod_facts_reader,
// node_facts_reader) then work on views only, so each rule for reading an object is written once.
//
// A field that is absent, null or of the wrong JSON type reads as empty, exactly as a missing one:
// reading an object never fails. Where a JSON object holds the same key twice, the last one counts
// (as in nlohmann::json and Go's encoding/json).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/resource_routes.h"

namespace cgpu {

inline constexpr char kGpuIndexAnnotation[] = "ALIYUN_COM_GPU_MEM_IDX";
inline constexpr char kGpuAllocationAnnotation[] = "scheduler.framework.gpushare.allocation";
// Requesting either of these makes a pod share a GPU through cGPU.
inline constexpr char kGpuMemResource[] = "aliyun.com/gpu-mem";
inline constexpr char kGpuCoreResource[] = "aliyun.com/gpu-core.percentage";

// The two GPU-assignment annotations of metadata.annotations (see pod_facts_reader.h).
struct GpuAnnotations {
  std::string index;       // ALIYUN_COM_GPU_MEM_IDX
  std::string allocation;  // scheduler.framework.gpushare.allocation (itself JSON text)
};

struct PodObject {
  std::string namespace_name;  // metadata.namespace
  std::string name;            // metadata.name
  std::string uid;             // metadata.uid
  std::string node_name;       // spec.nodeName
  std::string phase;           // status.phase
  // Some container of spec.containers has a resources.limits amount above zero for
  // kGpuMemResource or kGpuCoreResource: what makes ACK count the pod as GPU-sharing (init
  // containers and requests do not; see ContainersShareGpu in object_view_reader.h).
  bool requests_cgpu = false;
  GpuAnnotations gpu_annotations;
};

// A Binding, from pods/binding or the legacy bindings resource. Schedulers fill only
// metadata.name, metadata.uid (the pod's uid) and target; kube-scheduler adds metadata.namespace.
struct BindingObject {
  std::string namespace_name;  // metadata.namespace
  std::string name;            // metadata.name
  std::string uid;             // metadata.uid: the uid of the pod being bound
  std::string target_name;     // target.name: the node
  GpuAnnotations gpu_annotations;
};

struct NodeObject {
  std::string name;  // metadata.name
  std::string uid;   // metadata.uid: Events about the node name it (kubectl describe matches on it)
  // metadata.labels in document order; a value that is not a string reads as "". A key the
  // document repeats is listed each time and Label() gives its last value.
  std::vector<std::pair<std::string, std::string>> labels;
  std::string os_image;        // status.nodeInfo.osImage
  std::string kernel_version;  // status.nodeInfo.kernelVersion
  std::string gpu_count;       // status.capacity["aliyun.com/gpu-count"]

  // The value of label `key`, or "" when there is none.
  std::string_view Label(std::string_view key) const {
    const std::string* value = FindLabel(key);
    return value != nullptr ? std::string_view(*value) : std::string_view();
  }
  // The value of label `key`, or nullptr when the node has no such label (a label may be "").
  const std::string* FindLabel(std::string_view key) const {
    for (auto it = labels.rbegin(); it != labels.rend(); ++it) {
      if (it->first == key) return &it->second;
    }
    return nullptr;
  }
};

// request.object or request.oldObject of an AdmissionReview.
struct ReviewObject {
  bool present = false;  // a JSON object was sent (absent, null or another JSON type: false)
  // The view ObjectKindFor(request) names, read from the object when present; monostate otherwise.
  std::variant<std::monostate, PodObject, BindingObject, NodeObject> view;
};

}  // namespace cgpu
