#include "adapters/node_label_sync.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/label_keys.h"
#include "core/max_pod_label.h"
#include "support/fake_api_store.h"
#include "support/memory_kube_api.h"

namespace cgpu {
namespace {

using nlohmann::json;

json LabelledNode(const std::string& name, json labels) {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", name}, {"labels", std::move(labels)}}}};
}

class NodeLabelSyncTest : public ::testing::Test {
 protected:
  json Labels(const std::string& node) const {
    return api_.Find("nodes", node).value()["metadata"]["labels"];
  }

  testing::FakeApiStore api_;
  const testing::MemoryKubeApi client_{api_};
};

TEST_F(NodeLabelSyncTest, PatchesOnlyTheOwnedLabelsThatDifferThenNothing) {
  api_.Add("nodes", LabelledNode("gpu-1", {{kCgpuVersionLabel, "1.5.0"},
                                           {kDriverVersionLabel, "470.1"},
                                           {"team", "ml"}}));
  const LabelChange desired = {{kCgpuVersionLabel, "1.5.0"}, {kDriverVersionLabel, std::nullopt}};

  const LabelSyncOutcome patched = SyncNodeLabels(client_, "gpu-1", desired, 0);
  EXPECT_EQ(patched.result, LabelSyncResult::kPatched);
  EXPECT_EQ(json::parse(patched.message),
            json::parse(R"({"metadata":{"labels":{"cgpu-guard.io/nvidia-driver-version":null}}})"));
  EXPECT_EQ(Labels("gpu-1"), (json{{kCgpuVersionLabel, "1.5.0"}, {"team", "ml"}}));

  const LabelSyncOutcome again = SyncNodeLabels(client_, "gpu-1", desired, 0);
  EXPECT_EQ(again.result, LabelSyncResult::kUpToDate);
  EXPECT_EQ(api_.CountRequests(testing::RequestKind::kPatch), 1);
}

TEST_F(NodeLabelSyncTest, WritesTheMaxPodLabelOnlyWhenAsked) {
  api_.Add("nodes", LabelledNode("gpu-1", json::object()));
  EXPECT_EQ(SyncNodeLabels(client_, "gpu-1", {}, 0).result, LabelSyncResult::kUpToDate);
  EXPECT_EQ(SyncNodeLabels(client_, "gpu-1", {}, 8).result, LabelSyncResult::kPatched);
  EXPECT_EQ(Labels("gpu-1"), (json{{kMaxPodLabel, "8"}}));
}

TEST_F(NodeLabelSyncTest, RefusalsNameTheVerbAndTheRoleThatGrantsIt) {
  api_.Add("nodes", LabelledNode("gpu-1", json::object()));
  const LabelChange desired = {{kCgpuVersionLabel, "1.5.0"}};

  api_.FailNext(1, 403, testing::RequestKind::kGet);
  const LabelSyncOutcome get = SyncNodeLabels(client_, "gpu-1", desired, 0);
  EXPECT_EQ(get.result, LabelSyncResult::kForbidden);
  EXPECT_EQ(get.message.rfind("not allowed to get node gpu-1 (", 0), 0u) << get.message;
  EXPECT_NE(get.message.find("<release>-node-facts"), std::string::npos) << get.message;

  api_.FailNext(1, 403, testing::RequestKind::kPatch);
  const LabelSyncOutcome patch = SyncNodeLabels(client_, "gpu-1", desired, 0);
  EXPECT_EQ(patch.result, LabelSyncResult::kForbidden);
  EXPECT_EQ(patch.message.rfind("not allowed to patch node gpu-1 (", 0), 0u) << patch.message;
}

TEST_F(NodeLabelSyncTest, OtherFailuresAreForARetry) {
  api_.Add("nodes", LabelledNode("gpu-1", json::object()));
  const LabelChange desired = {{kCgpuVersionLabel, "1.5.0"}};

  const LabelSyncOutcome missing = SyncNodeLabels(client_, "gpu-9", desired, 0);
  EXPECT_EQ(missing.result, LabelSyncResult::kFailed);
  EXPECT_EQ(missing.message,
            "node gpu-9 does not exist (--node-name, or NODE_NAME from spec.nodeName)");

  api_.FailNext(1, 500, testing::RequestKind::kPatch);
  const LabelSyncOutcome patch = SyncNodeLabels(client_, "gpu-1", desired, 0);
  EXPECT_EQ(patch.result, LabelSyncResult::kFailed);
  EXPECT_EQ(patch.message.rfind("patch node gpu-1: ", 0), 0u) << patch.message;
  EXPECT_FALSE(Labels("gpu-1").contains(kCgpuVersionLabel));
}

}  // namespace
}  // namespace cgpu
