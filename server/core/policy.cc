#include "core/policy.h"

namespace cgpu {

Decision AllowEverything(const AdmissionRequest& /*request*/) { return Allow("no-policy"); }

}  // namespace cgpu
