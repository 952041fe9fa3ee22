// AdmissionReview codec: bytes <-> typed request and decision, for admission.k8s.io/v1 and v1beta1.
//
// Decoding is a pure function: the same bytes always give the same DecodedReview or the same
// ReviewDecodeError, whose message names exactly what is wrong ("request.uid must be a string,
// got number"). It parses with simdjson (one reused parser per thread) and reads request.object
// and request.oldObject straight into the object views the facts need, so no JSON tree outlives
// the call. Encoding is the one place that echoes the request's uid and apiVersion/kind into the
// response, as the API server demands; it writes the JSON text directly. Nothing here throws; all
// functions are thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "adapters/json_text.h"  // kMaxJsonDepth
#include "adapters/object_views.h"
#include "core/admission_request.h"
#include "core/decision.h"

namespace cgpu {

enum class ReviewApiVersion { kV1, kV1beta1 };

std::string_view ToString(ReviewApiVersion version);  // "admission.k8s.io/v1", ...

struct DecodedReview {
  ReviewApiVersion api_version = ReviewApiVersion::kV1;
  AdmissionRequest request;
  // request.object / request.oldObject, read into the view ObjectKindFor(request) names (a pod,
  // a Binding or a node); fact extraction turns views into facts before the policy sees anything.
  ReviewObject object;
  ReviewObject old_object;
};

struct ReviewDecodeError {
  std::string reason;   // stable label for metrics: "invalid-json", "missing-field", ...
  std::string message;  // for a person
};

using ReviewDecodeResult = std::variant<DecodedReview, ReviewDecodeError>;

// A body nested deeper than kMaxJsonDepth is refused as "too-deep".
ReviewDecodeResult DecodeAdmissionReview(std::string_view body);

// The AdmissionReview response for `decision`. An errored decision has no AdmissionReview form;
// callers answer it with EncodeStatusError instead.
std::string EncodeAdmissionResponse(ReviewApiVersion version, std::string_view uid,
                                    const Decision& decision);

// A metav1.Status body for HTTP error answers. The API server's client decodes it, so its message
// shows up in "failed calling webhook" errors instead of a bare status code.
std::string EncodeStatusError(int http_status, std::string_view message);

// Applies the API server's limits to warnings: control characters become spaces, each warning is
// cut to 256 characters (runes), empty and repeated ones are dropped, and the list stops before
// all warnings together pass 4096 bytes.
std::vector<std::string> FitWarnings(const std::vector<std::string>& warnings);

}  // namespace cgpu
