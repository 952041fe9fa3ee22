#include "adapters/review_facts_reader.h"

#include "adapters/pod_facts_reader.h"

namespace cgpu {

ReviewFacts ReviewFactsReader::Read(const DecodedReview& review) const {
  ReviewFacts facts;
  facts.request = review.request;
  const AdmissionRequest& request = facts.request;
  facts.route = FindRoute(request.resource.group, request.resource.resource, request.sub_resource);
  if (facts.route == nullptr) return facts;  // not judged: the request alone is enough

  // The codec read each object into the view the same route names.
  const auto* pod = std::get_if<PodObject>(&review.object.view);
  const auto* old_pod = std::get_if<PodObject>(&review.old_object.view);
  const auto* binding = std::get_if<BindingObject>(&review.object.view);
  const auto* node = std::get_if<NodeObject>(&review.object.view);
  const auto* old_node = std::get_if<NodeObject>(&review.old_object.view);
  switch (facts.route->object) {
    case ObjectKind::kBinding:
      if (binding == nullptr) {
        facts.object_error =
            "the " + std::string(facts.route->path) + " request carries no Binding object";
        return facts;
      }
      // The pod is named by the request (pods/binding: the pod; bindings: the Binding, named
      // after its pod) or the Binding; its namespace by the request, since a scheduler may leave
      // the Binding's empty.
      facts.binding = BindingFactsFrom(*binding, request.namespace_name, request.name);
      if (facts.binding->node.empty()) {
        facts.object_error = "the Binding has no target.name (the node)";
        facts.binding.reset();
      } else if (facts.binding->pod_name.empty()) {
        facts.object_error = "the Binding names no pod (request.name and metadata.name are empty)";
        facts.binding.reset();
      }
      break;
    case ObjectKind::kPod:
      if (pod != nullptr) facts.pod = PodFactsFrom(*pod);
      if (old_pod != nullptr) facts.old_pod = PodFactsFrom(*old_pod);
      // On CREATE with generateName the object may carry no name; the request's namespace holds.
      if (facts.pod && facts.pod->namespace_name.empty()) {
        facts.pod->namespace_name = request.namespace_name;
      }
      break;
    case ObjectKind::kNode:
      if (node != nullptr) facts.node = nodes_.Read(*node);
      if (old_node != nullptr) facts.old_node = nodes_.Read(*old_node);
      break;
    case ObjectKind::kNone:
      break;
  }
  if (request.operation != Operation::kDelete && !review.object.present &&
      facts.route->object != ObjectKind::kBinding && facts.object_error.empty()) {
    facts.object_error = "request.object is missing or not an object";
  }
  return facts;
}

}  // namespace cgpu
