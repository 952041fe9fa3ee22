// EvaluateNode over a small hand-built RuleTable: how a row's cells, its gaps and a known issue's
// affected range and fix turn into compatible, incompatible and unknown. The seed's own tables
// are tested in tests/rules/; these tests pin the evaluation logic, independent of the data.
#include "core/compatibility.h"

#include <gtest/gtest.h>

#include <string>

namespace cgpu {
namespace {

Version V(const std::string& text) { return Version::Parse(text).value(); }
VersionRange R(const std::string& text) { return VersionRange::Parse(text).value(); }
VersionSet S(const std::string& text) { return VersionSet::Parse(text).value(); }

constexpr RuleVerdict kOk = RuleVerdict::kCompatible;
constexpr RuleVerdict kNo = RuleVerdict::kIncompatible;
constexpr RuleVerdict kUnknown = RuleVerdict::kUnknown;

// Two rows per table, shaped like the seed's: cGPU 2.0 - 2.9 is the newer row, 1.0 - 1.9 the
// older; 1.10 - 1.99 is a gap between them.
RuleTable Table() {
  RuleTable table;
  table.driver = {
      {R("2.0 - 2.9"), {S("100"), S("200")}, {}},
      {R("1.0 - 1.9"), {S("100 <= 100.50")}, {S("200")}},
  };
  table.container_toolkit = {
      {R("2.0 - 2.9"), {S("<= 1.10"), S("1.11 - 1.17")}, {}},
      {R("1.0 - 1.9"), {S("<= 1.10")}, {S(">= 1.11")}},
  };
  table.kernel = {
      {R("2.0 - 2.9"), {S("3.x"), S("4.x"), S("5.x <= 5.15")}, {}},
      {R("1.0 - 1.9"), {S("3.x"), S("4.x")}, {S("5.x")}},
  };
  table.instance_family = {
      {R("2.0 - 2.9"), {"gn7i", "gn8t"}, {}},
      {R("1.0 - 1.9"), {"gn7i"}, {"gn8t"}},
  };
  table.kernel_panic = {R("<= 1.5.7"), V("1.5.10")};
  table.container_os = {R("<= 1.5.18"), V("1.12.6")};
  table.nvml = {R("<= 1.5.2"), {S("100"), S("110 <= 110.20")}, 200};
  table.texts["driver"] = {"driver symptom", "upgrade cGPU"};
  table.texts["kernel"] = {"kernel symptom", "use another kernel"};
  table.texts["kernel-panic"] = {"deadlock", "upgrade cGPU to 1.5.10 or later"};
  table.texts["nvml"] = {"nvml symptom", "upgrade cGPU to the latest version"};
  return table;
}

VersionFact Fact(const std::string& raw, const std::string& source = "label x") {
  return VersionFact{Version::Parse(raw), raw, source};
}

// A cGPU node every table of Table() accepts for cGPU 2.x; the known issues never touch 2.x.
NodeFacts Node(const std::string& cgpu) {
  NodeFacts facts;
  facts.name = "n1";
  facts.cgpu_enabled = true;
  facts.cgpu_version = Fact(cgpu, "label cgpu-guard.io/cgpu-version");
  facts.driver_version = Fact("100.40");
  facts.toolkit_version = Fact("1.10.0");
  facts.kernel_version = Fact("4.19.91");
  facts.instance_type = "ecs.gn7i-c8g1.2xlarge";
  facts.instance_family = "gn7i";
  return facts;
}

Finding FindingFor(const NodeFacts& facts, const std::string& rule,
                   const RuleTable& table = Table()) {
  const NodeEvaluation evaluation = EvaluateNode(facts, table);
  for (const Finding& finding : evaluation.findings) {
    if (finding.rule == rule) return finding;
  }
  ADD_FAILURE() << "no finding for " << rule;
  return {};
}

RuleVerdict Kernel(const std::string& cgpu, const std::string& kernel) {
  NodeFacts facts = Node(cgpu);
  facts.kernel_version = Fact(kernel);
  return FindingFor(facts, "kernel").verdict;
}

RuleVerdict Toolkit(const std::string& cgpu, const std::string& toolkit) {
  NodeFacts facts = Node(cgpu);
  facts.toolkit_version = Fact(toolkit);
  return FindingFor(facts, "container-toolkit").verdict;
}

RuleVerdict Driver(const std::string& cgpu, const std::string& driver) {
  NodeFacts facts = Node(cgpu);
  facts.driver_version = Fact(driver);
  return FindingFor(facts, "driver").verdict;
}

// ---- VersionSet --------------------------------------------------------------------------------

TEST(VersionSetTest, ParsesTheSeedsForms) {
  EXPECT_EQ(S("5.x").ToString(), "5.x");
  EXPECT_EQ(S("5.x <= 5.15").ToString(), "5.x<=5.15");
  EXPECT_EQ(S("5<=5.15").ToString(), "5.x<=5.15");
  EXPECT_EQ(S("470").ToString(), "470.x");
  EXPECT_EQ(S("470 <= 470.161.03").ToString(), "470.x<=470.161.03");
  EXPECT_EQ(S("<= 1.10").ToString(), "<=1.10");
  EXPECT_EQ(S(">= 1.11").ToString(), ">=1.11");
  EXPECT_EQ(S("1.11 - 1.17").ToString(), "1.11-1.17");
  EXPECT_EQ(S("1.11 \xE2\x80\x93 1.17").ToString(), "1.11-1.17");
  EXPECT_EQ(S("5.x <= 5.15").Bound()->ToString(), "5.15");
  EXPECT_FALSE(S("5.x").Bound().has_value());
  EXPECT_FALSE(S("<= 1.10").Bound().has_value());
  EXPECT_TRUE(S("5.x").family.has_value());
  EXPECT_FALSE(S("1.11 - 1.17").family.has_value());
  for (const char* bad : {"", "x", "5.y", "5.x <= 6.1", "5.x <= 5", "5.x <=", "<= 5.x", "5.x - 6",
                          "1.17 - 1.11", "470 < 470.1"}) {
    EXPECT_FALSE(VersionSet::Parse(bad).has_value()) << bad;
  }
}

TEST(VersionSetTest, OnlyABoundInsideAFamilySpeaksOfWhatLiesPastIt) {
  const VersionSet bounded = S("5.x <= 5.15");
  EXPECT_TRUE(bounded.Contains(V("5.0")));
  EXPECT_TRUE(bounded.Contains(V("5.15.167")));
  EXPECT_FALSE(bounded.Contains(V("5.16")));
  EXPECT_TRUE(bounded.PastBound(V("5.16")));
  EXPECT_TRUE(bounded.PastBound(V("5.19.17")));
  EXPECT_FALSE(bounded.PastBound(V("6.1")));  // another family
  EXPECT_FALSE(bounded.PastBound(V("4.19")));
  EXPECT_FALSE(bounded.IsBelow(V("5.16")));
  EXPECT_TRUE(bounded.IsBelow(V("6.1")));

  const VersionSet family = S("4.x");
  EXPECT_TRUE(family.Contains(V("4.19.91")));
  EXPECT_FALSE(family.PastBound(V("4.99")));
  EXPECT_TRUE(family.IsBelow(V("5.0")));
  EXPECT_FALSE(family.IsBelow(V("3.10")));

  const VersionSet range = S("1.11 - 1.17");
  EXPECT_FALSE(range.PastBound(V("1.18")));
  EXPECT_TRUE(range.IsBelow(V("1.18")));
  EXPECT_FALSE(S(">= 1.11").IsBelow(V("9.0")));
  EXPECT_TRUE(S("<= 1.10").IsBelow(V("1.11")));
}

// ---- Version tables: toolkit, kernel, driver ---------------------------------------------------

TEST(CompatibilityTest, BoundInsideAFamilyExcludesTheRestOfTheFamily) {
  EXPECT_EQ(Kernel("2.0", "5.15.0"), kOk);
  EXPECT_EQ(Kernel("2.0", "5.15.200"), kOk);
  EXPECT_EQ(Kernel("2.0", "5.16.0"), kNo);
  EXPECT_EQ(Kernel("2.9", "5.19.17"), kNo);
}

TEST(CompatibilityTest, NewerThanEverythingTheRowNamesIsUnknown) {
  EXPECT_EQ(Kernel("2.0", "6.1.0"), kUnknown);
  EXPECT_EQ(Kernel("2.0", "7.0"), kUnknown);
  EXPECT_EQ(Toolkit("2.0", "1.17.9"), kOk);
  EXPECT_EQ(Toolkit("2.0", "1.18.0"), kUnknown);
  EXPECT_EQ(Driver("2.0", "200.10"), kOk);
  EXPECT_EQ(Driver("2.0", "300.10"), kUnknown);
  // The older row excludes 200 by name; 300 lies past everything it names.
  EXPECT_EQ(Driver("1.0", "200.10"), kNo);
  EXPECT_EQ(Driver("1.0", "300.10"), kUnknown);

  NodeFacts facts = Node("2.0");
  facts.kernel_version = Fact("6.1.0", "status.nodeInfo.kernelVersion");
  EXPECT_EQ(FindingFor(facts, "kernel").message,
            "kernel 6.1.0 is newer than every version the kernel table names for cGPU 2.0-2.9 "
            "(3.x, 4.x, 5.x<=5.15): the source predates it, so its compatibility is not "
            "documented");
  facts.driver_version = Fact("300.10");
  EXPECT_EQ(FindingFor(facts, "driver").message,
            "NVIDIA driver series 300 (driver 300.10) is newer than every series the driver "
            "table names for cGPU 2.0-2.9: the source predates it, so its compatibility is not "
            "documented");
}

TEST(CompatibilityTest, AnOpenEndedExclusionExcludesNewerValues) {
  // "1.11 and later" for the older row: nothing after it escapes.
  EXPECT_EQ(Toolkit("1.0", "1.10.0"), kOk);
  EXPECT_EQ(Toolkit("1.0", "1.11.0"), kNo);
  EXPECT_EQ(Toolkit("1.9", "1.18.0"), kNo);
  EXPECT_EQ(Toolkit("1.9", "9.0"), kNo);
  // "5.x not supported" excludes the family, not the next one.
  EXPECT_EQ(Kernel("1.0", "5.0.0"), kNo);
  EXPECT_EQ(Kernel("1.0", "5.99"), kNo);
  EXPECT_EQ(Kernel("1.0", "6.1"), kUnknown);
}

TEST(CompatibilityTest, UnnamedValuesBetweenOrBelowCellsAreUnknown) {
  EXPECT_EQ(Kernel("2.0", "2.6.32"), kUnknown);
  EXPECT_EQ(Driver("2.0", "150.10"), kUnknown);  // between two named series
  EXPECT_EQ(Driver("2.0", "90.10"), kUnknown);

  NodeFacts facts = Node("2.0");
  facts.driver_version = Fact("150.10");
  EXPECT_EQ(FindingFor(facts, "driver").message,
            "NVIDIA driver series 150 (driver 150.10) is not in the driver table for cGPU 2.0-2.9; "
            "its compatibility is not documented");
}

TEST(CompatibilityTest, DriverBoundsAndExclusionsNameTheCgpuThatHelps) {
  EXPECT_EQ(Driver("1.0", "100.50"), kOk);
  EXPECT_EQ(Driver("1.0", "100.50.1"), kOk);  // the bound matches by prefix
  EXPECT_EQ(Driver("1.0", "100.51"), kNo);

  NodeFacts facts = Node("1.5");
  facts.driver_version = Fact("100.51");
  EXPECT_EQ(FindingFor(facts, "driver").message,
            "cGPU 1.5 does not support NVIDIA driver 100.51: it supports the 100 series only up "
            "to 100.50 (100.51 needs cGPU 2.0-2.9); upgrade cGPU");
  facts.driver_version = Fact("200.10");
  EXPECT_EQ(FindingFor(facts, "driver").message,
            "cGPU 1.5 does not support NVIDIA driver 200.10 (200 series needs cGPU 2.0-2.9); "
            "upgrade cGPU");
}

TEST(CompatibilityTest, ExclusionMessageListsTheRowAndTheCgpuThatHelps) {
  NodeFacts facts = Node("2.0");
  facts.kernel_version = Fact("5.16.0");
  EXPECT_EQ(FindingFor(facts, "kernel").message,
            "cGPU 2.0 does not support kernel 5.16.0 (it supports 3.x, 4.x, 5.x<=5.15; no cGPU "
            "version in the table supports 5.16.0); use another kernel");
  facts = Node("1.0");
  facts.kernel_version = Fact("5.10.0");
  EXPECT_EQ(FindingFor(facts, "kernel").message,
            "cGPU 1.0 does not support kernel 5.10.0 (it supports 3.x, 4.x; 5.10.0 needs cGPU "
            "2.0-2.9); use another kernel");
}

TEST(CompatibilityTest, CgpuVersionInNoRowIsAGap) {
  for (const char* cgpu : {"1.10", "0.9", "3.0"}) {
    EXPECT_EQ(Kernel(cgpu, "4.19.91"), kUnknown) << cgpu;
    EXPECT_EQ(Toolkit(cgpu, "1.10.0"), kUnknown) << cgpu;
    EXPECT_EQ(Driver(cgpu, "100.10"), kUnknown) << cgpu;
  }
  EXPECT_EQ(FindingFor(Node("3.0"), "kernel").message,
            "cGPU 3.0 is in no row of the kernel table (rows: 2.0-2.9, 1.0-1.9); its "
            "compatibility is not documented");
}

TEST(CompatibilityTest, InstanceFamilies) {
  NodeFacts facts = Node("1.0");
  facts.instance_type = "ecs.gn8t.8xlarge";
  facts.instance_family = "gn8t";
  EXPECT_EQ(FindingFor(facts, "instance-family").verdict, kNo);
  facts.instance_family = "gn9x";
  EXPECT_EQ(FindingFor(facts, "instance-family").verdict, kUnknown);
  facts.instance_family = "gn7i";
  EXPECT_EQ(FindingFor(facts, "instance-family").verdict, kOk);
}

// ---- Known issues ------------------------------------------------------------------------------

TEST(CompatibilityTest, KnownIssueRemedyIsNotAnAffectedRange) {
  const auto panic = [](const std::string& cgpu, const RuleTable& table) {
    return FindingFor(Node(cgpu), "kernel-panic", table).verdict;
  };
  const RuleTable table = Table();
  EXPECT_EQ(panic("1.5.7", table), kNo);
  EXPECT_EQ(panic("1.0", table), kNo);
  EXPECT_EQ(panic("1.5.8", table), kUnknown);
  EXPECT_EQ(panic("1.5.9", table), kUnknown);
  EXPECT_EQ(panic("1.5.9.1", table), kUnknown);
  EXPECT_EQ(panic("1.5.10", table), kOk);
  EXPECT_EQ(panic("2.0", table), kOk);

  // Without a named fix, everything past the affected versions is free of the issue.
  RuleTable no_fix = Table();
  no_fix.kernel_panic.fixed_from.reset();
  EXPECT_EQ(panic("1.5.7", no_fix), kNo);
  EXPECT_EQ(panic("1.5.8", no_fix), kOk);

  // A lower bound on the affected versions: below it is not between affected and fixed.
  RuleTable bounded = Table();
  bounded.kernel_panic = {R("1.5.0 - 1.5.7"), V("1.5.10")};
  EXPECT_EQ(panic("1.4.9", bounded), kOk);
  EXPECT_EQ(panic("1.5.0", bounded), kNo);
  EXPECT_EQ(panic("1.5.8", bounded), kUnknown);
}

TEST(CompatibilityTest, NvmlSaysWhatTheRulesKnowNotAReleaseDate) {
  const auto nvml = [](const std::string& cgpu, const std::string& driver) {
    NodeFacts facts = Node(cgpu);
    facts.driver_version = Fact(driver);
    return FindingFor(facts, "nvml");
  };
  EXPECT_EQ(nvml("1.5.2", "100.99").verdict, kOk);  // an unbounded known series
  EXPECT_EQ(nvml("1.5.2", "110.20").verdict, kOk);  // at the last known to work
  EXPECT_EQ(nvml("1.5.2", "110.21").verdict, kNo);  // past it
  EXPECT_EQ(nvml("1.5.2", "200.10").verdict, kNo);  // the first series none of which work
  EXPECT_EQ(nvml("1.5.2", "300.10").verdict, kNo);  // ... and every later one
  EXPECT_EQ(nvml("1.5.2", "150.10").verdict, kUnknown);
  EXPECT_EQ(nvml("1.5.3", "300.10").verdict, kOk);  // not an affected cGPU

  EXPECT_EQ(nvml("1.5.2", "110.21").message,
            "cGPU 1.5.2 with NVIDIA driver 110.21: the driver is newer than 110.20, the newest "
            "110 driver known to work with cGPU <=1.5.2; the source links NVML failures of cGPU "
            "<=1.5.2 (nvidia-smi in pods: \"GPU access blocked by operating system\") to drivers "
            "released after July 2023; upgrade cGPU to the latest version");
  EXPECT_EQ(
      nvml("1.5.2", "200.10")
          .message.rfind(
              "cGPU 1.5.2 with NVIDIA driver 200.10: no driver of the 200 series or a later one "
              "is known to work with cGPU <=1.5.2; the source links",
              0),
      0u)
      << nvml("1.5.2", "200.10").message;
  EXPECT_EQ(nvml("1.5.2", "110.20").message,
            "NVIDIA driver 110.20 is known to work with cGPU <=1.5.2 (the 110 series up to "
            "110.20)");
  EXPECT_EQ(nvml("1.5.2", "100.99").message,
            "NVIDIA driver 100.99 is known to work with cGPU <=1.5.2 (the 100 series)");
  for (const char* driver : {"110.21", "200.10", "150.10"}) {
    EXPECT_EQ(nvml("1.5.2", driver).message.find("(released after July 2023)"), std::string::npos)
        << driver;
  }

  NodeFacts missing = Node("1.5.2");
  missing.driver_version = VersionFact{std::nullopt, "", "label d"};
  EXPECT_EQ(FindingFor(missing, "nvml").verdict, kUnknown);
}

TEST(CompatibilityTest, ContainerOsNeedsTheFixingAiInstaller) {
  NodeFacts facts = Node("1.5.18");
  EXPECT_EQ(FindingFor(facts, "container-os").verdict, kOk);  // not a container-optimized image
  facts.container_optimized_os = true;
  EXPECT_EQ(FindingFor(facts, "container-os").verdict, kNo);
  facts.ai_installer_version = Fact("1.12.5", "--ai-installer-version");
  EXPECT_EQ(FindingFor(facts, "container-os").verdict, kNo);
  facts.ai_installer_version = Fact("1.12.6", "--ai-installer-version");
  EXPECT_EQ(FindingFor(facts, "container-os").verdict, kOk);
  facts.ai_installer_version = Fact("1.12.x", "--ai-installer-version");
  EXPECT_EQ(FindingFor(facts, "container-os").verdict, kUnknown);
  NodeFacts fixed = Node("1.5.19");
  fixed.container_optimized_os = true;
  EXPECT_EQ(FindingFor(fixed, "container-os").verdict, kOk);
}

// ---- The node ----------------------------------------------------------------------------------

TEST(CompatibilityTest, NodeVerdictIsItsWorstFindingAndComesFirst) {
  NodeEvaluation evaluation = EvaluateNode(Node("2.0"), Table());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kCompatible);
  EXPECT_EQ(evaluation.findings.size(), 7u);
  EXPECT_EQ(evaluation.FirstProblem(), nullptr);

