// The compiled-in rules against the seed, table by table.
//
// The expectations below are written out from the source text (ACK "cGPU compatibility
// requirements and known issues"), not read from rules/cgpu-rules.yaml, so a slip in the rules
// file shows up here. Each row is tried at both ends of its cGPU range and one step past each
// bound; each gap, each known issue and each place where the seed disagrees with itself has a
// test of its own.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "adapters/embedded_rules.h"
#include "core/compatibility.h"

namespace cgpu {
namespace {

Version V(const std::string& text) { return Version::Parse(text).value(); }

VersionFact Fact(const std::string& raw, const std::string& source) {
  VersionFact fact;
  fact.raw = raw;
  fact.source = source;
  fact.value = Version::Parse(raw);
  return fact;
}

// A cGPU node that every table accepts for every cGPU version from 0.8.13 on, so a test can
// change one fact and see one rule move.
NodeFacts Node(const std::string& cgpu) {
  NodeFacts facts;
  facts.name = "node-a";
  facts.cgpu_enabled = true;
  facts.cgpu_enabled_by = "ack.node.gpu.schedule=cgpu";
  facts.cgpu_version = Fact(cgpu, "label cgpu-guard.io/cgpu-version");
  facts.driver_version = Fact("470.82.01", "label cgpu-guard.io/nvidia-driver-version");
  facts.toolkit_version = Fact("1.10.0", "label cgpu-guard.io/container-toolkit-version");
  facts.kernel_version = Fact("4.19.91", "status.nodeInfo.kernelVersion");
  facts.instance_type = "ecs.gn6i-c4g1.xlarge";
  facts.instance_type_source = "label node.kubernetes.io/instance-type";
  facts.instance_family = "gn6i";
  return facts;
}

const Finding& FindingFor(const NodeEvaluation& evaluation, const std::string& rule) {
  for (const Finding& finding : evaluation.findings) {
    if (finding.rule == rule) return finding;
  }
  ADD_FAILURE() << "no finding for rule " << rule;
  static const Finding kMissing;
  return kMissing;
}

RuleVerdict Verdict(const NodeFacts& facts, const std::string& rule) {
  return FindingFor(EvaluateNode(facts, EmbeddedRules()), rule).verdict;
}

std::string Message(const NodeFacts& facts, const std::string& rule) {
  return FindingFor(EvaluateNode(facts, EmbeddedRules()), rule).message;
}

constexpr RuleVerdict kOk = RuleVerdict::kCompatible;
constexpr RuleVerdict kNo = RuleVerdict::kIncompatible;
constexpr RuleVerdict kUnknown = RuleVerdict::kUnknown;

// ---- NVIDIA driver -----------------------------------------------------------------------------

RuleVerdict DriverVerdict(const std::string& cgpu, const std::string& driver) {
  NodeFacts facts = Node(cgpu);
  facts.driver_version = Fact(driver, "label cgpu-guard.io/nvidia-driver-version");
  return Verdict(facts, "driver");
}

TEST(SeedDriverTable, Row_1_5_3_to_1_5_20_SupportsEverySeries) {
  for (const char* cgpu : {"1.5.3", "1.5.20"}) {
    for (const char* driver :
         {"460.106.00", "470.256.02", "510.108.03", "515.105.01", "525.147.05", "535.161.08",
          "550.54.15", "560.35.03", "565.57.01", "570.86.15", "575.51.03"}) {
      EXPECT_EQ(DriverVerdict(cgpu, driver), kOk) << cgpu << " " << driver;
    }
  }
}

TEST(SeedDriverTable, Row_1_0_5_to_1_5_2_BoundsEachSeries) {
  for (const char* cgpu : {"1.0.5", "1.5.2"}) {
    EXPECT_EQ(DriverVerdict(cgpu, "460.106.00"), kOk) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "470.161.03"), kOk) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "470.161.04"), kNo) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "470.182.03"), kNo) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "510.108.03"), kOk) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "510.108.04"), kNo) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "515.86.01"), kOk) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "515.86.02"), kNo) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "525.89.03"), kOk) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "525.105.17"), kNo) << cgpu;
    for (const char* driver :
         {"535.54.03", "550.54.15", "560.35.03", "565.57.01", "570.86.15", "575.51.03"}) {
      EXPECT_EQ(DriverVerdict(cgpu, driver), kNo) << cgpu << " " << driver;
    }
  }
}

