#include "core/max_pod_label.h"

namespace cgpu {

std::optional<int> ParseMaxPodLabel(std::string_view text) {
  if (text.empty() || text.size() > 4 ||
      text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  int value = 0;
  for (char c : text) value = value * 10 + (c - '0');
  return value > 0 ? std::optional<int>(value) : std::nullopt;
}

std::string_view ToString(MaxPodLabelProblem problem) {
  switch (problem) {
    case MaxPodLabelProblem::kNone:
      return "none";
    case MaxPodLabelProblem::kMissing:
      return "missing";
    case MaxPodLabelProblem::kInvalid:
      return "invalid";
    case MaxPodLabelProblem::kAboveLimit:
      return "above-limit";
  }
  return "none";
}

MaxPodLabelAdvice AdviseMaxPodLabel(const std::optional<std::string>& value, int limit,
                                    const std::string& node, const std::string& key) {
  MaxPodLabelAdvice advice;
  const std::string limit_text = std::to_string(limit);
  if (!value) {
    advice.problem = MaxPodLabelProblem::kMissing;
    advice.message = "no " + key +
                     " label: ACK's GPU-sharing scheduler does not count pods per GPU here, so it "
                     "can keep offering a full GPU and a pod cgpu-guard denies stays Pending";
  } else if (const std::optional<int> parsed = ParseMaxPodLabel(*value); !parsed) {
    advice.problem = MaxPodLabelProblem::kInvalid;
    advice.message = key + "=\"" + *value +
                     "\" is not a positive whole number: cgpu-guard takes no limit from it and "
                     "the scheduler may count pods per GPU differently";
  } else if (*parsed > limit) {
    advice.problem = MaxPodLabelProblem::kAboveLimit;
    advice.message = key + "=" + *value + " is above the limit of " + limit_text +
                     " pods per GPU: the scheduler can offer a GPU that cgpu-guard refuses, and "
                     "the pod stays Pending";
  } else {
    return advice;
  }
  advice.fix = "kubectl label node " + node + " " + key + "=" + limit_text + " --overwrite";
  return advice;
}

std::optional<std::string> MaxPodLabelToWrite(const std::optional<std::string>& value, int limit) {
  if (limit <= 0 || !AdviseMaxPodLabel(value, limit, "").due()) return std::nullopt;
  return std::to_string(limit);
}

}  // namespace cgpu
