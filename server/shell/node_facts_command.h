// `cgpu-guard node-facts`: the agent that keeps one node's fact labels true.
//
// Each pass reads the host (adapters/host_probe), works out which of its own three label keys
// differ from what the node carries (core/host_facts), and sends one JSON merge patch for them,
// or nothing when all are right. With --set-max-pod-label N the same patch also sets
// ack.node.gpu.max-pod=N when that label is missing, unreadable or above N. Runs every --interval
// until SIGTERM, or once with --once. Failures to reach the API server are retried with exponential
// back-off; a refusal (401/403) ends the agent with exit code 3 and a message naming the
// permission, because retrying cannot fix RBAC. --dry-run reads the host and prints the labels it
// would write, touching nothing.
//
// Liveness: the running agent touches --heartbeat-file at start, after every pass (failed ones
// too) and at least every --heartbeat-period while it waits, so a stuck loop stops refreshing
// it; `--alive` checks that file instead of running (exit 0 when younger than --max-age, else 1
// saying why), for an exec liveness probe. Host tools are bounded by --command-timeout; the
// heartbeat is for whatever else could stop the loop.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "adapters/host_probe.h"
#include "core/label_keys.h"
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
  FactLabelKeys labels;  // the --*-label flags, shared with serve and check
  // --set-max-pod-label N: also keep ack.node.gpu.max-pod at most N (core/max_pod_label.h
  // MaxPodLabelToWrite). 0: leave that label, which belongs to the scheduler's setup, alone.
  int max_pod_label = 0;
  // Empty: no heartbeat. --once writes none: a run that ends by itself needs no liveness probe.
  std::string heartbeat_file = "/tmp/cgpu-guard-node-facts.heartbeat";
  // Longest wait without a heartbeat, so that a 5m --interval does not look like a stuck loop.
  std::chrono::milliseconds heartbeat_period{60'000};
  // --alive: check the heartbeat file and exit. The default exceeds the longest gap between two
  // heartbeats at the other defaults: one refresh period plus one pass whose host tools and API
  // calls all run into their timeouts (under 2m; the chart's values.yaml sums it up).
  bool alive = false;
  std::chrono::milliseconds max_age{180'000};
};

// Exit codes: 0 done (or stopped by a signal), 1 failed, 2 bad flags, 3 permission refused.
// With --alive: 0 alive, 1 not (missing, unreadable or old heartbeat), 2 bad flags.
int RunNodeFactsCommand(const std::vector<std::string>& args);

}  // namespace cgpu