TEST(SeedDriverTable, Row_0_8_13_to_1_0_3_Supports460And470Only) {
  for (const char* cgpu : {"0.8.13", "1.0.3"}) {
    EXPECT_EQ(DriverVerdict(cgpu, "460.106.00"), kOk) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "470.161.03"), kOk) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "470.161.04"), kNo) << cgpu;
    for (const char* driver : {"510.47.03", "515.65.01", "525.60.13", "535.54.03", "550.54.15",
                               "560.35.03", "565.57.01", "570.86.15", "575.51.03"}) {
      EXPECT_EQ(DriverVerdict(cgpu, driver), kNo) << cgpu << " " << driver;
    }
  }
}

TEST(SeedDriverTable, GapsAndUnlistedSeriesAreUnknown) {
  EXPECT_EQ(DriverVerdict("1.0.4", "470.82.01"), kUnknown);    // between rows 0.8.13-1.0.3, 1.0.5-
  EXPECT_EQ(DriverVerdict("0.8.12", "470.82.01"), kUnknown);   // below the first row
  EXPECT_EQ(DriverVerdict("1.5.21", "535.161.08"), kUnknown);  // above the last row
  EXPECT_EQ(DriverVerdict("1.5.20", "418.87.01"), kUnknown);   // a series no row names
  EXPECT_EQ(DriverVerdict("1.5.20", "580.65.06"), kUnknown);
}

// The table's newest series is 575: "1.5.3 – 1.5.20 | 460, 470, 510, 515, 525, 535, 550, 560, 565,
// 570, 575 series". A later series is newer than every row, not excluded by one.
TEST(SeedDriverTable, SeriesAfterEveryRowIsUnknownAndSaysSo) {
  // 575 is named by every row: supported by the newest, "Not supported" by the two older ones.
  for (const char* cgpu : {"1.5.3", "1.5.20"}) {
    EXPECT_EQ(DriverVerdict(cgpu, "575.51.03"), kOk) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "580.65.06"), kUnknown) << cgpu;
  }
  for (const char* cgpu : {"0.8.13", "1.0.3", "1.0.5", "1.5.2"}) {
    EXPECT_EQ(DriverVerdict(cgpu, "575.51.03"), kNo) << cgpu;
    EXPECT_EQ(DriverVerdict(cgpu, "580.65.06"), kUnknown) << cgpu;
  }
  NodeFacts facts = Node("1.5.20");
  facts.driver_version = Fact("580.65.06", "label cgpu-guard.io/nvidia-driver-version");
  EXPECT_NE(Message(facts, "driver")
                .find("NVIDIA driver series 580 (driver 580.65.06) is newer than every series "
                      "the driver table names for cGPU 1.5.3-1.5.20"),
            std::string::npos)
      << Message(facts, "driver");
}

TEST(SeedDriverTable, MessageSaysWhatToUpgrade) {
  NodeFacts facts = Node("1.5.2");
  facts.driver_version = Fact("535.104.05", "label cgpu-guard.io/nvidia-driver-version");
  EXPECT_EQ(Message(facts, "driver")
                .rfind("cGPU 1.5.2 does not support NVIDIA driver 535.104.05 "
                       "(535 series needs cGPU 1.5.3-1.5.20); upgrade cGPU",
                       0),
            0u)
      << Message(facts, "driver");
  facts.driver_version = Fact("470.182.03", "label cgpu-guard.io/nvidia-driver-version");
  EXPECT_NE(Message(facts, "driver").find("only up to 470.161.03"), std::string::npos);
  EXPECT_NE(Message(facts, "driver").find("470.182.03 needs cGPU 1.5.3-1.5.20"), std::string::npos);
}

// ---- Instance families -------------------------------------------------------------------------

