// Reading pods and bindings (object views, or JSON through them) into PodFacts and BindingFacts.
//
// Which GPU a cGPU pod got is written on the pod by ACK's GPU-sharing scheduler before binding,
// in one of two schemes:
//   - gpushare-scheduler-extender: annotation ALIYUN_COM_GPU_MEM_IDX = "1" (a GPU index; a
//     comma-separated list is accepted too);
//   - the scheduler-framework plugin: annotation scheduler.framework.gpushare.allocation =
//     {"<container index>":{"<gpu index>":<GiB>}}, e.g. {"0":{"1":1},"1":{"1":7}}: both
//     containers on GPU 1, so the pod uses GPU 1 once.
// The framework annotation wins when both are present. Reading never throws and never fails: a
// garbled annotation leaves the GPUs unknown with `error` saying why. The allocation annotation is
// parsed with simdjson; where it repeats a key, the last one counts. Pure, thread-safe functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "adapters/object_views.h"
#include "core/pod_facts.h"
#include "core/review_facts.h"

namespace cgpu {

PodFacts PodFactsFrom(const PodObject& pod);
PodFacts PodFactsFrom(PodObject&& pod);            // the same, moving the strings
PodFacts ReadPodFacts(const nlohmann::json& pod);  // PodFactsFrom(ReadPodObject(pod))

GpuAssignment GpuAssignmentFrom(const GpuAnnotations& annotations);
// From an object's metadata.annotations (a JSON object; anything else reads as no annotation).
GpuAssignment ReadGpuAssignment(const nlohmann::json& annotations);

// A pods/binding object: target.name is the node. The pod is named by the request (the API
// server puts the pod's name and namespace there) or, failing that, by the Binding's metadata.
BindingFacts BindingFactsFrom(const BindingObject& binding, const std::string& request_namespace,
                              const std::string& request_name);
BindingFacts ReadBindingFacts(const nlohmann::json& binding, const std::string& request_namespace,
                              const std::string& request_name);

}  // namespace cgpu
