#include "shell/review_handler.h"

#include <cctype>
#include <exception>

namespace cgpu {
namespace {

ReviewOutcome Refuse(int http_status, std::string reason, std::string_view message) {
  ReviewOutcome outcome;
  outcome.http_status = http_status;
  outcome.body = EncodeStatusError(http_status, message);
  outcome.bad_request_reason = std::move(reason);
  return outcome;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

Decision DecideSafely(const Policy& policy, const FactReader& read_facts,
                      const DecodedReview& review) {
  // Reading and deciding promise not to throw; this is the one place that makes sure of it, so
  // that a bug costs one request an HTTP 500 (the failurePolicy decides) rather than the process.
  try {
    return policy(read_facts(review));
  } catch (const std::exception& e) {
    return Errored("internal-error", std::string("internal error while deciding: ") + e.what());
  } catch (...) {
    return Errored("internal-error", "internal error while deciding");
  }
}

}  // namespace

bool IsJsonContentType(std::string_view content_type) {
  std::string_view media_type = content_type.substr(0, content_type.find(';'));
  while (!media_type.empty() && media_type.back() == ' ') media_type.remove_suffix(1);
  return EqualsIgnoreCase(media_type, "application/json");
}

ReviewFacts RequestOnly(const DecodedReview& review) {
  ReviewFacts facts;
  facts.request = review.request;
  return facts;
}

ReviewOutcome HandleReview(const ReviewCall& call, const Policy& policy,
                           const FactReader& read_facts) {
  if (call.method != "POST") {
    return Refuse(
        405, "method-not-allowed",
        "method " + std::string(call.method) + " is not allowed; POST an AdmissionReview");
  }
  if (!IsJsonContentType(call.content_type)) {
    return Refuse(415, "unsupported-media-type",
                  "Content-Type \"" + std::string(call.content_type) +
                      "\" is not supported; send application/json");
  }
  ReviewDecodeResult decoded = DecodeAdmissionReview(call.body);
  if (auto* error = std::get_if<ReviewDecodeError>(&decoded)) {
    return Refuse(400, error->reason, error->message);
  }
  DecodedReview& review = std::get<DecodedReview>(decoded);

  ReviewOutcome outcome;
  outcome.decision = DecideSafely(policy, read_facts, review);
  if (outcome.decision.verdict == Verdict::kErrored) {
    outcome.http_status = outcome.decision.code >= 500 ? outcome.decision.code : 500;
    outcome.body = EncodeStatusError(outcome.http_status, outcome.decision.message);
  } else {
    outcome.body =
        EncodeAdmissionResponse(review.api_version, review.request.uid, outcome.decision);
  }
  outcome.request = std::move(review.request);
  return outcome;
}

}  // namespace cgpu