const std::vector<std::string> kGn6 = {"gn6i",    "gn6e",    "gn6v",   "gn6t",
                                       "ebmgn6i", "ebmgn6t", "ebmgn6e"};
const std::vector<std::string> kGn7 = {"gn7i", "gn7", "gn7e", "ebmgn7i", "ebmgn7e"};
const std::vector<std::string> kGn8t = {"gn8t", "ebmgn8t"};
const std::vector<std::string> kGn8is = {"gn8is", "gn8v", "ebmgn8is", "ebmgn8v"};
const std::vector<std::string> kGn8ia = {"gn8ia", "ebmgn8ia"};
const std::vector<std::string> kGn9t = {"ebmgn9t"};

struct FamilyRow {
  std::string low, high;
  std::vector<std::vector<std::string>> supported, not_supported;
};

const std::vector<FamilyRow> kFamilyRows = {
    {"1.5.19", "1.5.20", {kGn6, kGn7, kGn8t, kGn8is, kGn8ia, kGn9t}, {}},
    {"1.5.9", "1.5.18", {kGn6, kGn7, kGn8t, kGn8is, kGn8ia}, {kGn9t}},
    {"1.5.7", "1.5.8", {kGn6, kGn7, kGn8t, kGn8is}, {kGn8ia, kGn9t}},
    {"1.5.5", "1.5.6", {kGn6, kGn7, kGn8t}, {kGn8is, kGn8ia, kGn9t}},
    {"1.0.3", "1.5.3", {kGn6, kGn7}, {kGn8t, kGn8is, kGn8ia, kGn9t}},
    {"0.8.13", "0.8.17", {kGn6}, {kGn7, kGn8t, kGn8is, kGn8ia, kGn9t}},
};

RuleVerdict FamilyVerdict(const std::string& cgpu, const std::string& family) {
  NodeFacts facts = Node(cgpu);
  facts.instance_type = "ecs." + family + ".8xlarge";
  facts.instance_family = family;
  return Verdict(facts, "instance-family");
}

TEST(SeedInstanceFamilyTable, EveryRowAtBothEnds) {
  for (const FamilyRow& row : kFamilyRows) {
    for (const std::string& cgpu : {row.low, row.high}) {
      for (const auto& group : row.supported) {
        for (const auto& family : group) {
          EXPECT_EQ(FamilyVerdict(cgpu, family), kOk) << cgpu << " " << family;
        }
      }
      for (const auto& group : row.not_supported) {
        for (const auto& family : group) {
          EXPECT_EQ(FamilyVerdict(cgpu, family), kNo) << cgpu << " " << family;
        }
      }
    }
  }
}

TEST(SeedInstanceFamilyTable, OnePastEachBoundLandsInTheNeighbourOrAGap) {
  EXPECT_EQ(FamilyVerdict("1.5.18", "ebmgn9t"), kNo);  // 1.5.19 is the first to support it
  EXPECT_EQ(FamilyVerdict("1.5.8", "gn8ia"), kNo);     // 1.5.9 is the first to support it
  EXPECT_EQ(FamilyVerdict("1.5.6", "gn8is"), kNo);     // 1.5.7 is the first to support it
  EXPECT_EQ(FamilyVerdict("1.5.3", "gn8t"), kNo);      // 1.5.5 is the first to support it
  EXPECT_EQ(FamilyVerdict("0.8.17", "gn7i"), kNo);     // 1.0.3 is the first to support it
  // Gaps: 1.5.4, 0.8.18 - 1.0.2, below 0.8.13, above 1.5.20.
  for (const char* cgpu : {"1.5.4", "0.8.18", "1.0.2", "0.8.12", "1.5.21"}) {
    EXPECT_EQ(FamilyVerdict(cgpu, "gn6i"), kUnknown) << cgpu;
  }
}

TEST(SeedInstanceFamilyTable, UnlistedFamiliesAreUnknownAndTeeIsNotGn8v) {
  EXPECT_EQ(FamilyVerdict("1.5.20", "gn5i"), kUnknown);
  EXPECT_EQ(FamilyVerdict("1.5.20", "gn8v-tee"), kUnknown);
  EXPECT_EQ(FamilyVerdict("1.5.20", "gn8v"), kOk);
}

