#include "adapters/review_facts_reader.h"

#include "adapters/pod_facts_reader.h"

namespace cgpu {

ReviewFacts ReviewFactsReader::Read(const DecodedReview& review) const {
  ReviewFacts facts;
  facts.request = review.request;
  const AdmissionRequest& request = facts.request;
  if (!request.resource.group.empty()) return facts;  // only core-group pods and nodes matter

  const bool has_object = review.object.is_object();
  const bool has_old = review.old_object.is_object();
  if (request.resource.resource == "pods" && request.sub_resource == "binding") {
    if (!has_object) {
      facts.object_error = "the pods/binding request carries no Binding object";
      return facts;
    }
    facts.binding = ReadBindingFacts(review.object, request.namespace_name, request.name);
    if (facts.binding->node.empty()) {
      facts.object_error = "the Binding has no target.name (the node)";
      facts.binding.reset();
    }
  } else if (request.resource.resource == "pods" && request.sub_resource.empty()) {
    if (has_object) facts.pod = ReadPodFacts(review.object);
    if (has_old) facts.old_pod = ReadPodFacts(review.old_object);
    // On CREATE with generateName the object may carry no name; the request's namespace holds.
    if (facts.pod && facts.pod->namespace_name.empty()) {
      facts.pod->namespace_name = request.namespace_name;
    }
  } else if (request.resource.resource == "nodes") {
    if (has_object) facts.node = nodes_.Read(review.object);
    if (has_old) facts.old_node = nodes_.Read(review.old_object);
  }
  if (request.operation != Operation::kDelete && !has_object &&
      (facts.request.resource.resource == "pods" || facts.request.resource.resource == "nodes") &&
      facts.object_error.empty()) {
    facts.object_error = "request.object is missing or not an object";
  }
  return facts;
}

}  // namespace cgpu
