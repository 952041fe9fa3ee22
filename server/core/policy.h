// Policy: the pure function from an admission request to a decision.
//
// A Policy sees only plain data and returns a Decision; it does no I/O, takes no locks of its own
// and never throws, so the server can call it from any thread. The server is built around the
// Policy type, so richer policies plug in without touching HTTP, TLS or the codec.
#pragma once

#include <functional>

#include "core/admission_request.h"
#include "core/decision.h"

namespace cgpu {

using Policy = std::function<Decision(const AdmissionRequest&)>;

// Allows every well-formed request. The policy of a server with no rules configured.
Decision AllowEverything(const AdmissionRequest& request);

}  // namespace cgpu