TEST(SeedInstanceFamilyTable, MessageNamesTheFirstVersionThatHelps) {
  NodeFacts facts = Node("1.5.8");
  facts.instance_type = "ecs.gn8ia-2x.8xlarge";
  facts.instance_family = "gn8ia";
  const std::string message = Message(facts, "instance-family");
  EXPECT_NE(
      message.find("cGPU 1.5.8 does not support instance family gn8ia (ecs.gn8ia-2x.8xlarge)"),
      std::string::npos)
      << message;
  EXPECT_NE(message.find("gn8ia needs cGPU 1.5.9-1.5.20"), std::string::npos) << message;
}

// ---- nvidia-container-toolkit ------------------------------------------------------------------

RuleVerdict ToolkitVerdict(const std::string& cgpu, const std::string& toolkit) {
  NodeFacts facts = Node(cgpu);
  facts.toolkit_version = Fact(toolkit, "label cgpu-guard.io/container-toolkit-version");
  return Verdict(facts, "container-toolkit");
}

TEST(SeedToolkitTable, NewRowSupportsUpTo1_17) {
  for (const char* cgpu : {"1.0.11", "1.5.20"}) {
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.0.0"), kOk) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.10.0"), kOk) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.11.0"), kOk) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.17.8"), kOk) << cgpu;
  }
}

// "1.0.10 – 1.5.20 | ≤ 1.10 and 1.11 – 1.17" names nothing after 1.17, and the troubleshooting
// entry blames later toolkits only on old cGPU: "This is caused by an incompatibility between
// cGPU versions 1.0.10 and earlier and nvidia-container-toolkit versions 1.11 and later." A
// toolkit after 1.17 is newer than every row for the new cGPU versions: unknown, not excluded.
TEST(SeedToolkitTable, NewRowSaysNothingOfToolkitsAfter1_17) {
  for (const char* cgpu : {"1.0.11", "1.5.20"}) {
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.17"), kOk) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.17.99"), kOk) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.18.0"), kUnknown) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "2.0.0"), kUnknown) << cgpu;
  }
  NodeFacts facts = Node("1.5.20");
  facts.toolkit_version = Fact("1.18.0", "label cgpu-guard.io/container-toolkit-version");
  EXPECT_NE(Message(facts, "container-toolkit")
                .find("nvidia-container-toolkit 1.18.0 is newer than every version the "
                      "nvidia-container-toolkit table names for cGPU 1.0.11-1.5.20 (<=1.10, "
                      "1.11-1.17): the source predates it"),
            std::string::npos)
      << Message(facts, "container-toolkit");
}

// "0.8.13 – 1.0.9 | ≤ 1.10 only (1.11 – 1.17 not supported)", and the troubleshooting entry:
// "an incompatibility between cGPU versions 1.0.10 and earlier and nvidia-container-toolkit
// versions 1.11 and later". "1.11 and later" has no end: 1.18 stays excluded for old cGPU.
TEST(SeedToolkitTable, OldRowSupportsUpTo1_10Only) {
  for (const char* cgpu : {"0.8.13", "1.0.9"}) {
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.10.0"), kOk) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.11.0"), kNo) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.17.8"), kNo) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "1.18.0"), kNo) << cgpu;
    EXPECT_EQ(ToolkitVerdict(cgpu, "2.0.0"), kNo) << cgpu;
  }
}

// The table puts 1.0.10 with the new row; the troubleshooting entry says "1.0.10 and earlier"
// fail with toolkit 1.11 and later. The stricter reading wins.
TEST(SeedToolkitTable, Disagreement_1_0_10_TakesTheStricterReading) {
  EXPECT_EQ(ToolkitVerdict("1.0.10", "1.10.0"), kOk);
  EXPECT_EQ(ToolkitVerdict("1.0.10", "1.11.0"), kNo);
  EXPECT_EQ(ToolkitVerdict("1.0.11", "1.11.0"), kOk);
}

