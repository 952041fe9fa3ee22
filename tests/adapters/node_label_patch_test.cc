#include "adapters/node_label_patch.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/fixtures.h"

namespace cgpu {
namespace {

using nlohmann::json;

TEST(NodeLabelPatchTest, ReadsLabelsOfARealNode) {
  json first = json::parse(testing::ReadFixture("nodes/ack-nodes.json"))["items"][0];
  first["kind"] = "Node";  // items of a List leave kind out; a GET answers with it
  const std::string node = first.dump();
  StatusOr<std::map<std::string, std::string>> labels = ReadNodeLabels(node);
  ASSERT_TRUE(labels.ok()) << labels.status().message();
  EXPECT_EQ(labels->at("ack.node.gpu.schedule"), "cgpu");
}

TEST(NodeLabelPatchTest, RefusesWhatIsNotANode) {
  EXPECT_FALSE(ReadNodeLabels("{").ok());
  EXPECT_FALSE(ReadNodeLabels(R"({"kind":"Pod","metadata":{}})").ok());
  EXPECT_FALSE(ReadNodeLabels(R"({"kind":"Node","metadata":{"labels":[1]}})").ok());
  StatusOr<std::map<std::string, std::string>> none =
      ReadNodeLabels(R"({"kind":"Node","metadata":{"name":"n"}})");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(NodeLabelPatchTest, PatchSetsAndRemovesOnlyTheGivenKeys) {
  const std::string patch =
      EncodeLabelMergePatch({{"cgpu-guard.io/cgpu-version", "1.5.10"},
                             {"cgpu-guard.io/nvidia-driver-version", std::nullopt}});
  EXPECT_EQ(json::parse(patch), json::parse(R"({"metadata":{"labels":{
      "cgpu-guard.io/cgpu-version":"1.5.10","cgpu-guard.io/nvidia-driver-version":null}}})"));
  // Applied as the API server applies a merge patch, it leaves every other label alone.
  json node = {
      {"metadata", {{"labels", {{"a", "1"}, {"cgpu-guard.io/nvidia-driver-version", "x"}}}}}};
  node.merge_patch(json::parse(patch));
  EXPECT_EQ(node["metadata"]["labels"],
            json({{"a", "1"}, {"cgpu-guard.io/cgpu-version", "1.5.10"}}));
}

TEST(NodeLabelPatchTest, TellsRbacRefusalsFromAdmissionDenials) {
  const std::string rbac = R"({"kind":"Status","status":"Failure","reason":"Forbidden","code":403,
    "message":"nodes \"gpu-1\" is forbidden: User \"system:serviceaccount:x:y\" cannot patch resource \"nodes\""})";
  const std::string denied = R"({"kind":"Status","status":"Failure","reason":"Forbidden","code":403,
    "message":"admission webhook \"policy.example.com\" denied the request: labels are frozen"})";
  EXPECT_TRUE(IsPermissionRefusal(403, rbac));
  EXPECT_TRUE(IsPermissionRefusal(401, ""));
  EXPECT_FALSE(IsPermissionRefusal(403, denied));
  EXPECT_FALSE(IsPermissionRefusal(500, rbac));
  EXPECT_TRUE(IsPermissionRefusal(403, "forbidden"));  // not JSON: still a refusal
}

}  // namespace
}  // namespace cgpu
