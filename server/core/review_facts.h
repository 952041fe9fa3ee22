// ReviewFacts: one admission request with its objects already read into plain facts.
//
// adapters/review_facts_reader fills this from a decoded AdmissionReview; the policy decides on
// it. Which members are set depends on the route (core/resource_routes.h): pods (pod, old_pod on
// UPDATE), pods/binding and bindings (binding), nodes (node, old_node on UPDATE). A member is empty
// when the request has no such object (DELETE has no new object) or when `object_error` says why it
// could not be read.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "core/admission_request.h"
#include "core/node_facts.h"
#include "core/pod_facts.h"
#include "core/resource_routes.h"

namespace cgpu {

// A binding (pods/binding, or the legacy bindings resource): put pod namespace/name on node
// `node`.
struct BindingFacts {
  std::string pod_namespace;
  std::string pod_name;
  // The Binding's metadata.uid: the uid of the pod it binds ("" when the client sent none). A pod
  // of the same name with another uid is an earlier pod, not this one.
  std::string pod_uid;
  std::string node;
  // The API server copies a Binding's annotations onto the pod, so a scheduler may send the GPU
  // allocation with the binding itself.
  GpuAssignment gpus;

  std::string PodKey() const { return pod_namespace + "/" + pod_name; }
};

struct ReviewFacts {
  AdmissionRequest request;
  const ResourceRoute* route = nullptr;  // nullptr: a resource cgpu-guard does not judge
  // When the request arrived (its body complete); live reads made to decide it share one deadline
  // counted from here. The epoch (default): from when the decision starts.
  std::chrono::steady_clock::time_point received{};
  std::optional<PodFacts> pod;
  std::optional<PodFacts> old_pod;
  std::optional<BindingFacts> binding;
  std::optional<NodeFacts> node;
  std::optional<NodeFacts> old_node;
  std::string object_error;  // the object is not the resource the request names, or is garbled
};

}  // namespace cgpu