TEST(SeedToolkitTable, GapsAreUnknown) {
  EXPECT_EQ(ToolkitVerdict("0.8.12", "1.10.0"), kUnknown);
  EXPECT_EQ(ToolkitVerdict("1.5.21", "1.10.0"), kUnknown);
}

// ---- Kernel ------------------------------------------------------------------------------------

RuleVerdict KernelVerdict(const std::string& cgpu, const std::string& kernel) {
  NodeFacts facts = Node(cgpu);
  facts.kernel_version = Fact(kernel, "status.nodeInfo.kernelVersion");
  return Verdict(facts, "kernel");
}

struct KernelRow {
  std::string low, high;
  std::string newest_ok;   // the highest kernel the row allows
  std::string first_past;  // the lowest kernel past it
};

const std::vector<KernelRow> kKernelRows = {
    {"1.5.9", "1.5.20", "5.15.167", "5.16.0"}, {"1.5.3", "1.5.8", "5.10.134", "5.11.0"},
    {"1.0.3", "1.5.2", "5.1.21", "5.2.0"},     {"0.8.17", "0.8.17", "5.0.21", "5.1.0"},
    {"0.8.10", "0.8.13", "4.19.91", "5.0.0"},
};

// "1.5.9 – 1.5.20 | 3.x, 4.x, 5.x ≤ 5.15" ... "0.8.10 – 0.8.13 | 3.x, 4.x (5.x not supported)":
// the bound inside 5.x, or "5.x not supported", excludes the 5.x kernels past it.
TEST(SeedKernelTable, EveryRowAtBothEndsAndOnePastItsBound) {
  for (const KernelRow& row : kKernelRows) {
    for (const std::string& cgpu : {row.low, row.high}) {
      EXPECT_EQ(KernelVerdict(cgpu, "3.10.0"), kOk) << cgpu;
      EXPECT_EQ(KernelVerdict(cgpu, "4.19.91"), kOk) << cgpu;
      EXPECT_EQ(KernelVerdict(cgpu, row.newest_ok), kOk) << cgpu;
      EXPECT_EQ(KernelVerdict(cgpu, row.first_past), kNo) << cgpu;
      EXPECT_EQ(KernelVerdict(cgpu, "5.19.17"), kNo) << cgpu;  // still a 5.x kernel
    }
  }
}

// No row names a 6.x kernel ("3.x, 4.x, 5.x ≤ 5.15" is the newest a row goes): the page
// predates it, so a 6.x kernel is unknown for every row, not excluded by the 5.x bound.
TEST(SeedKernelTable, KernelsNewerThanEveryRowAreUnknown) {
  for (const KernelRow& row : kKernelRows) {
    for (const std::string& cgpu : {row.low, row.high}) {
      EXPECT_EQ(KernelVerdict(cgpu, "6.1.0"), kUnknown) << cgpu;
      EXPECT_EQ(KernelVerdict(cgpu, "6.6.0"), kUnknown) << cgpu;
    }
  }
  // Both sides of the 5.x bound and the next major, for the newest row.
  EXPECT_EQ(KernelVerdict("1.5.20", "5.15.0"), kOk);
  EXPECT_EQ(KernelVerdict("1.5.20", "5.16.0"), kNo);
  EXPECT_EQ(KernelVerdict("1.5.20", "6.1.0"), kUnknown);

  NodeFacts facts = Node("1.5.20");
  facts.kernel_version = Fact("6.1.0", "status.nodeInfo.kernelVersion");
  EXPECT_NE(Message(facts, "kernel")
                .find("kernel 6.1.0 is newer than every version the kernel table names for cGPU "
                      "1.5.9-1.5.20 (3.x, 4.x, 5.x<=5.15): the source predates it"),
            std::string::npos)
      << Message(facts, "kernel");
}

TEST(SeedKernelTable, GapsAndOlderKernelsAreUnknown) {
  for (const char* cgpu : {"0.8.9", "0.8.14", "0.8.16", "0.8.18", "1.0.2", "1.5.21"}) {
    EXPECT_EQ(KernelVerdict(cgpu, "4.19.91"), kUnknown) << cgpu;
  }
  EXPECT_EQ(KernelVerdict("1.5.20", "2.6.32"), kUnknown);
}

