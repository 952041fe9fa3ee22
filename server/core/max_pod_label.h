// The ack.node.gpu.max-pod label: reading it, and whether a cGPU node needs it set.
//
// ACK's GPU-sharing scheduler plugin counts pods per GPU only on nodes that carry this label;
// without it the plugin binpacks by GPU memory alone and may keep offering a GPU that already
// holds its limit of pods, so a pod that cgpu-guard denies there can stay Pending, offered the
// same full GPU again and again. Setting the label to the
// limit cgpu-guard enforces makes the scheduler count as the webhook does. AdviseMaxPodLabel
// judges one node's label against that limit: advice, never a verdict on compatibility.
// Pure functions of their inputs: no I/O, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cgpu {

inline constexpr char kMaxPodLabel[] = "ack.node.gpu.max-pod";

// "8" -> 8; what cgpu-guard honours as a pods-per-GPU limit: one to four decimal digits, above
// zero. Empty, zero, signs, spaces, anything else or over 9999 -> nullopt.
std::optional<int> ParseMaxPodLabel(std::string_view text);

enum class MaxPodLabelProblem {
  kNone,        // the label holds a limit at or below `limit`: nothing to do
  kMissing,     // no label: the scheduler does not count pods per GPU on the node
  kInvalid,     // present but not a positive whole number (ParseMaxPodLabel)
  kAboveLimit,  // a number above `limit`: the scheduler would place past what cGPU allows
};

std::string_view ToString(
    MaxPodLabelProblem problem);  // "none", "missing", "invalid", "above-limit"

struct MaxPodLabelAdvice {
  MaxPodLabelProblem problem = MaxPodLabelProblem::kNone;
  // Set when a problem is: one line saying what is wrong and why it matters.
  std::string message;
  // The command that fixes it: kubectl label node <node> <key>=<limit> --overwrite
  std::string fix;

  bool due() const { return problem != MaxPodLabelProblem::kNone; }
};

// `value`: the node's label value, nullopt when the node has no such label. `limit`: the
// pods-per-GPU limit cgpu-guard enforces on the node apart from the label itself (the rules' 20,
// lowered by --max-pods-per-gpu). `node` names the node in the fix; `key` is the label
// (kMaxPodLabel unless configured otherwise).
MaxPodLabelAdvice AdviseMaxPodLabel(const std::optional<std::string>& value, int limit,
                                    const std::string& node, const std::string& key = kMaxPodLabel);

// What the node-facts agent writes when asked to keep the label (--set-max-pod-label): `limit`
// when the advice is due (missing, unreadable, above), else nothing. A lower value is the
// operator's and stays; the agent never removes the label.
std::optional<std::string> MaxPodLabelToWrite(const std::optional<std::string>& value, int limit);

}  // namespace cgpu
