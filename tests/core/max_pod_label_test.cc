// The ack.node.gpu.max-pod advice: ACK's GPU-sharing scheduler counts pods per GPU only on nodes
// carrying the label, so `check` advises setting it where it is missing, unreadable or above the
// limit cgpu-guard enforces.
#include "core/max_pod_label.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

constexpr char kLabelFix20[] = "kubectl label node gpu-a ack.node.gpu.max-pod=20 --overwrite";

TEST(MaxPodLabelTest, MissingLabelIsAdvised) {
  const MaxPodLabelAdvice advice = AdviseMaxPodLabel(std::nullopt, 20, "gpu-a");
  EXPECT_TRUE(advice.due());
  EXPECT_EQ(advice.problem, MaxPodLabelProblem::kMissing);
  EXPECT_EQ(ToString(advice.problem), "missing");
  EXPECT_EQ(advice.fix, kLabelFix20);
  EXPECT_NE(advice.message.find("no ack.node.gpu.max-pod label"), std::string::npos)
      << advice.message;
  EXPECT_NE(advice.message.find("does not count pods per GPU"), std::string::npos)
      << advice.message;
}

TEST(MaxPodLabelTest, InvalidValuesAreAdvised) {
  for (const char* value : {"", "0", "abc", "-5", "+5", " 5", "10x", "10000", "2.5"}) {
    SCOPED_TRACE(value);
    const MaxPodLabelAdvice advice = AdviseMaxPodLabel(std::string(value), 20, "gpu-a");
    EXPECT_EQ(advice.problem, MaxPodLabelProblem::kInvalid);
    EXPECT_EQ(ToString(advice.problem), "invalid");
    EXPECT_EQ(advice.fix, kLabelFix20);
    EXPECT_NE(advice.message.find("ack.node.gpu.max-pod=\"" + std::string(value) +
                                  "\" is not a positive whole number"),
              std::string::npos)
        << advice.message;
  }
}

TEST(MaxPodLabelTest, AboveTheLimitIsAdvised) {
  const MaxPodLabelAdvice advice = AdviseMaxPodLabel(std::string("21"), 20, "gpu-a");
  EXPECT_EQ(advice.problem, MaxPodLabelProblem::kAboveLimit);
  EXPECT_EQ(ToString(advice.problem), "above-limit");
  EXPECT_EQ(advice.fix, kLabelFix20);
  EXPECT_NE(advice.message.find("ack.node.gpu.max-pod=21 is above the limit of 20"),
            std::string::npos)
      << advice.message;
}

TEST(MaxPodLabelTest, AtOrBelowTheLimitIsFine) {
  for (const char* value : {"20", "0020", "19", "1"}) {
    SCOPED_TRACE(value);
    const MaxPodLabelAdvice advice = AdviseMaxPodLabel(std::string(value), 20, "gpu-a");
    EXPECT_FALSE(advice.due());
    EXPECT_EQ(advice.problem, MaxPodLabelProblem::kNone);
    EXPECT_EQ(advice.message, "");
    EXPECT_EQ(advice.fix, "");
  }
}

// A lower configured limit (--max-pods-per-gpu 10) is what the label must not exceed, and what
// the fix sets.
TEST(MaxPodLabelTest, ConfiguredLimitIsTheBound) {
  EXPECT_FALSE(AdviseMaxPodLabel(std::string("10"), 10, "n").due());
  EXPECT_FALSE(AdviseMaxPodLabel(std::string("8"), 10, "n").due());
  const MaxPodLabelAdvice above = AdviseMaxPodLabel(std::string("20"), 10, "n");
  EXPECT_EQ(above.problem, MaxPodLabelProblem::kAboveLimit);
  EXPECT_EQ(above.fix, "kubectl label node n ack.node.gpu.max-pod=10 --overwrite");
  EXPECT_EQ(AdviseMaxPodLabel(std::nullopt, 10, "n").fix,
            "kubectl label node n ack.node.gpu.max-pod=10 --overwrite");
}

TEST(MaxPodLabelTest, ConfiguredKeyIsNamed) {
  const MaxPodLabelAdvice advice =
      AdviseMaxPodLabel(std::nullopt, 20, "gpu-a", "example.com/max-pod");
  EXPECT_EQ(advice.fix, "kubectl label node gpu-a example.com/max-pod=20 --overwrite");
  EXPECT_NE(advice.message.find("no example.com/max-pod label"), std::string::npos);
}

TEST(MaxPodLabelTest, ParseMaxPodLabel) {
  EXPECT_EQ(ParseMaxPodLabel("10"), 10);
  EXPECT_EQ(ParseMaxPodLabel("0020"), 20);
  EXPECT_EQ(ParseMaxPodLabel("9999"), 9999);
  EXPECT_EQ(ParseMaxPodLabel("0"), std::nullopt);
  EXPECT_EQ(ParseMaxPodLabel(""), std::nullopt);
  EXPECT_EQ(ParseMaxPodLabel("10000"), std::nullopt);
  EXPECT_EQ(ParseMaxPodLabel("+5"), std::nullopt);
  EXPECT_EQ(ParseMaxPodLabel("5 "), std::nullopt);
}

}  // namespace
}  // namespace cgpu

namespace cgpu {
namespace {

TEST(MaxPodLabelToWriteTest, WritesTheLimitOnlyWhereTheAdviceIsDue) {
  EXPECT_EQ(MaxPodLabelToWrite(std::nullopt, 20), "20");
  EXPECT_EQ(MaxPodLabelToWrite(std::string("x"), 20), "20");
  EXPECT_EQ(MaxPodLabelToWrite(std::string("21"), 20), "20");
  EXPECT_EQ(MaxPodLabelToWrite(std::string("20"), 20), std::nullopt);
  EXPECT_EQ(MaxPodLabelToWrite(std::string("4"), 20), std::nullopt);  // the operator's, kept
  EXPECT_EQ(MaxPodLabelToWrite(std::nullopt, 0), std::nullopt);       // not asked
}

}  // namespace
}  // namespace cgpu
