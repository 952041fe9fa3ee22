// Decision: the answer to one admission request, as a value.
//
// Three outcomes, kept apart on purpose:
//   allowed - let the request through (possibly with warnings the user sees in kubectl);
//   denied  - refuse it; `message` must stand alone after "admission webhook ... denied the
//             request:";
//   errored - we could not decide (e.g. cluster state unknown). The server answers with an HTTP
//             error, so that the webhook's failurePolicy, not we, decides what happens.
// Build decisions with Allow(), Deny() and Errored(); they are plain values, safe to copy.
#pragma once

#include <string>
#include <vector>

namespace cgpu {

enum class Verdict { kAllowed, kDenied, kErrored };

// What about the placement a decision is concerned with, whatever its verdict: the GPU is full,
// the node is incompatible, or it could not be checked (unknown facts, a stale cache, a
// placement that could not be recorded). Events (core/event_intent.h) are named after it; the
// reason alone cannot tell an unknown rule from an incompatible one.
enum class Concern { kNone, kGpuFull, kIncompatible, kUnchecked };

struct Decision {
  Verdict verdict = Verdict::kAllowed;
  // A short, stable machine name for why (e.g. "not-cgpu", "pods-per-gpu"): metrics and logs.
  std::string reason;
  // For a person: what, where, why and what to do. Empty for a plain allow.
  std::string message;
  // status.code on denial (403 if 0) or the HTTP status on error.
  int code = 0;
  std::vector<std::string> warnings;
  // Set when the policy denied but the mode (warn, dry-run) let the request through: logs and
  // metrics show what enforcement would have done.
  bool would_deny = false;
  Concern concern = Concern::kNone;

  bool allowed() const { return verdict == Verdict::kAllowed; }
};

Decision Allow(std::string reason);
Decision Deny(std::string reason, std::string message, int code = 403);
Decision Errored(std::string reason, std::string message, int http_status = 500);

std::string_view ToString(Verdict verdict);

}  // namespace cgpu
