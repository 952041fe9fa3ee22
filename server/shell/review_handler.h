// HandleReview: one POST /validate, from HTTP facts to HTTP answer, with no socket in sight.
//
// Checks method and content type, decodes the AdmissionReview, asks the policy, encodes the
// answer. Every failure becomes a precise HTTP answer (405, 415, 400, 500) with a metav1.Status
// body; nothing throws out of here, whatever the input or the policy does. The outcome also says
// what happened, so the server can count and log it without decoding anything twice.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "adapters/admission_codec.h"
#include "core/admission_request.h"
#include "core/decision.h"
#include "core/event_intent.h"
#include "core/policy.h"

namespace cgpu {

struct ReviewCall {
  std::string_view method;
  std::string_view content_type;
  std::string_view body;
};

struct ReviewOutcome {
  int http_status = 200;
  std::string body;  // application/json
  // Set when the review decoded; the policy then produced `decision`.
  std::optional<AdmissionRequest> request;
  Decision decision;
  // Set when the call was refused before a decision: a stable label for metrics.
  std::string bad_request_reason;
  // The Event the decision calls for on the pod (core/event_intent.h PodEventFor), if any.
  std::optional<EventIntent> event;
};

// Turns a decoded review into the facts the policy reads (adapters/review_facts_reader).
using FactReader = std::function<ReviewFacts(const DecodedReview&)>;
// The request alone, no objects read: for policies that need nothing more.
ReviewFacts RequestOnly(const DecodedReview& review);

ReviewOutcome HandleReview(const ReviewCall& call, const Policy& policy,
                           const FactReader& read_facts = RequestOnly);

// HandleReview in two halves, for a server that decides some reviews on another thread: the
// first checks, decodes and reads facts (or refuses); the second asks the policy and encodes.
// A PreparedReview owns all it holds.
struct PreparedReview {
  std::optional<ReviewOutcome> refused;  // set: the answer; there is nothing to decide
  ReviewApiVersion api_version = ReviewApiVersion::kV1;
  ReviewFacts facts;
};
PreparedReview PrepareReview(const ReviewCall& call, const FactReader& read_facts = RequestOnly);
ReviewOutcome DecideReview(const PreparedReview& prepared, const Policy& policy);

// "application/json", "application/json; charset=utf-8" (any case) are JSON; nothing else is.
bool IsJsonContentType(std::string_view content_type);

}  // namespace cgpu
