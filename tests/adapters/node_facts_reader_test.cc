#include "adapters/node_facts_reader.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "adapters/embedded_rules.h"
#include "adapters/node_list.h"
#include "core/compatibility.h"
#include "support/fixtures.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::ReadFixture;

NodeFactsReader MakeReader(FactSources sources = {}) {
  StatusOr<NodeFactsReader> reader = NodeFactsReader::Create(std::move(sources), EmbeddedRules());
  if (!reader.ok()) {
    ADD_FAILURE() << reader.status().message();
    return std::move(NodeFactsReader::Create({}, EmbeddedRules())).value();
  }
  return std::move(reader).value();
}

json NodeWith(json labels, json node_info = json::object()) {
  return json{{"apiVersion", "v1"},
              {"kind", "Node"},
              {"metadata", {{"name", "n1"}, {"labels", std::move(labels)}}},
              {"status", {{"nodeInfo", std::move(node_info)}}}};
}

NodeFacts ReadLabels(json labels, FactSources sources = {}) {
  return MakeReader(std::move(sources)).Read(NodeWith(std::move(labels)));
}

TEST(NodeFactsReaderTest, CgpuEnabledByEachDocumentedLabel) {
  const std::vector<std::pair<std::string, std::string>> enabling = {
      {"ack.node.gpu.schedule", "cgpu"}, {"ack.node.gpu.schedule", "core_mem"}, {"cgpu", "true"}};
  for (const auto& [key, value] : enabling) {
    NodeFacts facts = ReadLabels({{key, value}});
    EXPECT_TRUE(facts.cgpu_enabled) << key << "=" << value;
    EXPECT_EQ(facts.cgpu_enabled_by, key + "=" + value);
  }
}

TEST(NodeFactsReaderTest, OtherSchedulingModesAreNotCgpu) {
  for (const char* mode : {"share", "default", "mps", "topology", "mig", "", "CGPU", "cgpu "}) {
    NodeFacts facts = ReadLabels({{"ack.node.gpu.schedule", mode}});
    EXPECT_FALSE(facts.cgpu_enabled) << mode;
    EXPECT_EQ(facts.cgpu_enabled_by, "") << mode;
  }
  EXPECT_FALSE(ReadLabels({{"cgpu", "false"}}).cgpu_enabled);
  EXPECT_FALSE(ReadLabels(json::object()).cgpu_enabled);
}

TEST(NodeFactsReaderTest, IsolationSwitchedOffIsNotCgpu) {
  NodeFacts facts =
      ReadLabels({{"ack.node.gpu.schedule", "cgpu"}, {"cgpu.disable.isolation", "true"}});
  EXPECT_FALSE(facts.cgpu_enabled);
  EXPECT_EQ(facts.cgpu_enabled_by, "cgpu.disable.isolation=true turns isolation off");

  facts = ReadLabels({{"ack.node.gpu.schedule", "cgpu"}, {"cgpu.disable.isolation", "false"}});
  EXPECT_TRUE(facts.cgpu_enabled);
  // Without an enabling label there is nothing to turn off.
  facts = ReadLabels({{"cgpu.disable.isolation", "true"}});
  EXPECT_FALSE(facts.cgpu_enabled);
  EXPECT_EQ(facts.cgpu_enabled_by, "");
}

TEST(NodeFactsReaderTest, VersionsFromTheDefaultLabels) {
  NodeFacts facts = ReadLabels({{"cgpu-guard.io/cgpu-version", "1.5.20"},
                                {"cgpu-guard.io/nvidia-driver-version", "535.161.08"},
                                {"cgpu-guard.io/container-toolkit-version", "1.16.2"}});
  ASSERT_TRUE(facts.cgpu_version.value.has_value());
  EXPECT_EQ(*facts.cgpu_version.value, Version({1, 5, 20}));
  EXPECT_EQ(facts.cgpu_version.raw, "1.5.20");
  EXPECT_EQ(facts.cgpu_version.source, "label cgpu-guard.io/cgpu-version");
  ASSERT_TRUE(facts.driver_version.value.has_value());
  EXPECT_EQ(*facts.driver_version.value, Version({535, 161, 8}));
  EXPECT_EQ(facts.driver_version.raw, "535.161.08");
  EXPECT_EQ(facts.driver_version.source, "label cgpu-guard.io/nvidia-driver-version");
  ASSERT_TRUE(facts.toolkit_version.value.has_value());
  EXPECT_EQ(*facts.toolkit_version.value, Version({1, 16, 2}));
  EXPECT_EQ(facts.toolkit_version.source, "label cgpu-guard.io/container-toolkit-version");
}

