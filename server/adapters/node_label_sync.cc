#include "adapters/node_label_sync.h"

#include <utility>

#include "adapters/kube_client.h"
#include "adapters/node_label_patch.h"
#include "core/max_pod_label.h"

namespace cgpu {
namespace {

std::string NodePath(const std::string& node) { return "/api/v1/nodes/" + EscapeQueryValue(node); }

LabelSyncOutcome Refused(const std::string& verb, const std::string& node,
                         const KubeResponse& answer) {
  return {LabelSyncResult::kForbidden,
          "not allowed to " + verb + " node " + node + " (" +
              DescribeHttpError(answer.status, answer.body) +
              "). The agent's identity needs get and patch on nodes: the chart's ClusterRole "
              "<release>-node-facts grants exactly that; or label node pools by hand and turn "
              "the agent off (nodeFacts.enabled=false)."};
}

}  // namespace

LabelSyncOutcome SyncNodeLabels(const KubeApi& client, const std::string& node,
                                const LabelChange& desired, int max_pod_label) {
  StatusOr<KubeResponse> got = client.Get(NodePath(node));
  if (!got.ok()) return {LabelSyncResult::kFailed, got.status().message()};
  if (IsPermissionRefusal(got->status, got->body)) return Refused("get", node, *got);
  if (got->status == 404) {
    return {LabelSyncResult::kFailed,
            "node " + node + " does not exist (--node-name, or NODE_NAME from spec.nodeName)"};
  }
  if (got->status != 200) {
    return {LabelSyncResult::kFailed,
            "get node " + node + ": " + DescribeHttpError(got->status, got->body)};
  }
  StatusOr<std::map<std::string, std::string>> labels = ReadNodeLabels(got->body);
  if (!labels.ok()) {
    return {LabelSyncResult::kFailed, "get node " + node + ": " + labels.status().message()};
  }

  LabelChange change = DiffOwnedLabels(*labels, desired);
  const auto current = labels->find(kMaxPodLabel);
  if (std::optional<std::string> write = MaxPodLabelToWrite(
          current == labels->end() ? std::nullopt : std::optional<std::string>(current->second),
          max_pod_label)) {
    change[kMaxPodLabel] = std::move(write);
  }
  if (change.empty()) return {LabelSyncResult::kUpToDate, ""};
  const std::string patch = EncodeLabelMergePatch(change);
  StatusOr<KubeResponse> patched =
      client.Patch(NodePath(node), "application/merge-patch+json", patch);
  if (!patched.ok()) return {LabelSyncResult::kFailed, patched.status().message()};
  if (IsPermissionRefusal(patched->status, patched->body)) return Refused("patch", node, *patched);
  if (patched->status != 200) {
    return {LabelSyncResult::kFailed,
            "patch node " + node + ": " + DescribeHttpError(patched->status, patched->body)};
  }
  return {LabelSyncResult::kPatched, patch};
}

}  // namespace cgpu
