// The host-fact readers on garbled and borderline text, and the label change they lead to. The
// real outputs of the tools are read in tests/adapters/host_probe_test.cc (fixtures).
#include "core/host_facts.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

using Labels = std::map<std::string, std::string>;
using Desired = std::map<std::string, std::optional<std::string>>;

TEST(HostFactsTest, DriverProcTextWithoutAVersionGivesNothing) {
  EXPECT_EQ(DriverVersionFromProc(""), std::nullopt);
  EXPECT_EQ(DriverVersionFromProc("NVRM version: NVIDIA UNIX x86_64 Kernel Module\n"),
            std::nullopt);
  EXPECT_EQ(DriverVersionFromProc("NVRM version: NVIDIA UNIX x86_64 Kernel Module  ???  x\n"),
            std::nullopt);
  EXPECT_EQ(DriverVersionFromProc("GCC version: gcc version 12.2.0\n"), std::nullopt);
  EXPECT_EQ(DriverVersionFromProc("\x01\x02\xff binary junk 1.2.3"), std::nullopt);
  // The date after the version is not taken for it, nor "x86_64" before it.
  EXPECT_EQ(DriverVersionFromProc("NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.82.01  "
                                  "Wed Oct 27 04:22:43 UTC 2021\n"),
            "470.82.01");
}

TEST(HostFactsTest, NvidiaSmiLinesMustAgree) {
  EXPECT_EQ(DriverVersionFromNvidiaSmi("550.54.14\n"), "550.54.14");
  EXPECT_EQ(DriverVersionFromNvidiaSmi("550.54.14\n550.54.14\n\n"), "550.54.14");
  EXPECT_EQ(DriverVersionFromNvidiaSmi("550.54.14\n535.161.08\n"), std::nullopt);  // mixed
  EXPECT_EQ(DriverVersionFromNvidiaSmi(""), std::nullopt);
  EXPECT_EQ(DriverVersionFromNvidiaSmi(
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"),
            std::nullopt);
}

TEST(HostFactsTest, CgpuVersionIsTheFirstLinesLastWord) {
  EXPECT_EQ(CgpuVersionFromText("1.5.10\n"), "1.5.10");
  EXPECT_EQ(CgpuVersionFromText("v1.5.10"), "1.5.10");
  EXPECT_EQ(CgpuVersionFromText("cgpu version: 1.5.19\nbuild: abc\n"), "1.5.19");
  EXPECT_EQ(CgpuVersionFromText(""), std::nullopt);
  EXPECT_EQ(CgpuVersionFromText("unknown\n1.5.10\n"), std::nullopt);  // not on the first line
  EXPECT_EQ(CgpuVersionFromText("1\n"), std::nullopt);                // not major.minor
  EXPECT_EQ(CgpuVersionFromText("1.5.x\n"), std::nullopt);
}

TEST(HostFactsTest, ToolkitOutputsWithoutTheirVersionLineGiveNothing) {
  EXPECT_EQ(ToolkitVersionFromCli("version: 1.0.7\nbuild date: 2019-11-11\n"), "1.0.7");
  EXPECT_EQ(ToolkitVersionFromCli("lib-version: 1.16.1\n"), std::nullopt);
  EXPECT_EQ(ToolkitVersionFromCli("cli-version: garbage\n"), std::nullopt);
  EXPECT_EQ(ToolkitVersionFromCtk("NVIDIA Container Runtime version 1.17.6\n"), std::nullopt);
  EXPECT_EQ(ToolkitVersionFromCtk("NVIDIA Container Toolkit CLI version \n"), std::nullopt);
  EXPECT_EQ(ToolkitVersionFromRpmQuery("package nvidia-container-toolkit is not installed\n"),
            std::nullopt);
  EXPECT_EQ(ToolkitVersionFromRpmQuery("1.14.6\n"), "1.14.6");
}

TEST(HostFactsTest, DpkgStatusTakesOnlyInstalledPackagesAndStripsRevision) {
  const std::string removed =
      "Package: nvidia-container-toolkit\nStatus: deinstall ok config-files\nVersion: 1.9.0-1\n";
  EXPECT_EQ(ToolkitVersionFromDpkgStatus(removed), std::nullopt);
  EXPECT_EQ(ToolkitVersionFromDpkgStatus(
                "Package: nvidia-container-toolkit\nStatus: install ok installed\n"
                "Version: 1:1.13.5-1ubuntu1\n"),
            "1.13.5");
  // Before 1.6 the CLI came in libnvidia-container-tools.
  EXPECT_EQ(ToolkitVersionFromDpkgStatus("Package: libnvidia-container-tools\n"
                                         "Status: install ok installed\nVersion: 1.3.3-1\n"),
            "1.3.3");
  EXPECT_EQ(ToolkitVersionFromDpkgStatus("Package: nvidia-container-toolkit\n"
                                         "Status: install ok installed\nVersion: 1.14.0~rc.2-1\n"),
            std::nullopt);  // a pre-release is not the release the rules name
  EXPECT_EQ(ToolkitVersionFromDpkgStatus(""), std::nullopt);
}

TEST(HostFactsTest, LabelValuesFollowKubernetesRules) {
  EXPECT_TRUE(IsValidLabelValue("535.161.08"));
  EXPECT_TRUE(IsValidLabelValue("1.5.10"));
  EXPECT_FALSE(IsValidLabelValue(""));
  EXPECT_FALSE(IsValidLabelValue(".1.5"));
  EXPECT_FALSE(IsValidLabelValue("1.5 "));
  EXPECT_FALSE(IsValidLabelValue("1/5"));
  EXPECT_FALSE(IsValidLabelValue(std::string(64, '1')));
  EXPECT_TRUE(IsValidLabelValue(std::string(63, '1')));
}

TEST(HostFactsTest, DiffSetsChangedRemovesAbsentAndLeavesTheRest) {
  const Labels current = {{"a.io/cgpu", "1.5.9"},
                          {"a.io/driver", "535.161.08"},
                          {"a.io/toolkit", "1.14.6"},
                          {"kubernetes.io/hostname", "n1"}};
  const Desired desired = {
      {"a.io/cgpu", "1.5.10"}, {"a.io/driver", "535.161.08"}, {"a.io/toolkit", std::nullopt}};
  const LabelChange change = DiffOwnedLabels(current, desired);
  EXPECT_EQ(change, (LabelChange{{"a.io/cgpu", "1.5.10"}, {"a.io/toolkit", std::nullopt}}));
}

TEST(HostFactsTest, DiffIsEmptyWhenLabelsAreRight) {
  EXPECT_TRUE(DiffOwnedLabels({{"a.io/cgpu", "1.5.10"}},
                              {{"a.io/cgpu", "1.5.10"}, {"a.io/driver", std::nullopt}})
                  .empty());
  // An absent fact and an absent label agree; a new fact is added.
  EXPECT_EQ(DiffOwnedLabels({}, {{"a.io/driver", "550.54.14"}}),
            (LabelChange{{"a.io/driver", "550.54.14"}}));
}

}  // namespace
}  // namespace cgpu
