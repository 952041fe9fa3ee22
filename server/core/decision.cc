#include "core/decision.h"

#include <utility>

namespace cgpu {

Decision Allow(std::string reason) {
  Decision decision;
  decision.verdict = Verdict::kAllowed;
  decision.reason = std::move(reason);
  return decision;
}

Decision Deny(std::string reason, std::string message, int code) {
  Decision decision;
  decision.verdict = Verdict::kDenied;
  decision.reason = std::move(reason);
  decision.message = std::move(message);
  decision.code = code == 0 ? 403 : code;
  return decision;
}

Decision Errored(std::string reason, std::string message, int http_status) {
  Decision decision;
  decision.verdict = Verdict::kErrored;
  decision.reason = std::move(reason);
  decision.message = std::move(message);
  decision.code = http_status;
  return decision;
}

std::string_view ToString(Verdict verdict) {
  switch (verdict) {
    case Verdict::kAllowed:
      return "allowed";
    case Verdict::kDenied:
      return "denied";
    case Verdict::kErrored:
      return "errored";
  }
  return "unknown";
}

}  // namespace cgpu