TEST(SeedKernelTable, MessageNamesTheNeededCgpu) {
  NodeFacts facts = Node("1.5.8");
  facts.kernel_version = Fact("5.15.0", "status.nodeInfo.kernelVersion");
  const std::string message = Message(facts, "kernel");
  EXPECT_NE(message.find("cGPU 1.5.8 does not support kernel 5.15.0"), std::string::npos)
      << message;
  EXPECT_NE(message.find("5.15.0 needs cGPU 1.5.9-1.5.20"), std::string::npos) << message;
}

// ---- Known issues ------------------------------------------------------------------------------

// "A deadlock in the cGPU kernel driver causes concurrent processes to block each other,
// resulting in a Linux kernel panic. This affects cGPU versions 1.5.7 and earlier." and
// "Upgrade to cGPU ≥ 1.5.10 to prevent kernel errors in new services." The upgrade is a remedy,
// not an affected range: 1.5.8 and 1.5.9 are neither affected nor fixed by these words.
TEST(SeedKnownIssues, KernelPanicAffects1_5_7AndEarlier) {
  EXPECT_EQ(Verdict(Node("0.8.13"), "kernel-panic"), kNo);
  EXPECT_EQ(Verdict(Node("1.5.7"), "kernel-panic"), kNo);
  EXPECT_EQ(Verdict(Node("1.5.8"), "kernel-panic"), kUnknown);
  EXPECT_EQ(Verdict(Node("1.5.9"), "kernel-panic"), kUnknown);
  EXPECT_EQ(Verdict(Node("1.5.10"), "kernel-panic"), kOk);
  EXPECT_EQ(Verdict(Node("1.5.20"), "kernel-panic"), kOk);
  EXPECT_NE(Message(Node("1.5.7"), "kernel-panic").find("(affected: <=1.5.7)"), std::string::npos)
      << Message(Node("1.5.7"), "kernel-panic");
  EXPECT_NE(Message(Node("1.5.7"), "kernel-panic").find("upgrade cGPU to 1.5.10 or later"),
            std::string::npos);
  const std::string gap = Message(Node("1.5.8"), "kernel-panic");
  EXPECT_NE(gap.find("cGPU 1.5.8 lies between the versions named as affected by the kernel-panic "
                     "deadlock (<=1.5.7) and the fix (>=1.5.10); whether it has the deadlock is "
                     "not documented; upgrade cGPU to 1.5.10 or later"),
            std::string::npos)
      << gap;
}

// The same gap seen from the whole node: a 1.5.8 or 1.5.9 node that every table accepts is
// unknown (allowed with a warning by default), never incompatible.
TEST(SeedKnownIssues, KernelPanicGapDoesNotDenyTheNode) {
  for (const char* cgpu : {"1.5.8", "1.5.9"}) {
    const NodeEvaluation evaluation = EvaluateNode(Node(cgpu), EmbeddedRules());
    EXPECT_EQ(evaluation.verdict, NodeVerdict::kUnknown) << cgpu;
    ASSERT_NE(evaluation.FirstProblem(), nullptr) << cgpu;
    EXPECT_EQ(evaluation.FirstProblem()->rule, "kernel-panic") << cgpu;
  }
  EXPECT_EQ(EvaluateNode(Node("1.5.7"), EmbeddedRules()).verdict, NodeVerdict::kIncompatible);
  EXPECT_EQ(EvaluateNode(Node("1.5.10"), EmbeddedRules()).verdict, NodeVerdict::kCompatible);
}