TEST(NodeFactsReaderTest, AbsentVersionsNameTheirSource) {
  NodeFacts facts = ReadLabels(json::object());
  EXPECT_FALSE(facts.cgpu_version.present());
  EXPECT_FALSE(facts.cgpu_version.value.has_value());
  EXPECT_EQ(facts.cgpu_version.source, "label cgpu-guard.io/cgpu-version");
  EXPECT_FALSE(facts.driver_version.present());
  EXPECT_EQ(
      facts.driver_version.source,
      "label cgpu-guard.io/nvidia-driver-version (or nvidia.com/cuda.driver.major/minor/rev)");
  EXPECT_FALSE(facts.toolkit_version.present());
  EXPECT_FALSE(facts.kernel_version.present());
  EXPECT_EQ(facts.kernel_version.source, "status.nodeInfo.kernelVersion");
  EXPECT_FALSE(facts.ai_installer_version.present());
  EXPECT_FALSE(facts.max_pods_per_gpu.has_value());
}

TEST(NodeFactsReaderTest, DriverFallsBackToGpuFeatureDiscovery) {
  NodeFacts facts = ReadLabels({{"nvidia.com/cuda.driver.major", "470"},
                                {"nvidia.com/cuda.driver.minor", "82"},
                                {"nvidia.com/cuda.driver.rev", "01"}});
  EXPECT_EQ(facts.driver_version.raw, "470.82.01");
  EXPECT_EQ(facts.driver_version.source, "labels nvidia.com/cuda.driver.major/minor/rev");
  ASSERT_TRUE(facts.driver_version.value.has_value());
  EXPECT_EQ(*facts.driver_version.value, Version({470, 82, 1}));
  EXPECT_EQ(facts.driver_version.value->ToString(), "470.82.01");
}

TEST(NodeFactsReaderTest, OwnDriverLabelWinsOverGpuFeatureDiscovery) {
  NodeFacts facts = ReadLabels({{"cgpu-guard.io/nvidia-driver-version", "535.104.05"},
                                {"nvidia.com/cuda.driver.major", "470"},
                                {"nvidia.com/cuda.driver.minor", "82"},
                                {"nvidia.com/cuda.driver.rev", "01"}});
  EXPECT_EQ(facts.driver_version.raw, "535.104.05");
  EXPECT_EQ(facts.driver_version.source, "label cgpu-guard.io/nvidia-driver-version");
}

TEST(NodeFactsReaderTest, PartialGpuFeatureDiscoveryLabels) {
  NodeFacts facts = ReadLabels({{"nvidia.com/cuda.driver.major", "470"}});
  EXPECT_EQ(facts.driver_version.raw, "470");
  ASSERT_TRUE(facts.driver_version.value.has_value());
  EXPECT_EQ(facts.driver_version.value->major(), 470);
  // A missing minor stops the join: the revision alone would mean a different version.
  facts =
      ReadLabels({{"nvidia.com/cuda.driver.major", "470"}, {"nvidia.com/cuda.driver.rev", "01"}});
  EXPECT_EQ(facts.driver_version.raw, "470");
  // Without a major there is no fallback at all.
  facts =
      ReadLabels({{"nvidia.com/cuda.driver.minor", "82"}, {"nvidia.com/cuda.driver.rev", "01"}});
  EXPECT_FALSE(facts.driver_version.present());
}

