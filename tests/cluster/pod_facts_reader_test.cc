#include "adapters/pod_facts_reader.h"

#include <gtest/gtest.h>

#include <sstream>

#include "adapters/admission_codec.h"
#include "adapters/embedded_rules.h"
#include "adapters/review_facts_reader.h"
#include "cluster/cluster_objects.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::GpuScheme;
using testing::MakeBinding;
using testing::MakeNode;
using testing::MakePod;
using testing::MakeReview;
using testing::PodSpec;

TEST(PodFactsReaderTest, ReadsABoundCgpuPodWithEitherScheme) {
  for (GpuScheme scheme : {GpuScheme::kIndexAnnotation, GpuScheme::kAllocationAnnotation}) {
    PodFacts pod =
        ReadPodFacts(MakePod({.name = "web-0", .node = "gpu-1", .gpus = {3}, .scheme = scheme}));
    EXPECT_EQ(pod.Key(), "default/web-0");
    EXPECT_EQ(pod.uid, "uid-web-0");
    EXPECT_EQ(pod.node_name, "gpu-1");
    EXPECT_EQ(pod.phase, PodPhase::kRunning);
    EXPECT_TRUE(pod.shares_gpu);
    EXPECT_EQ(pod.gpus.indices, std::vector<int>{3});
    EXPECT_TRUE(pod.gpus.error.empty());
    EXPECT_TRUE(pod.HoldsGpu());
  }
}

TEST(PodFactsReaderTest, MultiContainerPodUsesEachGpuOnce) {
  // {"0":{"1":2},"1":{"1":2}}: both containers on GPU 1 is one pod on GPU 1 (not two).
  PodFacts pod = ReadPodFacts(MakePod({.name = "p", .node = "n", .gpus = {1}, .containers = 2}));
  EXPECT_EQ(pod.gpus.indices, std::vector<int>{1});
  GpuAssignment mixed = ReadGpuAssignment(
      {{"scheduler.framework.gpushare.allocation", R"({"0":{"1":1},"1":{"0":7,"1":1}})"}});
  EXPECT_EQ(mixed.indices, (std::vector<int>{0, 1}));
  EXPECT_EQ(ReadGpuAssignment({{"ALIYUN_COM_GPU_MEM_IDX", "2,0,2"}}).indices,
            (std::vector<int>{0, 2}));
}

TEST(PodFactsReaderTest, FrameworkAnnotationWinsOverTheOldOne) {
  GpuAssignment gpus =
      ReadGpuAssignment({{"ALIYUN_COM_GPU_MEM_IDX", "0"},
                         {"scheduler.framework.gpushare.allocation", R"({"0":{"5":4}})"}});
  EXPECT_EQ(gpus.indices, std::vector<int>{5});
  EXPECT_EQ(gpus.source, "annotation scheduler.framework.gpushare.allocation");
}

TEST(PodFactsReaderTest, GarbledAnnotationsLeaveTheGpuUnknownAndSayWhy) {
  for (const char* allocation :
       {"", "{", "[1]", R"({"0":1})", R"({"0":{"x":1}})", R"({"0":{"-1":1}})", R"({"0":{"1":"a"}})",
        R"({"0":{"99999":1}})", R"({"0":{"1":{"2":{"3":{"4":1}}}}})"}) {
    GpuAssignment gpus =
        ReadGpuAssignment({{"scheduler.framework.gpushare.allocation", allocation}});
    EXPECT_FALSE(gpus.known()) << allocation;
    if (std::string(allocation).empty()) continue;  // empty reads as absent
    EXPECT_NE(gpus.error.find("scheduler.framework.gpushare.allocation"), std::string::npos)
        << allocation;
  }
  for (const char* index : {"a", "1,,2", "-1", "1.5", "12345"}) {
    GpuAssignment gpus = ReadGpuAssignment({{"ALIYUN_COM_GPU_MEM_IDX", index}});
    EXPECT_FALSE(gpus.known()) << index;
    EXPECT_FALSE(gpus.error.empty()) << index;
  }
  EXPECT_FALSE(ReadGpuAssignment({{"ALIYUN_COM_GPU_MEM_IDX", 3}}).known());  // not a string
  EXPECT_FALSE(ReadGpuAssignment(json::array()).known());
}

