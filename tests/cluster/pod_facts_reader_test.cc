#include "adapters/pod_facts_reader.h"

#include <gtest/gtest.h>

#include "cluster/cluster_objects.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::GpuScheme;
using testing::MakePod;
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

TEST(PodFactsReaderTest, PhasesAndNonCgpuPods) {
  EXPECT_FALSE(ReadPodFacts(MakePod({.name = "p", .node = "n", .gpus = {0}, .phase = "Succeeded"}))
                   .HoldsGpu());
  EXPECT_FALSE(
      ReadPodFacts(MakePod({.name = "p", .node = "n", .gpus = {0}, .phase = "Failed"})).HoldsGpu());
  EXPECT_TRUE(ReadPodFacts(MakePod({.name = "p", .node = "n", .gpus = {0}, .phase = "Pending"}))
                  .HoldsGpu());
  EXPECT_FALSE(ReadPodFacts(MakePod({.name = "p", .node = "n", .cgpu = false})).shares_gpu);
  EXPECT_FALSE(ReadPodFacts(MakePod({.name = "p", .gpus = {0}})).HoldsGpu());  // not bound

  json core_only = MakePod({.name = "p", .node = "n", .gpus = {0}});
  core_only["spec"]["containers"][0]["resources"] = {
      {"requests", {{"aliyun.com/gpu-core.percentage", "25"}}}};
  EXPECT_TRUE(ReadPodFacts(core_only).shares_gpu);
  json init_only = MakePod({.name = "p", .node = "n", .cgpu = false});
  init_only["spec"]["initContainers"] = {
      {{"name", "init"}, {"resources", {{"limits", {{"aliyun.com/gpu-mem", 1}}}}}}};
  EXPECT_TRUE(ReadPodFacts(init_only).shares_gpu);
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

}  // namespace
}  // namespace cgpu