TEST(SeedKnownIssues, ContainerOptimizedOsNeedsNewAiInstaller) {
  NodeFacts facts = Node("1.5.18");
  facts.os_image = "Alibaba Cloud Linux 3.2104 LTS 64-bit Container-Optimized Edition";
  facts.container_optimized_os = true;
  EXPECT_EQ(Verdict(facts, "container-os"), kNo);
  EXPECT_NE(Message(facts, "container-os").find("ack-ai-installer to 1.12.6 or later"),
            std::string::npos);
  facts.ai_installer_version = Fact("1.12.5", "--ai-installer-version");
  EXPECT_EQ(Verdict(facts, "container-os"), kNo);
  facts.ai_installer_version = Fact("1.12.6", "--ai-installer-version");
  EXPECT_EQ(Verdict(facts, "container-os"), kOk);
  facts.ai_installer_version = Fact("1.12.x", "--ai-installer-version");
  EXPECT_EQ(Verdict(facts, "container-os"), kUnknown);

  NodeFacts fixed = Node("1.5.19");
  fixed.container_optimized_os = true;
  EXPECT_EQ(Verdict(fixed, "container-os"), kOk);
  EXPECT_EQ(Verdict(Node("1.5.2"), "container-os"), kOk);  // not a container-optimized image
}

// "This is caused by an incompatibility between cGPU versions 1.5.2 and earlier and GPU driver
// versions released after July 2023." The rules know versions, not release dates: a driver past
// the newest one the 1.0.5 - 1.5.2 driver row supports is newer than every driver known to
// work, and the finding says that, not that the driver was released after July 2023.
TEST(SeedKnownIssues, NvmlMessageSaysWhatIsKnown) {
  NodeFacts facts = Node("1.5.2");
  facts.driver_version = Fact("470.182.03", "label cgpu-guard.io/nvidia-driver-version");
  std::string message = Message(facts, "nvml");
  EXPECT_EQ(message.find("(released after July 2023)"), std::string::npos) << message;
  EXPECT_NE(message.find("cGPU 1.5.2 with NVIDIA driver 470.182.03: the driver is newer than "
                         "470.161.03, the newest 470 driver known to work with cGPU <=1.5.2; "
                         "the source links NVML failures of cGPU <=1.5.2"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("to drivers released after July 2023; upgrade cGPU to the latest"),
            std::string::npos)
      << message;

  facts.driver_version = Fact("535.54.03", "label cgpu-guard.io/nvidia-driver-version");
  message = Message(facts, "nvml");
  EXPECT_EQ(message.find("(released after July 2023)"), std::string::npos) << message;
  EXPECT_NE(message.find("no driver of the 535 series or a later one is known to work with "
                         "cGPU <=1.5.2"),
            std::string::npos)
      << message;
}

TEST(SeedKnownIssues, NvmlBlockedWithDriversAfterJuly2023) {
  NodeFacts facts = Node("1.5.2");
  facts.driver_version = Fact("535.104.05", "label cgpu-guard.io/nvidia-driver-version");
  EXPECT_EQ(Verdict(facts, "nvml"), kNo);
  facts.driver_version = Fact("470.199.02", "label cgpu-guard.io/nvidia-driver-version");
  EXPECT_EQ(Verdict(facts, "nvml"), kNo);
  facts.driver_version = Fact("470.161.03", "label cgpu-guard.io/nvidia-driver-version");
  EXPECT_EQ(Verdict(facts, "nvml"), kOk);
  facts.driver_version = Fact("418.87.01", "label cgpu-guard.io/nvidia-driver-version");
  EXPECT_EQ(Verdict(facts, "nvml"), kUnknown);

  NodeFacts fixed = Node("1.5.3");
  fixed.driver_version = Fact("535.104.05", "label cgpu-guard.io/nvidia-driver-version");
  EXPECT_EQ(Verdict(fixed, "nvml"), kOk);
}

TEST(SeedKnownIssues, TwentyPodsPerGpu) {
  const RuleTable& rules = EmbeddedRules();
  EXPECT_EQ(rules.max_pods_per_gpu, 20);
  EXPECT_NE(rules.Text("pods-per-gpu").symptom.find("Error occurs when creating cGPU instance"),
            std::string::npos);
}

// ---- Whole nodes -------------------------------------------------------------------------------

TEST(SeedNodeVerdict, CurrentStackIsCompatible) {
  NodeFacts facts = Node("1.5.20");
  facts.driver_version = Fact("570.86.15", "label cgpu-guard.io/nvidia-driver-version");
  facts.toolkit_version = Fact("1.17.3", "label cgpu-guard.io/container-toolkit-version");
  facts.kernel_version = Fact("5.10.134", "status.nodeInfo.kernelVersion");
  facts.instance_type = "ecs.ebmgn9t.48xlarge";
  facts.instance_family = "ebmgn9t";
  const NodeEvaluation evaluation = EvaluateNode(facts, EmbeddedRules());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kCompatible);
  EXPECT_EQ(evaluation.FirstProblem(), nullptr);
  EXPECT_EQ(evaluation.findings.size(), 7u);
}

