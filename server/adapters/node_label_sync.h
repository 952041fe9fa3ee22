// One pass of the node-facts agent against the API server: GET the Node, work out which of the
// labels the agent owns differ from what the host says, and merge-patch exactly those (see
// node_label_patch.h for the patch). A node already right costs one GET and no write.
//
// The outcome says what happened in words fit for the agent's log: a refusal names the RBAC the
// agent needs, since no retry fixes it; every other failure is worth retrying. Thread-safe as far
// as the KubeApi is; nothing here keeps state between passes.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "adapters/kube_api.h"
#include "core/host_facts.h"

namespace cgpu {

enum class LabelSyncResult {
  kUpToDate,   // nothing to change
  kPatched,    // message: the merge patch sent
  kForbidden,  // message: what was refused, and what grants it
  kFailed,     // message: why, for a retry later
};

struct LabelSyncOutcome {
  LabelSyncResult result;
  std::string message;
};

// Brings `node`'s owned labels to `desired` (a value to set, nullopt to remove), and when
// `max_pod_label` is above 0 also the max-pod label, as MaxPodLabelToWrite says (0 leaves it).
LabelSyncOutcome SyncNodeLabels(const KubeApi& client, const std::string& node,
                                const LabelChange& desired, int max_pod_label);

}  // namespace cgpu