// A key the allocation repeats counts once, its last value deciding, as a map-building parser
// reads it; an allocation with thousands of entries is refused after a bounded look, not parsed
// in full (annotations may hold ~29,000 keys).
TEST(PodFactsReaderTest, AllocationKeysResolveLastWinsWithinABound) {
  GpuAssignment gpus = ReadGpuAssignment(
      {{"scheduler.framework.gpushare.allocation", R"({"0":{"1":2},"1":{"2":1},"0":{"3":2}})"}});
  EXPECT_EQ(gpus.indices, (std::vector<int>{2, 3})) << gpus.error;
  EXPECT_EQ(
      ReadGpuAssignment({{"scheduler.framework.gpushare.allocation", R"({"0":{"1":2,"1":"x"}})"}})
              .error.find("GPU 1 has no amount") != std::string::npos,
      true);

  std::string huge = "{";
  for (int i = 0; i < 20000; ++i) huge += (i ? ",\"" : "\"") + std::to_string(i) + R"(":{"0":1})";
  huge += "}";
  GpuAssignment refused = ReadGpuAssignment({{"scheduler.framework.gpushare.allocation", huge}});
  EXPECT_FALSE(refused.known());
  EXPECT_NE(refused.error.find("more than 1024 entries"), std::string::npos) << refused.error;
  std::string wide = R"({"0":{)";
  for (int i = 0; i < 1025; ++i) wide += (i ? ",\"" : "\"") + std::to_string(i % 1000) + R"(":1)";
  wide += "}}";
  EXPECT_NE(ReadGpuAssignment({{"scheduler.framework.gpushare.allocation", wide}})
                .error.find("more than 1024 entries"),
            std::string::npos);

  // A pod that shares no GPU has its annotations left unread.
  json plain = MakePod({.name = "p", .node = "n", .cgpu = false});
  plain["metadata"]["annotations"]["scheduler.framework.gpushare.allocation"] = "{garbled";
  const PodFacts facts = ReadPodFacts(plain);
  EXPECT_FALSE(facts.shares_gpu);
  EXPECT_TRUE(facts.gpus.error.empty());
}

TEST(PodFactsReaderTest, PhasesAndNonCgpuPods) {
  EXPECT_FALSE(ReadPodFacts(MakePod({.name = "p", .node = "n", .gpus = {0}, .phase = "Succeeded"}))
                   .HoldsGpu());
  EXPECT_FALSE(
      ReadPodFacts(MakePod({.name = "p", .node = "n", .gpus = {0}, .phase = "Failed"})).HoldsGpu());
  EXPECT_TRUE(ReadPodFacts(MakePod({.name = "p", .node = "n", .gpus = {0}, .phase = "Pending"}))
                  .HoldsGpu());
  EXPECT_FALSE(ReadPodFacts(MakePod({.name = "p", .node = "n", .cgpu = false})).shares_gpu);
  EXPECT_FALSE(ReadPodFacts(MakePod({.name = "p", .gpus = {0}})).HoldsGpu());  // not bound
}

// Resources as the API server returns them: a limit without a request gets the limit as its
// request (defaulting), and quantities are strings in canonical form.
json Amounts(const std::string& resource, const std::string& amount) {
  return {{"limits", {{resource, amount}}}, {"requests", {{resource, amount}}}};
}

bool SharesGpu(const json& pod) { return ReadPodFacts(pod).shares_gpu; }

// ACK counts a pod as GPU-sharing from the limits of spec.containers alone, with an amount above
// zero (object_view_reader.h, ContainersShareGpu).
TEST(PodFactsReaderTest, PositiveContainerLimitsMakeACgpuPod) {
  json pod = MakePod({.name = "p", .node = "n", .cgpu = false});
  ASSERT_FALSE(SharesGpu(pod));  // a CPU limit only
  for (const char* resource : {kGpuMemResource, kGpuCoreResource}) {
    for (const char* amount : {"1", "2", "25", "16276", "1k", "1Gi"}) {
      pod["spec"]["containers"][0]["resources"] = Amounts(resource, amount);
      EXPECT_TRUE(SharesGpu(pod)) << resource << "=" << amount;
    }
  }
  // Limits alone (a pod read before defaulting, or from a hand-written file) count just as well.
  pod["spec"]["containers"][0]["resources"] = {{"limits", {{kGpuMemResource, "1"}}}};
  EXPECT_TRUE(SharesGpu(pod));
}