  // Unknown only: the node is unknown, not incompatible.
  NodeFacts facts = Node("2.0");
  facts.kernel_version = Fact("6.1.0");
  facts.toolkit_version = Fact("1.18.0");
  evaluation = EvaluateNode(facts, Table());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kUnknown);
  ASSERT_NE(evaluation.FirstProblem(), nullptr);
  EXPECT_EQ(evaluation.FirstProblem()->rule, "container-toolkit");  // rule order within a verdict

  // One incompatible finding outweighs the unknown ones and comes first.
  facts.driver_version = Fact("150.10");  // unknown
  facts.kernel_version = Fact("5.16.0");  // incompatible
  evaluation = EvaluateNode(facts, Table());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kIncompatible);
  EXPECT_EQ(evaluation.FirstProblem()->rule, "kernel");
  EXPECT_EQ(evaluation.findings[1].verdict, kUnknown);
  EXPECT_EQ(evaluation.findings[1].rule, "driver");
  EXPECT_EQ(evaluation.findings.back().verdict, kOk);
}

TEST(CompatibilityTest, KernelPanicGapAloneLeavesTheNodeUnknown) {
  // cGPU 1.5.8 lies in the older rows, which accept the node's facts: only the issue speaks.
  const NodeEvaluation evaluation = EvaluateNode(Node("1.5.8"), Table());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kUnknown);
  ASSERT_NE(evaluation.FirstProblem(), nullptr);
  EXPECT_EQ(evaluation.FirstProblem()->rule, "kernel-panic");
  EXPECT_EQ(evaluation.findings[1].verdict, kOk);
  EXPECT_EQ(EvaluateNode(Node("1.5.7"), Table()).verdict, NodeVerdict::kIncompatible);
  EXPECT_EQ(EvaluateNode(Node("1.5.10"), Table()).verdict, NodeVerdict::kCompatible);
}

