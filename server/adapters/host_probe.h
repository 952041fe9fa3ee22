// ProbeHost: reads a GPU node's cGPU, NVIDIA driver and nvidia-container-toolkit versions from
// the node itself, as seen under `host_root` (the host's / mounted read-only into the agent).
//
// Each fact is tried from several places, first hit wins, and every place's outcome is kept so
// the agent can say why a fact is absent:
//   driver   /proc/driver/nvidia/version, then `nvidia-smi --query-gpu=driver_version`
//   cGPU     the module's proc entry (default /proc/cgpu_km/version), then
//            /sys/module/<module>/version (default module cgpu_km)
//   toolkit  `nvidia-ctk --version` (the toolkit's own CLI), the host's package database (dpkg
//            status, or `rpm --dbpath <host>/var/lib/rpm -q`), then `nvidia-container-cli
//            --version` (libnvidia-container's version, the same as the toolkit's since 1.6)
// Host tools are run from under host_root with a timeout and a bounded output, through the
// host's own dynamic loader and library directories when host_root is a mounted host (they need
// the host's NVIDIA libraries); one that still cannot run is just one miss. The RPM database is
// read with the agent's own `rpm`, when it has one (the container image does not: it would bring
// perl along; nvidia-ctk and nvidia-container-cli cover RPM hosts).
// The text readers are core/host_facts; this file does the reading and running.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace cgpu {

struct HostProbeOptions {
  std::string host_root = "/";
  // Where the cGPU kernel module reports its version. Not confirmed against ACK documentation:
  // verify on a node with `cat /proc/cgpu_km/version` or `cat /sys/module/cgpu_km/version`.
  std::string cgpu_proc_file = "/proc/cgpu_km/version";
  std::string cgpu_module = "cgpu_km";
  // The agent's own rpm, used to read the host's RPM database; "" to skip.
  std::string rpm_command = "rpm";
  std::chrono::milliseconds command_timeout{5'000};
};

struct ProbedFact {
  std::optional<std::string> value;
  std::string source;               // where the value came from
  std::vector<std::string> misses;  // each place tried before, and why it gave nothing
  // "from /proc/driver/nvidia/version", or "not found: <misses joined>".
  std::string Explain() const;
};

struct HostFacts {
  ProbedFact cgpu_version;
  ProbedFact driver_version;
  ProbedFact toolkit_version;
};

HostFacts ProbeHost(const HostProbeOptions& options);

// Runs argv[0] (a path, or a bare name looked up on PATH) with `args`, without a shell, stdin
// from /dev/null, stderr discarded, in a process group of its own with every signal at its
// default and none blocked. Returns stdout (at most `max_output` bytes) when it exits 0 within
// `timeout`; else an error saying what happened (not executable, exit status, killed after the
// timeout). On a timeout the whole group is killed and waited for briefly; a tool that cannot die
// yet (uninterruptible sleep) is left to be reaped by a later call, never waited on.
StatusOr<std::string> RunTool(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout, size_t max_output = 64 * 1024);

// Tools killed after a timeout that have not been reaped yet.
size_t UnreapedTools();

}  // namespace cgpu
