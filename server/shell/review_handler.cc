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

// Reading and deciding promise not to throw; this is the one place that makes sure of it, so
// that a bug costs one request an HTTP 500 (the failurePolicy decides) rather than the process.
template <class F>
Decision Safely(F&& decide) {
  try {
    return decide();
  } catch (const std::exception& e) {
    return Errored("internal-error", std::string("internal error while deciding: ") + e.what());
  } catch (...) {
    return Errored("internal-error", "internal error while deciding");
  }
}

// Runs `read`, returning the error decision it threw, if any.
template <class F>
std::optional<Decision> ThrownBy(F&& read) {
  Decision thrown = Safely([&] {
    read();
    return Allow("");
  });
  if (thrown.verdict == Verdict::kErrored) return thrown;
  return std::nullopt;
}

ReviewOutcome Answer(ReviewApiVersion api_version, AdmissionRequest request, Decision decision) {
  ReviewOutcome outcome;
  outcome.decision = std::move(decision);
  if (outcome.decision.verdict == Verdict::kErrored) {
    // A client's fault (an object that is not what the request names) stays a 4xx; anything
    // else that kept us from deciding is a 5xx, so the failurePolicy decides.
    const int code = outcome.decision.code;
    outcome.http_status = code >= 400 && code <= 599 ? code : 500;
    outcome.body = EncodeStatusError(outcome.http_status, outcome.decision.message);
  } else {
    outcome.body = EncodeAdmissionResponse(api_version, request.uid, outcome.decision);
  }
  outcome.request = std::move(request);
  return outcome;
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

PreparedReview PrepareReview(const ReviewCall& call, const FactReader& read_facts) {
  PreparedReview prepared;
  if (call.method != "POST") {
    prepared.refused =
        Refuse(405, "method-not-allowed",
               "method " + std::string(call.method) + " is not allowed; POST an AdmissionReview");
    return prepared;
  }
  if (!IsJsonContentType(call.content_type)) {
    prepared.refused = Refuse(415, "unsupported-media-type",
                              "Content-Type \"" + std::string(call.content_type) +
                                  "\" is not supported; send application/json");
    return prepared;
  }
  ReviewDecodeResult decoded = DecodeAdmissionReview(call.body);
  if (auto* error = std::get_if<ReviewDecodeError>(&decoded)) {
    prepared.refused = Refuse(400, error->reason, error->message);
    return prepared;
  }
  const DecodedReview& review = std::get<DecodedReview>(decoded);
  prepared.api_version = review.api_version;
  std::optional<Decision> failed = ThrownBy([&] { prepared.facts = read_facts(review); });
  if (failed) prepared.refused = Answer(review.api_version, review.request, std::move(*failed));
  return prepared;
}

ReviewOutcome DecideReview(const PreparedReview& prepared, const Policy& policy) {
  if (prepared.refused) return *prepared.refused;
  ReviewOutcome outcome = Answer(prepared.api_version, prepared.facts.request,
                                 Safely([&] { return policy(prepared.facts); }));
  outcome.event = PodEventFor(prepared.facts, outcome.decision);
  return outcome;
}

ReviewOutcome HandleReview(const ReviewCall& call, const Policy& policy,
                           const FactReader& read_facts) {
  PreparedReview prepared = PrepareReview(call, read_facts);
  if (prepared.refused) return std::move(*prepared.refused);
  return DecideReview(prepared, policy);
}

}  // namespace cgpu
