// The node label keys cgpu-guard's own agent writes and the webhook and `check` read, by
// default (each can be changed with its --*-label flag, on every command alike). One definition,
// so that the writer and the readers cannot drift apart.
#pragma once

namespace cgpu {

inline constexpr char kCgpuVersionLabel[] = "cgpu-guard.io/cgpu-version";
inline constexpr char kDriverVersionLabel[] = "cgpu-guard.io/nvidia-driver-version";
inline constexpr char kToolkitVersionLabel[] = "cgpu-guard.io/container-toolkit-version";

}  // namespace cgpu
