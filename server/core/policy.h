// Policy: the function from an admission request, its objects read into facts, to a decision.
//
// A Policy sees only plain data (ReviewFacts) and returns a Decision; it does no I/O, takes no
// locks of its own and never throws, so the server can call it from any thread. The server is built
// around the Policy type, so richer policies plug in without touching HTTP, TLS or the codec.
#pragma once

#include <functional>

#include "core/decision.h"
#include "core/review_facts.h"

namespace cgpu {

using Policy = std::function<Decision(const ReviewFacts&)>;

// Allows every well-formed request. The policy of a server with no rules configured.
Decision AllowEverything(const ReviewFacts& facts);

}  // namespace cgpu
