// Exit codes the commands that talk to the API server share (node-facts, unregister, selftest):
// 0 done, 1 failed (retrying may help), 2 bad usage, 3 refused by RBAC (retrying cannot help).
#pragma once

namespace cgpu {

inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitForbidden = 3;

}  // namespace cgpu
