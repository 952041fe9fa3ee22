// The node label keys cgpu-guard's own agent writes and the webhook and `check` read, by
// default (each can be changed with its --*-label flag, on every command alike). One definition,
// so that the writer and the readers cannot drift apart.
#pragma once

#include <string>

namespace cgpu {

inline constexpr char kCgpuVersionLabel[] = "cgpu-guard.io/cgpu-version";
inline constexpr char kDriverVersionLabel[] = "cgpu-guard.io/nvidia-driver-version";
inline constexpr char kToolkitVersionLabel[] = "cgpu-guard.io/container-toolkit-version";

// The label keys in use: the agent writes its facts under them, and the webhook and `check` read
// them from there. Each command takes them from the same flags (shell/fact_flags.h).
struct FactLabelKeys {
  std::string cgpu_version = kCgpuVersionLabel;
  std::string driver_version = kDriverVersionLabel;
  std::string toolkit_version = kToolkitVersionLabel;
};

}  // namespace cgpu