TEST(PodFactsReaderTest, ZeroLimitsAreNotACgpuPod) {
  json pod = MakePod({.name = "p", .node = "n", .cgpu = false});
  for (const char* resource : {kGpuMemResource, kGpuCoreResource}) {
    for (const char* amount : {"0", "0Gi", "0.0", "-0", "-1", "", "two"}) {
      pod["spec"]["containers"][0]["resources"] = Amounts(resource, amount);
      EXPECT_FALSE(SharesGpu(pod)) << resource << "=" << amount;
    }
  }
  // The API server writes every quantity as a string: another JSON type is no amount.
  pod["spec"]["containers"][0]["resources"] = {{"limits", {{kGpuMemResource, 2}}}};
  EXPECT_FALSE(SharesGpu(pod));
  pod["spec"]["containers"][0]["resources"] = {{"limits", {{kGpuMemResource, nullptr}}}};
  EXPECT_FALSE(SharesGpu(pod));
}

TEST(PodFactsReaderTest, RequestsAloneAreNotACgpuPod) {
  // The API server refuses such a pod (an extended resource needs a limit equal to its request);
  // ACK's schedulers would not count it either.
  json pod = MakePod({.name = "p", .node = "n", .cgpu = false});
  for (const char* resource : {kGpuMemResource, kGpuCoreResource}) {
    pod["spec"]["containers"][0]["resources"] = {{"requests", {{resource, "1"}}}};
    EXPECT_FALSE(SharesGpu(pod)) << resource;
  }
}

TEST(PodFactsReaderTest, InitContainersAreNotACgpuPod) {
  json pod = MakePod({.name = "p", .node = "n", .cgpu = false});
  pod["spec"]["initContainers"] = {
      {{"name", "init"},
       {"image", "registry.cn-hangzhou.aliyuncs.com/ai-samples/gpushare-sample:tensorflow-1.5"},
       {"resources", Amounts(kGpuMemResource, "1")}}};
  EXPECT_FALSE(SharesGpu(pod));
  // ... but a container's own limit still counts beside it.
  pod["spec"]["containers"][0]["resources"] = Amounts(kGpuMemResource, "1");
  EXPECT_TRUE(SharesGpu(pod));
}

TEST(PodFactsReaderTest, OneContainerWithAPositiveLimitIsEnough) {
  json pod = MakePod({.name = "p", .node = "n", .containers = 3, .cgpu = false});
  pod["spec"]["containers"][1]["resources"] = Amounts(kGpuMemResource, "0");
  EXPECT_FALSE(SharesGpu(pod));
  pod["spec"]["containers"][2]["resources"] = Amounts(kGpuCoreResource, "30");
  EXPECT_TRUE(SharesGpu(pod));
  pod["spec"]["containers"][2]["resources"] = Amounts(kGpuMemResource, "2");
  EXPECT_TRUE(SharesGpu(pod));
}

TEST(PodFactsReaderTest, NeverThrowsOnGarbage) {
  for (const json& garbage :
       {json(nullptr), json(3), json("pod"), json::array(), json::object(),
        json{{"metadata", 1}, {"spec", "x"}},
        json{{"metadata", {{"annotations", {{"ALIYUN_COM_GPU_MEM_IDX", json::array()}}}}}},
        json{{"spec", {{"containers", {1, "a", nullptr}}}}},
        json{{"spec", {{"containers", {{{"resources", {{"limits", 5}}}}}}}}}}) {
    PodFacts pod = ReadPodFacts(garbage);
    EXPECT_FALSE(pod.shares_gpu) << garbage.dump();
    EXPECT_FALSE(pod.HoldsGpu());
  }
}