TEST(CompatibilityTest, MissingCgpuVersionMakesEveryRuleUnknown) {
  NodeFacts facts = Node("2.0");
  facts.cgpu_version = VersionFact{std::nullopt, "", "label cgpu-guard.io/cgpu-version"};
  NodeEvaluation evaluation = EvaluateNode(facts, Table());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kUnknown);
  ASSERT_EQ(evaluation.findings.size(), 7u);
  for (const Finding& finding : evaluation.findings) {
    if (finding.rule == "container-os") {
      EXPECT_EQ(finding.verdict, kOk) << "not a container-optimized image";
    } else {
      EXPECT_EQ(finding.verdict, kUnknown) << finding.rule;
      EXPECT_EQ(finding.message,
                "cGPU version unknown: label cgpu-guard.io/cgpu-version is not set");
    }
  }
}

TEST(CompatibilityTest, NonCgpuNodeHasNoFindings) {
  NodeFacts facts = Node("1.0");
  facts.cgpu_enabled = false;
  const NodeEvaluation evaluation = EvaluateNode(facts, Table());
  EXPECT_EQ(evaluation.verdict, NodeVerdict::kNotCgpu);
  EXPECT_TRUE(evaluation.findings.empty());
  EXPECT_EQ(evaluation.FirstProblem(), nullptr);
}

}  // namespace
}  // namespace cgpu
