// `cgpu-guard serve`: wires options, certificates, policy, servers and signals together.
#pragma once

#include <string>
#include <vector>

namespace cgpu {

// Runs until SIGTERM or SIGINT, then drains and returns the process exit code (0 after a clean
// shutdown, 1 when start-up fails, 2 on bad usage). Blocks SIGTERM/SIGINT in all threads it
// starts and waits for them on the calling thread.
int RunServeCommand(const std::vector<std::string>& args);

}  // namespace cgpu