TEST(PodFactsReaderTest, BindingNamesPodNodeAndGpus) {
  BindingFacts binding =
      ReadBindingFacts(testing::MakeBinding("web-0", "gpu-1", {2}), "default", "web-0");
  EXPECT_EQ(binding.PodKey(), "default/web-0");
  EXPECT_EQ(binding.node, "gpu-1");
  EXPECT_EQ(binding.gpus.indices, std::vector<int>{2});
  // The request names the pod; failing that, the Binding's metadata does.
  BindingFacts from_metadata = ReadBindingFacts(testing::MakeBinding("web-1", "gpu-1"), "", "");
  EXPECT_EQ(from_metadata.PodKey(), "default/web-1");
  EXPECT_FALSE(from_metadata.gpus.known());
  EXPECT_TRUE(ReadBindingFacts(json::object(), "ns", "p").node.empty());
}

// The admission codec reads objects from its simdjson document, the informers from nlohmann::json;
// both go through the same object views, so the facts must come out the same.

std::string Describe(const GpuAssignment& gpus) {
  std::ostringstream out;
  for (int index : gpus.indices) out << index << ",";
  out << " source=" << gpus.source << " error=" << gpus.error;
  return out.str();
}

std::string Describe(const PodFacts& pod) {
  std::ostringstream out;
  out << pod.Key() << " uid=" << pod.uid << " node=" << pod.node_name
      << " phase=" << static_cast<int>(pod.phase) << " shares=" << pod.shares_gpu << " "
      << Describe(pod.gpus);
  return out.str();
}

std::string Describe(const VersionFact& fact) {
  return fact.raw + "@" + fact.source + (fact.value ? "+" : "-");
}

std::string Describe(const NodeFacts& node) {
  std::ostringstream out;
  out << node.name << " cgpu=" << node.cgpu_enabled << " by=" << node.cgpu_enabled_by << " "
      << Describe(node.cgpu_version) << " " << Describe(node.driver_version) << " "
      << Describe(node.toolkit_version) << " " << Describe(node.kernel_version) << " "
      << Describe(node.ai_installer_version) << " type=" << node.instance_type << "@"
      << node.instance_type_source << " family=" << node.instance_family.value_or("-")
      << " os=" << node.os_image << " cos=" << node.container_optimized_os
      << " max=" << node.max_pods_per_gpu.value_or(-1) << " gpus=" << node.gpu_count.value_or(-1);
  return out.str();
}

ReviewFacts DecodeFacts(const std::string& review) {
  static const ReviewFactsReader reader(
      NodeFactsReader::Create(FactSources{}, EmbeddedRules()).value());
  ReviewDecodeResult decoded = DecodeAdmissionReview(review);
  if (const auto* error = std::get_if<ReviewDecodeError>(&decoded)) {
    ADD_FAILURE() << error->message;
    return {};
  }
  return reader.Read(std::get<DecodedReview>(decoded));
}

TEST(ReviewFactsParityTest, PodsReadAlikeFromBothLibraries) {
  std::vector<json> pods;
  for (GpuScheme scheme :
       {GpuScheme::kIndexAnnotation, GpuScheme::kAllocationAnnotation, GpuScheme::kNone}) {
    pods.push_back(MakePod({.name = "a", .node = "n", .gpus = {1, 3}, .scheme = scheme}));
  }
  pods.push_back(MakePod({.name = "b", .gpus = {0}, .containers = 3, .phase = "Pending"}));
  pods.push_back(MakePod({.name = "c", .node = "n", .phase = "Succeeded", .cgpu = false}));
  json garbled = MakePod({.name = "d", .node = "n", .gpus = {2}});
  garbled["metadata"]["annotations"]["scheduler.framework.gpushare.allocation"] =
      R"({"0":{"x":1}})";
  pods.push_back(garbled);
  json repeated = MakePod({.name = "e", .node = "n", .gpus = {2}});
  repeated["metadata"]["annotations"]["scheduler.framework.gpushare.allocation"] =
      R"({"0":{"1":"bad"},"0":{"4":1},"1":{"5":1,"5":-1,"5":2}})";
  pods.push_back(repeated);
  for (const json& pod : pods) {
    const ReviewFacts facts = DecodeFacts(MakeReview(
        "u", "pods", "", "UPDATE", pod["metadata"]["name"].get<std::string>(), pod, pod));
    ASSERT_TRUE(facts.pod && facts.old_pod) << pod.dump();
    EXPECT_EQ(Describe(*facts.pod), Describe(ReadPodFacts(pod)));
    EXPECT_EQ(Describe(*facts.old_pod), Describe(ReadPodFacts(pod)));
  }
  // Repeated keys in the allocation annotation: the last of each counts.
  EXPECT_EQ(ReadPodFacts(repeated).gpus.indices, (std::vector<int>{4, 5}));
}