TEST(NodeFactsReaderTest, LabelKeysAreConfigurable) {
  FactSources sources;
  sources.labels.cgpu_version = "example.com/cgpu";
  sources.labels.driver_version = "example.com/driver";
  sources.labels.toolkit_version = "example.com/toolkit";
  sources.instance_type_labels = {"example.com/instance"};
  sources.max_pods_per_gpu_label = "example.com/max-pod";
  const json labels = {{"example.com/cgpu", "1.5.10"},
                       {"example.com/driver", "470.82.01"},
                       {"example.com/toolkit", "1.10.0"},
                       {"example.com/instance", "ecs.gn6v-c8g1.2xlarge"},
                       {"example.com/max-pod", "8"},
                       // The default keys no longer count.
                       {"cgpu-guard.io/cgpu-version", "1.0.3"},
                       {"cgpu-guard.io/nvidia-driver-version", "535.1"},
                       {"node.kubernetes.io/instance-type", "ecs.gn7i-c8g1.2xlarge"},
                       {"ack.node.gpu.max-pod", "3"}};
  NodeFacts facts = ReadLabels(labels, sources);
  EXPECT_EQ(facts.cgpu_version.raw, "1.5.10");
  EXPECT_EQ(facts.cgpu_version.source, "label example.com/cgpu");
  EXPECT_EQ(facts.driver_version.raw, "470.82.01");
  EXPECT_EQ(facts.driver_version.source, "label example.com/driver");
  EXPECT_EQ(facts.toolkit_version.raw, "1.10.0");
  EXPECT_EQ(facts.instance_type, "ecs.gn6v-c8g1.2xlarge");
  EXPECT_EQ(facts.instance_type_source, "label example.com/instance");
  EXPECT_EQ(facts.max_pods_per_gpu, 8);
  EXPECT_EQ(facts.max_pod_label, "8");
}

TEST(NodeFactsReaderTest, GpuFeatureDiscoveryPrefixIsConfigurable) {
  FactSources sources;
  sources.gfd_driver_label_prefix = "gfd.example.com/driver";
  NodeFacts facts = ReadLabels({{"gfd.example.com/driver.major", "550"},
                                {"gfd.example.com/driver.minor", "127"},
                                {"gfd.example.com/driver.rev", "08"},
                                {"nvidia.com/cuda.driver.major", "470"}},
                               sources);
  EXPECT_EQ(facts.driver_version.raw, "550.127.08");
  EXPECT_EQ(facts.driver_version.source, "labels gfd.example.com/driver.major/minor/rev");
}

TEST(NodeFactsReaderTest, UnparseableValuesKeepRawTextAndSource) {
  NodeFacts facts = ReadLabels({{"cgpu-guard.io/cgpu-version", "1.5.x"},
                                {"cgpu-guard.io/nvidia-driver-version", "latest"},
                                {"cgpu-guard.io/container-toolkit-version", "1.16.2-1"}});
  EXPECT_TRUE(facts.cgpu_version.unparseable());
  EXPECT_EQ(facts.cgpu_version.raw, "1.5.x");
  EXPECT_EQ(facts.cgpu_version.source, "label cgpu-guard.io/cgpu-version");
  EXPECT_TRUE(facts.driver_version.unparseable());
  EXPECT_EQ(facts.driver_version.raw, "latest");
  EXPECT_TRUE(facts.toolkit_version.unparseable());
  EXPECT_EQ(facts.toolkit_version.raw, "1.16.2-1");

  facts = ReadLabels({{"nvidia.com/cuda.driver.major", "470"},
                      {"nvidia.com/cuda.driver.minor", "x"},
                      {"nvidia.com/cuda.driver.rev", "01"}});
  EXPECT_TRUE(facts.driver_version.unparseable());
  EXPECT_EQ(facts.driver_version.raw, "470.x.01");
  EXPECT_EQ(facts.driver_version.source, "labels nvidia.com/cuda.driver.major/minor/rev");
}

