// `cgpu-guard check`: audit a cluster's nodes and GPUs against the rule table.
//
// Reads nodes, and pods when there are any, from a file (-f: `kubectl get nodes -o json`, or
// `kubectl get nodes,pods -A -o json`, the format `serve --cluster-state` reads; JSON or YAML) or
// from the API server (--kubeconfig FILE [--context NAME], or --in-cluster: the pod's service
// account), listed page by page as client-go does. Reports, per node: every compatibility
// finding; every GPU running more cGPU pods than the node's limit, with those pods (counted by the
// webhook's own cluster cache: a pod once per GPU it uses, finished pods not at all); and, as
// advice that never changes the verdict or the exit code, a missing, invalid or too high
// ack.node.gpu.max-pod label (core/max_pod_label.h) with the kubectl command that fixes it.
//
// Exit codes:
//   0  every cGPU node is compatible or unknown, and no GPU runs more pods than its limit
//   1  some node is incompatible, or some GPU runs more cGPU pods than its limit
//   2  usage, or bad input (an unreadable or malformed file, a bad kubeconfig, rules file, flag)
//   3  the cluster could not be read: the API server unreachable, refusing the credentials (401)
//      or the permission to list nodes and pods (403), or not done within --timeout
#pragma once

#include <string>
#include <vector>

#include "adapters/cluster_cache.h"
#include "adapters/node_facts_reader.h"
#include "core/compatibility.h"
#include "core/max_pod_label.h"

namespace cgpu {

inline constexpr int kCheckOk = 0;
inline constexpr int kCheckProblems = 1;
inline constexpr int kCheckUsage = 2;
inline constexpr int kCheckClusterUnreadable = 3;

int RunCheckCommand(const std::vector<std::string>& args);

// The pieces RunCheckCommand prints, exposed for tests.
struct CheckedNode {
  NodeFacts facts;
  NodeEvaluation evaluation;
  // Due only on cGPU nodes; never part of the verdict.
  MaxPodLabelAdvice advice;
  // The node's GPUs running more cGPU pods than its limit, by GPU index (pods read only).
  std::vector<ClusterCache::GpuOverLimit> over_limit;
};

struct CheckSource {
  std::string kind;     // "file", "kubeconfig" or "in-cluster"
  std::string path;     // file: the file ("-": stdin); kubeconfig: the kubeconfig
  std::string context;  // kubeconfig: the context read
  std::string server;   // kubeconfig, in-cluster: https://host:port
};

struct CheckReport {
  CheckSource source;
  std::vector<CheckedNode> nodes;
  // Pods were read (always from the API server; from a file when it held any Pod): only then are
  // GPUs over their limit known.
  bool pods_checked = false;
  size_t pods = 0;
  int max_pods_per_gpu = 20;  // the limit before nodes' own labels (rules, --max-pods-per-gpu)
};

// kCheckProblems when a node is incompatible or a GPU is over its limit, else kCheckOk.
int CheckExitCode(const CheckReport& report);

// One row per node: NODE CGPU VERDICT FINDING, and a line under it for each further problem:
// incompatible findings, GPUs over their limit, unknown findings, then the max-pod advice.
std::string FormatCheckTable(const std::vector<CheckedNode>& nodes, bool colour);
// The rows, then a blank line, where the nodes and pods came from, and a summary.
std::string FormatAuditTable(const CheckReport& report, bool colour);
// {"nodes": [...]}: each node with its facts, findings, advice and GPUs over their limit.
std::string FormatCheckJson(const std::vector<CheckedNode>& nodes);
// {"source": {...}, "nodes": [...], "summary": {...}}.
std::string FormatAuditJson(const CheckReport& report);

}  // namespace cgpu