TEST(ReviewFactsParityTest, BindingsReadAlikeFromBothLibraries) {
  for (const json& binding : {MakeBinding("p", "gpu-1", {2, 0}), MakeBinding("p", "gpu-1")}) {
    const ReviewFacts facts =
        DecodeFacts(MakeReview("u", "pods", "binding", "CREATE", "p", binding));
    ASSERT_TRUE(facts.binding);
    const BindingFacts expected = ReadBindingFacts(binding, "default", "p");
    EXPECT_EQ(facts.binding->PodKey(), expected.PodKey());
    EXPECT_EQ(facts.binding->node, expected.node);
    EXPECT_EQ(Describe(facts.binding->gpus), Describe(expected.gpus));
  }
  const ReviewFacts no_target =
      DecodeFacts(MakeReview("u", "pods", "binding", "CREATE", "p", json{{"target", nullptr}}));
  EXPECT_FALSE(no_target.binding);
  EXPECT_EQ(no_target.object_error, "the Binding has no target.name (the node)");
}

TEST(ReviewFactsParityTest, NodesReadAlikeFromBothLibraries) {
  const NodeFactsReader reader = NodeFactsReader::Create(FactSources{}, EmbeddedRules()).value();
  std::vector<json> nodes = {MakeNode({.name = "n1"}), MakeNode({.name = "n2", .schedule = ""}),
                             MakeNode({.name = "n3", .cgpu_version = "1.5.x", .driver = ""})};
  json odd = MakeNode({.name = "n4"});
  odd["metadata"]["labels"]["ack.node.gpu.max-pod"] = "12";
  odd["metadata"]["labels"]["nvidia.com/cuda.driver.major"] = "550";
  odd["metadata"]["labels"]["cgpu-guard.io/container-toolkit-version"] = 1;
  odd["status"]["nodeInfo"]["osImage"] = "ContainerOS 3.2";
  nodes.push_back(odd);
  for (const json& node : nodes) {
    const ReviewFacts facts = DecodeFacts(MakeReview(
        "u", "nodes", "status", "UPDATE", node["metadata"]["name"].get<std::string>(), node, node));
    ASSERT_TRUE(facts.node && facts.old_node) << node.dump();
    EXPECT_EQ(Describe(*facts.node), Describe(reader.Read(node)));
    EXPECT_EQ(Describe(*facts.old_node), Describe(reader.Read(node)));
  }
}

TEST(ReviewFactsParityTest, ObjectsMissingOrOfTheWrongTypeSaySo) {
  for (const json& object : {json(nullptr), json("pod"), json::array()}) {
    const ReviewFacts pod = DecodeFacts(MakeReview("u", "pods", "", "CREATE", "p", object));
    EXPECT_FALSE(pod.pod);
    EXPECT_EQ(pod.object_error, "request.object is missing or not an object");
    // pods/exec has no route: it is not read, so nothing about its object is wrong.
    const ReviewFacts exec = DecodeFacts(MakeReview("u", "pods", "exec", "CONNECT", "p", object));
    EXPECT_EQ(exec.route, nullptr);
    EXPECT_EQ(exec.object_error, "");
    const ReviewFacts binding =
        DecodeFacts(MakeReview("u", "pods", "binding", "CREATE", "p", object));
    EXPECT_EQ(binding.object_error, "the pods/binding request carries no Binding object");
    const ReviewFacts legacy = DecodeFacts(MakeReview("u", "bindings", "", "CREATE", "p", object));
    EXPECT_EQ(legacy.object_error, "the bindings request carries no Binding object");
  }
  EXPECT_EQ(DecodeFacts(MakeReview("u", "pods", "", "DELETE", "p", nullptr)).object_error, "");
}

}  // namespace
}  // namespace cgpu
