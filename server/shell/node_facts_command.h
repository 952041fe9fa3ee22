// `cgpu-guard node-facts`: the agent that keeps one node's fact labels true.
//
// Each pass reads the host (adapters/host_probe), works out which of its own three label keys
// differ from what the node carries (core/host_facts), and sends one JSON merge patch for them,
// or nothing when all are right. Runs every --interval until SIGTERM, or once with --once.
// Failures to reach the API server are retried with exponential back-off; a refusal (401/403)
// ends the agent with exit code 3 and a message naming the permission, because retrying cannot
// fix RBAC. --dry-run reads the host and prints the labels it would write, touching nothing.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "adapters/host_probe.h"
#include "core/status.h"

namespace cgpu {

struct NodeFactsOptions {
  std::string node_name;  // default: $NODE_NAME (the chart sets it from spec.nodeName)
  HostProbeOptions probe;
  bool once = false;
  bool dry_run = false;
  std::chrono::milliseconds interval{300'000};
  // First wait after a failed pass; doubles up to --interval.
  std::chrono::milliseconds retry_backoff{1'000};
  // With --once: passes tried before giving up.
  int once_attempts = 5;
  std::string kubeconfig_file;  // empty: in-cluster service account
  std::string kubeconfig_context;
  std::string cgpu_version_label = "cgpu-guard.io/cgpu-version";
  std::string driver_version_label = "cgpu-guard.io/nvidia-driver-version";
  std::string toolkit_version_label = "cgpu-guard.io/container-toolkit-version";
};

// Exit codes: 0 done (or stopped by a signal), 1 failed, 2 bad flags, 3 permission refused.
int RunNodeFactsCommand(const std::vector<std::string>& args);

}  // namespace cgpu