TEST(NodeFactsReaderTest, InstanceTypeAndItsFallback) {
  NodeFacts facts = ReadLabels({{"node.kubernetes.io/instance-type", "ecs.gn7i-c8g1.2xlarge"}});
  EXPECT_EQ(facts.instance_type, "ecs.gn7i-c8g1.2xlarge");
  EXPECT_EQ(facts.instance_type_source, "label node.kubernetes.io/instance-type");
  EXPECT_EQ(facts.instance_family, "gn7i");

  facts = ReadLabels({{"beta.kubernetes.io/instance-type", "ecs.gn6v-c8g1.2xlarge"}});
  EXPECT_EQ(facts.instance_type, "ecs.gn6v-c8g1.2xlarge");
  EXPECT_EQ(facts.instance_type_source, "label beta.kubernetes.io/instance-type");
  EXPECT_EQ(facts.instance_family, "gn6v");

  facts = ReadLabels({{"beta.kubernetes.io/instance-type", "ecs.gn6v-c8g1.2xlarge"},
                      {"node.kubernetes.io/instance-type", "ecs.gn8is-2x.8xlarge"}});
  EXPECT_EQ(facts.instance_family, "gn8is");
  EXPECT_EQ(facts.instance_type_source, "label node.kubernetes.io/instance-type");

  // An empty GA label falls through to the beta one.
  facts = ReadLabels({{"node.kubernetes.io/instance-type", ""},
                      {"beta.kubernetes.io/instance-type", "ecs.gn6i-c4g1.xlarge"}});
  EXPECT_EQ(facts.instance_family, "gn6i");

  facts = ReadLabels(json::object());
  EXPECT_EQ(facts.instance_type, "");
  EXPECT_EQ(facts.instance_type_source, "label node.kubernetes.io/instance-type");
  EXPECT_FALSE(facts.instance_family.has_value());

  facts = ReadLabels({{"node.kubernetes.io/instance-type", "n1-standard-4"}});
  EXPECT_EQ(facts.instance_type, "n1-standard-4");
  EXPECT_FALSE(facts.instance_family.has_value());
}

TEST(NodeFactsReaderTest, KernelFromNodeInfo) {
  NodeFacts facts =
      MakeReader().Read(NodeWith(json::object(), {{"kernelVersion", "5.10.134-18.al8.x86_64"}}));
  EXPECT_EQ(facts.kernel_version.raw, "5.10.134-18.al8.x86_64");
  EXPECT_EQ(facts.kernel_version.source, "status.nodeInfo.kernelVersion");
  ASSERT_TRUE(facts.kernel_version.value.has_value());
  EXPECT_EQ(*facts.kernel_version.value, Version({5, 10, 134}));

  facts = MakeReader().Read(NodeWith(json::object(), {{"kernelVersion", "kernelVersionValue"}}));
  EXPECT_TRUE(facts.kernel_version.unparseable());
  EXPECT_EQ(facts.kernel_version.raw, "kernelVersionValue");
}

TEST(NodeFactsReaderTest, ContainerOptimizedOsByDefaultPattern) {
  const NodeFactsReader reader = MakeReader();
  auto is_container_os = [&](const std::string& os_image) {
    NodeFacts facts = reader.Read(NodeWith(json::object(), {{"osImage", os_image}}));
    EXPECT_EQ(facts.os_image, os_image);
    return facts.container_optimized_os;
  };
  EXPECT_TRUE(is_container_os("Alibaba Cloud Linux 3.2104 LTS 64-bit Container-Optimized Edition"));
  EXPECT_TRUE(is_container_os("ContainerOS 3.2"));
  EXPECT_TRUE(is_container_os("CONTAINEROS"));
  EXPECT_FALSE(is_container_os("Alibaba Cloud Linux 3.2104 LTS (Soaring Falcon)"));
  EXPECT_FALSE(is_container_os("Ubuntu 22.04.4 LTS"));
  EXPECT_FALSE(is_container_os(""));
}