// What the tables do not name warns, what they exclude denies: the same 1.5.20 node with a
// kernel past "5.x ≤ 5.15" is incompatible, with a 6.x kernel or a toolkit after 1.17 unknown.
TEST(SeedNodeVerdict, NewerThanEveryRowWarnsAndPastARowBoundDenies) {
  NodeFacts facts = Node("1.5.20");
  facts.kernel_version = Fact("5.16.0", "status.nodeInfo.kernelVersion");
  EXPECT_EQ(EvaluateNode(facts, EmbeddedRules()).verdict, NodeVerdict::kIncompatible);
  facts.kernel_version = Fact("6.1.0", "status.nodeInfo.kernelVersion");
  EXPECT_EQ(EvaluateNode(facts, EmbeddedRules()).verdict, NodeVerdict::kUnknown);
  facts.kernel_version = Fact("5.15.0", "status.nodeInfo.kernelVersion");
  facts.toolkit_version = Fact("1.18.0", "label cgpu-guard.io/container-toolkit-version");
  EXPECT_EQ(EvaluateNode(facts, EmbeddedRules()).verdict, NodeVerdict::kUnknown);
  facts.toolkit_version = Fact("1.17.3", "label cgpu-guard.io/container-toolkit-version");
  EXPECT_EQ(EvaluateNode(facts, EmbeddedRules()).verdict, NodeVerdict::kCompatible);
}

TEST(SeedNodeVerdict, IncompatibleBeatsUnknownAndComesFirst) {
  NodeFacts facts = Node("1.5.2");
  facts.driver_version = Fact("535.104.05", "label cgpu-guard.io/nvidia-driver-version");
  facts.toolkit_version = VersionFact{std::nullopt, "", "label x"};  // unknown
  const NodeEvaluation evaluation = EvaluateNode(facts, EmbeddedRules());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kIncompatible);
  ASSERT_NE(evaluation.FirstProblem(), nullptr);
  EXPECT_EQ(evaluation.FirstProblem()->verdict, kNo);
  EXPECT_EQ(evaluation.FirstProblem()->rule, "driver");
}

TEST(SeedNodeVerdict, MissingOrGarbledCgpuVersionIsUnknownAndSaysWhy) {
  NodeFacts facts = Node("1.5.20");
  facts.cgpu_version = VersionFact{std::nullopt, "", "label cgpu-guard.io/cgpu-version"};
  NodeEvaluation evaluation = EvaluateNode(facts, EmbeddedRules());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kUnknown);
  EXPECT_NE(evaluation.FirstProblem()->message.find("label cgpu-guard.io/cgpu-version is not set"),
            std::string::npos);

  facts.cgpu_version = Fact("1.5.x", "label cgpu-guard.io/cgpu-version");
  evaluation = EvaluateNode(facts, EmbeddedRules());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kUnknown);
  EXPECT_NE(evaluation.FirstProblem()->message.find(
                "label cgpu-guard.io/cgpu-version is \"1.5.x\", which is not a cGPU version"),
            std::string::npos)
      << evaluation.FirstProblem()->message;
}

TEST(SeedNodeVerdict, NonCgpuNodeHasNoFindings) {
  NodeFacts facts = Node("1.0.0");
  facts.cgpu_enabled = false;
  const NodeEvaluation evaluation = EvaluateNode(facts, EmbeddedRules());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kNotCgpu);
  EXPECT_TRUE(evaluation.findings.empty());
}

}  // namespace
}  // namespace cgpu
