#include "shell/log.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

TEST(DecisionLogTest, DecidedRequestLineHasEveryField) {
  ReviewOutcome outcome;
  AdmissionRequest request;
  request.uid = "u-1";
  request.resource.resource = "pods";
  request.sub_resource = "binding";
  request.operation = Operation::kCreate;
  request.namespace_name = "ml";
  request.name = "trainer-0";
  outcome.request = request;
  outcome.decision = Deny("pods-per-gpu", "GPU 0 is full");
  outcome.decision.warnings = {"first", "second \"quoted\""};
  const std::string text = FormatDecisionLine(outcome, std::chrono::microseconds(42));
  ASSERT_EQ(text.back(), '\n');
  ASSERT_EQ(text.find('\n'), text.size() - 1);  // one line
  nlohmann::ordered_json line = nlohmann::ordered_json::parse(text);
  EXPECT_EQ(line.begin().key(), "ts");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["msg"], "decision");
  EXPECT_EQ(line["uid"], "u-1");
  EXPECT_EQ(line["resource"], "pods/binding");
  EXPECT_EQ(line["operation"], "CREATE");
  EXPECT_EQ(line["namespace"], "ml");
  EXPECT_EQ(line["name"], "trainer-0");
  EXPECT_EQ(line["verdict"], "denied");
  EXPECT_EQ(line["reason"], "pods-per-gpu");
  EXPECT_EQ(line["message"], "GPU 0 is full");
  EXPECT_EQ(line["latencyMicros"], 42);
  EXPECT_EQ(line["httpStatus"], 200);
  EXPECT_EQ(line["warnings"], nlohmann::ordered_json::array({"first", "second \"quoted\""}));
  EXPECT_FALSE(line.contains("dryRun"));
}

// What a request echoes is cut, marked, on a UTF-8 boundary: a 1 MB uid makes a short line.
TEST(DecisionLogTest, EchoedFieldsAndMessagesAreBounded) {
  ReviewOutcome outcome;
  AdmissionRequest request;
  request.uid = std::string(1 << 20, 'u');
  request.resource.resource = "pods";
  request.name = std::string(255, 'n') + "\xc3\xa9" + std::string(100, 'n');  // an é across 256
  outcome.request = request;
  outcome.decision = Deny("pods-per-gpu", std::string(5000, 'm'));
  outcome.decision.warnings = {std::string(3000, 'w')};
  const std::string text = FormatDecisionLine(outcome, std::chrono::microseconds(1));
  EXPECT_LT(text.size(), 4096u);
  nlohmann::ordered_json line = nlohmann::ordered_json::parse(text);
  EXPECT_EQ(line["uid"],
            std::string(256, 'u') + "...[" + std::to_string((1 << 20) - 256) + " more bytes]");
  EXPECT_EQ(line["name"], std::string(255, 'n') + "...[102 more bytes]");
  EXPECT_EQ(line["message"].get<std::string>().substr(1024), "...[3976 more bytes]");
  EXPECT_EQ(line["warnings"][0].get<std::string>().substr(1024), "...[1976 more bytes]");
  EXPECT_EQ(line["resource"], "pods");  // short values are left alone
}

TEST(DecisionLogTest, BadRequestLineNamesTheReason) {
  ReviewOutcome outcome;
  outcome.http_status = 415;
  outcome.bad_request_reason = "unsupported-media-type";
  nlohmann::ordered_json line =
      nlohmann::ordered_json::parse(FormatDecisionLine(outcome, std::chrono::microseconds(3)));
  EXPECT_EQ(line["verdict"], "bad-request");
  EXPECT_EQ(line["reason"], "unsupported-media-type");
  EXPECT_EQ(line["httpStatus"], 415);
  EXPECT_FALSE(line.contains("uid"));
}

TEST(DecisionLogTest, NamesFromRequestsCannotBreakTheLine) {
  ReviewOutcome outcome;
  AdmissionRequest request;
  request.uid = "u\"},{\"evil\":1";
  request.name = "tab\there\nnew line\\ \x01 caf\xc3\xa9";
  request.resource.resource = "pods";
  outcome.request = request;
  const std::string text = FormatDecisionLine(outcome, std::chrono::microseconds(1));
  EXPECT_EQ(text.find('\n'), text.size() - 1);
  nlohmann::json line = nlohmann::json::parse(text);
  EXPECT_EQ(line["uid"], request.uid);
  EXPECT_EQ(line["name"], request.name);
  EXPECT_FALSE(line.contains("evil"));
}

}  // namespace
}  // namespace cgpu