TEST(NodeFactsReaderTest, ContainerOptimizedOsByCustomPattern) {
  FactSources sources;
  sources.container_os_pattern = "^lifsea";
  const NodeFactsReader reader = MakeReader(sources);
  EXPECT_TRUE(
      reader.Read(NodeWith(json::object(), {{"osImage", "LifseaOS 3.2"}})).container_optimized_os);
  EXPECT_FALSE(
      reader.Read(NodeWith(json::object(), {{"osImage", "Not LifseaOS"}})).container_optimized_os);
  EXPECT_FALSE(reader
                   .Read(NodeWith(json::object(),
                                  {{"osImage", "Alibaba Cloud Linux 3 Container-Optimized"}}))
                   .container_optimized_os);
}

TEST(NodeFactsReaderTest, InvalidOsPatternFailsCreate) {
  FactSources sources;
  sources.container_os_pattern = "container-(optimized";
  StatusOr<NodeFactsReader> reader = NodeFactsReader::Create(sources, EmbeddedRules());
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      reader.status().message().rfind(
          "container OS pattern \"container-(optimized\" is not a valid regular expression: ", 0),
      0u)
      << reader.status().message();
}

TEST(NodeFactsReaderTest, MaxPodsPerGpuLabel) {
  auto max_pods = [](json value) {
    return ReadLabels({{"ack.node.gpu.max-pod", std::move(value)}}).max_pods_per_gpu;
  };
  EXPECT_EQ(max_pods("10"), 10);
  EXPECT_EQ(max_pods("1"), 1);
  EXPECT_EQ(max_pods("0020"), 20);
  EXPECT_EQ(max_pods("9999"), 9999);
  EXPECT_EQ(max_pods("0"), std::nullopt);
  EXPECT_EQ(max_pods("abc"), std::nullopt);
  EXPECT_EQ(max_pods("10x"), std::nullopt);
  EXPECT_EQ(max_pods("-5"), std::nullopt);
  EXPECT_EQ(max_pods("+5"), std::nullopt);
  EXPECT_EQ(max_pods(" 5"), std::nullopt);
  EXPECT_EQ(max_pods(""), std::nullopt);
  EXPECT_EQ(max_pods("10000"), std::nullopt);
  EXPECT_EQ(max_pods("99999999999999999999999"), std::nullopt);
  EXPECT_EQ(max_pods(10), std::nullopt) << "label values are strings";
}

// The raw label is kept, valid or not, so that `check` can tell a missing label from a bad one.
TEST(NodeFactsReaderTest, MaxPodLabelAsFound) {
  auto raw = [](json labels) { return ReadLabels(std::move(labels)).max_pod_label; };
  EXPECT_EQ(raw(json::object()), std::nullopt);
  EXPECT_EQ(raw({{"ack.node.gpu.max-pod", "12"}}), "12");
  EXPECT_EQ(raw({{"ack.node.gpu.max-pod", "abc"}}), "abc");
  EXPECT_EQ(raw({{"ack.node.gpu.max-pod", ""}}), "") << "present, if empty";
  EXPECT_EQ(raw({{"ack.node.gpu.max-pod", 20}}), "")
      << "a value that is not a string reads as \"\"";
  EXPECT_EQ(ReadLabels({{"ack.node.gpu.max-pod", ""}}).max_pods_per_gpu, std::nullopt);
}

TEST(NodeFactsReaderTest, SettingsFromFlags) {
  FactSources sources;
  sources.assume_cgpu_version = "1.5.20";
  sources.ai_installer_version = "1.12.6";
  NodeFacts facts = ReadLabels({{"cgpu-guard.io/cgpu-version", "1.0.3"}}, sources);
  EXPECT_EQ(facts.cgpu_version.raw, "1.5.20");
  EXPECT_EQ(facts.cgpu_version.source, "--cgpu-version");
  ASSERT_TRUE(facts.cgpu_version.value.has_value());
  EXPECT_EQ(*facts.cgpu_version.value, Version({1, 5, 20}));
  EXPECT_EQ(facts.ai_installer_version.raw, "1.12.6");
  EXPECT_EQ(facts.ai_installer_version.source, "--ai-installer-version");
  ASSERT_TRUE(facts.ai_installer_version.value.has_value());
  EXPECT_EQ(*facts.ai_installer_version.value, Version({1, 12, 6}));
}

