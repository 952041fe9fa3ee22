// ReviewFactsReader: a decoded AdmissionReview into ReviewFacts, the plain data the policy reads.
//
// Pods, pods/binding and nodes have their objects read; every other resource passes with the
// request alone. An object that is not what the request names (a binding without target.name, a
// node that is not a JSON object) leaves the facts empty and says why in `object_error`. Create
// once; Read() is const and thread-safe.
#pragma once

#include "adapters/admission_codec.h"
#include "adapters/node_facts_reader.h"
#include "core/review_facts.h"

namespace cgpu {

class ReviewFactsReader {
 public:
  explicit ReviewFactsReader(NodeFactsReader nodes) : nodes_(std::move(nodes)) {}

  ReviewFacts Read(const DecodedReview& review) const;

 private:
  NodeFactsReader nodes_;
};

}  // namespace cgpu
