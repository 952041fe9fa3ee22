// What a GPU node's own files and tools say about its cGPU, driver and toolkit versions.
//
// Pure text readers for the outputs the node-facts agent collects (file contents and command
// output), and the label change that brings a node's labels in line with them. Each reader
// returns a version only when the text holds exactly one unambiguous one; anything else is
// "absent", never a guess, because a wrong label would make the webhook allow or deny on a
// fact nobody checked. No I/O here: adapters/host_probe reads the files and runs the tools.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace cgpu {

// /proc/driver/nvidia/version:
//   "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.161.08  Wed Mar 13 ..."
//   "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build ..."
std::optional<std::string> DriverVersionFromProc(std::string_view text);

// `nvidia-smi --query-gpu=driver_version --format=csv,noheader`: one line per GPU, all equal.
std::optional<std::string> DriverVersionFromNvidiaSmi(std::string_view output);

// The cGPU module's proc entry or /sys/module/<module>/version: the first line holds the
// version, alone or after a label ("1.5.10", "v1.5.10", "cgpu version: 1.5.10").
std::optional<std::string> CgpuVersionFromText(std::string_view text);

// `nvidia-container-cli --version`: "cli-version: 1.14.6" (older releases: "version: 1.0.7").
std::optional<std::string> ToolkitVersionFromCli(std::string_view output);

// `nvidia-ctk --version`: "NVIDIA Container Toolkit CLI version 1.14.6".
std::optional<std::string> ToolkitVersionFromCtk(std::string_view output);

// A dpkg status file: the installed version of nvidia-container-toolkit (or, before 1.6, the
// libnvidia-container-tools package that held the CLI), without epoch and Debian revision.
std::optional<std::string> ToolkitVersionFromDpkgStatus(std::string_view status);

// `rpm -q --queryformat '%{VERSION}\n' nvidia-container-toolkit`: the version on the first line;
// "package ... is not installed" gives nothing.
std::optional<std::string> ToolkitVersionFromRpmQuery(std::string_view output);

// A label value as Kubernetes accepts it: at most 63 characters of [A-Za-z0-9._-], starting and
// ending with an alphanumeric.
bool IsValidLabelValue(std::string_view value);

// Label key -> value to set, or nullopt to remove the label. Only the keys the agent owns.
using LabelChange = std::map<std::string, std::optional<std::string>>;

// What to change so that, for each owned key, the node carries `desired` (absent: no label).
// Keys already right are left out; an empty result means nothing to write.
LabelChange DiffOwnedLabels(const std::map<std::string, std::string>& current,
                            const std::map<std::string, std::optional<std::string>>& desired);

}  // namespace cgpu