TEST(NodeFactsReaderTest, NameFromMetadata) {
  EXPECT_EQ(MakeReader().Read(NodeWith(json::object())).name, "n1");
}

TEST(NodeFactsReaderTest, GarbageNeverThrows) {
  const NodeFactsReader reader = MakeReader();
  const std::vector<json> garbage = {
      json(nullptr),
      json::array({1, 2, 3}),
      json("a Node, honestly"),
      json(42),
      json(true),
      json::object(),
      json{{"kind", "Node"}},
      json{{"metadata", "not an object"}},
      json{{"metadata", {{"name", 7}, {"labels", "ack.node.gpu.schedule=cgpu"}}}},
      json{{"metadata", {{"labels", json::array({"ack.node.gpu.schedule", "cgpu"})}}}},
      json{{"metadata", {{"labels", nullptr}}}},
      json{{"metadata",
            {{"labels",
              {{"ack.node.gpu.schedule", 1},
               {"cgpu", true},
               {"cgpu-guard.io/cgpu-version", 1.5},
               {"cgpu-guard.io/nvidia-driver-version", json::object()},
               {"nvidia.com/cuda.driver.major", json::array()},
               {"node.kubernetes.io/instance-type", nullptr},
               {"ack.node.gpu.max-pod", 20}}}}}},
      json{{"status", "Ready"}},
      json{{"status", {{"nodeInfo", json::array()}}}},
      json{{"status", {{"nodeInfo", {{"kernelVersion", 5}, {"osImage", json::object()}}}}}},
  };
  for (const json& node : garbage) {
    NodeFacts facts;
    EXPECT_NO_THROW(facts = reader.Read(node)) << node.dump();
    EXPECT_FALSE(facts.cgpu_enabled) << node.dump();
    EXPECT_EQ(facts.name, "") << node.dump();
    EXPECT_FALSE(facts.cgpu_version.present()) << node.dump();
    EXPECT_FALSE(facts.driver_version.present()) << node.dump();
    EXPECT_FALSE(facts.kernel_version.present()) << node.dump();
    EXPECT_EQ(facts.instance_type, "") << node.dump();
    EXPECT_EQ(facts.os_image, "") << node.dump();
    EXPECT_FALSE(facts.container_optimized_os) << node.dump();
    EXPECT_FALSE(facts.max_pods_per_gpu.has_value()) << node.dump();
  }
}

TEST(NodeFactsReaderTest, YamlScalarsAreReadAsLabelText) {
  // Unquoted YAML `true` and `1.10` reach the reader as the strings "true" and "1.10".
  StatusOr<std::vector<json>> nodes = ReadNodeObjects(
      "kind: Node\n"
      "metadata:\n"
      "  name: yaml-node\n"
      "  labels:\n"
      "    cgpu: true\n"
      "    cgpu-guard.io/container-toolkit-version: 1.10\n"
      "    ack.node.gpu.max-pod: 12\n");
  ASSERT_TRUE(nodes.ok()) << nodes.status().message();
  ASSERT_EQ(nodes->size(), 1u);
  NodeFacts facts = MakeReader().Read(nodes->front());
  EXPECT_EQ(facts.name, "yaml-node");
  EXPECT_TRUE(facts.cgpu_enabled);
  EXPECT_EQ(facts.toolkit_version.raw, "1.10");
  ASSERT_TRUE(facts.toolkit_version.value.has_value());
  EXPECT_EQ(*facts.toolkit_version.value, Version({1, 10}));
  EXPECT_EQ(facts.max_pods_per_gpu, 12);
}

