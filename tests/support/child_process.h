// The cgpu-guard binary as a child process, for tests that run it as users do.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace cgpu::testing {

struct Process {
  pid_t pid = -1;
  std::string log_path;

  std::string Log() const;  // stdout and stderr so far
  long PeakRssKb() const;   // the process's peak resident memory so far (VmHWM); 0 if gone
  // Exit status, or -1 if still running after `timeout`.
  int Wait(std::chrono::milliseconds timeout);
  ~Process();  // SIGKILL if still running
};

// Starts the binary with `args`, stdout and stderr going to <dir>/out.log.
std::unique_ptr<Process> Spawn(const std::vector<std::string>& args, const std::string& dir);

// `serve` on ephemeral loopback ports with <dir>/tls.crt and <dir>/tls.key, then `extra`.
std::vector<std::string> ServeArgs(const std::string& dir,
                                   const std::vector<std::string>& extra = {});

// The port named in the "serving" log line's `field` ("webhook" or "metrics"), or 0 after 5 s.
int WaitForPort(const Process& process, const std::string& field, const std::string& scheme);

// Whether the process's log comes to contain `text` within `timeout` (the log is written as
// things happen: a test waits on it instead of sleeping a guessed time).
bool WaitForLog(const Process& process, const std::string& text,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace cgpu::testing