TEST(NodeFactsReaderTest, UpstreamGkeNodeIsNotCgpu) {
  StatusOr<std::vector<json>> documents =
      YamlDocumentsToJson(ReadFixture("upstream/node-gke-realistic-no-gpu.yaml"));
  ASSERT_TRUE(documents.ok()) << documents.status().message();
  ASSERT_EQ(documents->size(), 1u);
  StatusOr<std::vector<json>> nodes =
      ReadNodeObjects(ReadFixture("upstream/node-gke-realistic-no-gpu.yaml"));
  ASSERT_TRUE(nodes.ok()) << nodes.status().message();
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ(nodes->front(), documents->front());

  NodeFacts facts = MakeReader().Read(nodes->front());
  EXPECT_EQ(facts.name, "node-default-pool-something");
  EXPECT_FALSE(facts.cgpu_enabled);
  EXPECT_EQ(facts.instance_type, "n1-standard-4");
  EXPECT_EQ(facts.instance_type_source, "label beta.kubernetes.io/instance-type");
  EXPECT_FALSE(facts.instance_family.has_value());
  EXPECT_EQ(facts.kernel_version.raw, "4.14.127+");
  ASSERT_TRUE(facts.kernel_version.value.has_value());
  EXPECT_EQ(*facts.kernel_version.value, Version({4, 14, 127}));
  EXPECT_EQ(facts.os_image, "Container-Optimized OS from Google");
  EXPECT_EQ(EvaluateNode(facts, EmbeddedRules()).verdict, NodeVerdict::kNotCgpu);
}

TEST(NodeFactsReaderTest, UpstreamAllFieldsNodeIsNotCgpu) {
  StatusOr<std::vector<json>> nodes =
      ReadNodeObjects(ReadFixture("upstream/node-v1-roundtrip-allfields.json"));
  ASSERT_TRUE(nodes.ok()) << nodes.status().message();
  ASSERT_EQ(nodes->size(), 1u);
  NodeFacts facts = MakeReader().Read(nodes->front());
  EXPECT_EQ(facts.name, "nameValue");
  EXPECT_FALSE(facts.cgpu_enabled);
  EXPECT_EQ(facts.cgpu_enabled_by, "");
  EXPECT_TRUE(facts.kernel_version.unparseable());
  EXPECT_EQ(facts.os_image, "osImageValue");
  EXPECT_FALSE(facts.container_optimized_os);
  EXPECT_EQ(EvaluateNode(facts, EmbeddedRules()).verdict, NodeVerdict::kNotCgpu);
}

TEST(NodeFactsReaderTest, AckFixtureNodes) {
  StatusOr<std::vector<json>> nodes = ReadNodeObjects(ReadFixture("nodes/ack-nodes.json"));
  ASSERT_TRUE(nodes.ok()) << nodes.status().message();
  const NodeFactsReader reader = MakeReader();
  std::map<std::string, NodeFacts> by_name;
  for (const json& node : *nodes) {
    NodeFacts facts = reader.Read(node);
    by_name[facts.name] = facts;
  }
  ASSERT_EQ(by_name.size(), 8u);
  EXPECT_EQ(by_name["gpu-old-cgpu"].cgpu_enabled_by, "ack.node.gpu.schedule=core_mem");
  EXPECT_EQ(by_name["gpu-no-facts"].cgpu_enabled_by, "cgpu=true");
  EXPECT_TRUE(by_name["gpu-container-os"].container_optimized_os);
  EXPECT_EQ(by_name["gpu-gfd-driver"].driver_version.raw, "470.82.01");
  EXPECT_FALSE(by_name["gpu-share-only"].cgpu_enabled);
  EXPECT_FALSE(by_name["gpu-isolation-off"].cgpu_enabled);
  EXPECT_FALSE(by_name["cpu-worker"].cgpu_enabled);
  EXPECT_EQ(by_name["gpu-compatible"].kernel_version.value, Version({5, 10, 134}));
}

}  // namespace
}  // namespace cgpu
