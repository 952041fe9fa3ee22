// HandleReview without sockets: each bad input's HTTP status and exact message, and the
// policy's answer encoded with the request's uid and apiVersion.
#include "shell/review_handler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "support/fixtures.h"

namespace cgpu {
namespace {

using nlohmann::json;

const std::string kPodCreate =
    testing::ReadFixture("upstream/admissionreview-v1-pod-create-minimal.json");

ReviewOutcome Call(std::string_view method, std::string_view content_type, std::string_view body,
                   const Policy& policy = AllowEverything) {
  return HandleReview(ReviewCall{method, content_type, body}, policy);
}

TEST(ReviewHandlerTest, AllowsAWellFormedReview) {
  ReviewOutcome outcome = Call("POST", "application/json", kPodCreate);
  EXPECT_EQ(outcome.http_status, 200);
  ASSERT_TRUE(outcome.request.has_value());
  EXPECT_EQ(outcome.decision.verdict, Verdict::kAllowed);
  json body = json::parse(outcome.body);
  EXPECT_EQ(body["apiVersion"], "admission.k8s.io/v1");
  EXPECT_EQ(body["kind"], "AdmissionReview");
  EXPECT_EQ(body["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
  EXPECT_EQ(body["response"]["allowed"], true);
}

TEST(ReviewHandlerTest, PolicyDenialIsEncoded) {
  Policy deny = [](const ReviewFacts& facts) {
    return Deny("test", "no pods in " + facts.request.namespace_name);
  };
  std::string body = json::parse(kPodCreate).dump();
  ReviewOutcome outcome = Call("POST", "application/json; charset=utf-8", body, deny);
  EXPECT_EQ(outcome.http_status, 200);
  json response = json::parse(outcome.body)["response"];
  EXPECT_EQ(response["allowed"], false);
  EXPECT_EQ(response["status"]["code"], 403);
  EXPECT_EQ(response["status"]["message"], "no pods in ");
}

TEST(ReviewHandlerTest, ThrowingPolicyBecomesHttp500) {
  Policy broken = [](const ReviewFacts&) -> Decision { throw std::runtime_error("boom"); };
  ReviewOutcome outcome = Call("POST", "application/json", kPodCreate, broken);
  EXPECT_EQ(outcome.http_status, 500);
  EXPECT_EQ(outcome.decision.verdict, Verdict::kErrored);
  EXPECT_EQ(json::parse(outcome.body)["message"], "internal error while deciding: boom");
}

TEST(ReviewHandlerTest, ErroredDecisionKeepsItsStatus) {
  Policy unavailable = [](const ReviewFacts&) {
    return Errored("cache-not-synced", "cluster state is not loaded yet", 503);
  };
  ReviewOutcome outcome = Call("POST", "application/json", kPodCreate, unavailable);
  EXPECT_EQ(outcome.http_status, 503);
  EXPECT_EQ(json::parse(outcome.body)["reason"], "ServiceUnavailable");
}

// An object that is not what the request names is the client's fault: 400, not 500.
TEST(ReviewHandlerTest, AnUnreadableObjectIsABadRequest) {
  Policy unreadable = [](const ReviewFacts&) {
    return Errored("bad-object", "cannot read the pod: request.object is missing or not an object",
                   400);
  };
  ReviewOutcome outcome = Call("POST", "application/json", kPodCreate, unreadable);
  EXPECT_EQ(outcome.http_status, 400);
  const json status = json::parse(outcome.body);
  EXPECT_EQ(status["code"], 400);
  EXPECT_EQ(status["reason"], "BadRequest");
  EXPECT_EQ(status["message"], "cannot read the pod: request.object is missing or not an object");
  // A code outside 4xx and 5xx is no HTTP status to answer with: 500.
  Policy odd = [](const ReviewFacts&) { return Errored("odd", "odd", 302); };
  EXPECT_EQ(Call("POST", "application/json", kPodCreate, odd).http_status, 500);
}

struct RefusalCase {
  const char* label;
  const char* method;
  const char* content_type;
  std::string body;
  int status;
  const char* reason;
  const char* message;
};

void PrintTo(const RefusalCase& c, std::ostream* out) { *out << c.label; }

class RefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(RefusalTest, AnswersWithStatusAndMessage) {
  const RefusalCase& c = GetParam();
  ReviewOutcome outcome = Call(c.method, c.content_type, c.body);
  EXPECT_EQ(outcome.http_status, c.status);
  EXPECT_EQ(outcome.bad_request_reason, c.reason);
  EXPECT_FALSE(outcome.request.has_value());
  json body = json::parse(outcome.body);
  EXPECT_EQ(body["kind"], "Status");
  EXPECT_EQ(body["code"], c.status);
  EXPECT_EQ(body["message"], c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Handler, RefusalTest,
    ::testing::Values(
        RefusalCase{"get", "GET", "application/json", "", 405, "method-not-allowed",
                    "method GET is not allowed; POST an AdmissionReview"},
        RefusalCase{"put", "PUT", "application/json", kPodCreate, 405, "method-not-allowed",
                    "method PUT is not allowed; POST an AdmissionReview"},
        RefusalCase{"text_plain", "POST", "text/plain", kPodCreate, 415, "unsupported-media-type",
                    "Content-Type \"text/plain\" is not supported; send application/json"},
        RefusalCase{"no_content_type", "POST", "", kPodCreate, 415, "unsupported-media-type",
                    "Content-Type \"\" is not supported; send application/json"},
        RefusalCase{"empty_body", "POST", "application/json", "", 400, "empty-body",
                    "request body is empty; expected an AdmissionReview"},
        RefusalCase{"null_body", "POST", "application/json", "null", 400, "not-a-review",
                    "request body must be a JSON object (an AdmissionReview), got null"},
        RefusalCase{"no_request", "POST", "application/json",
                    R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"})", 400,
                    "missing-request", "AdmissionReview has no request"}),
    [](const ::testing::TestParamInfo<RefusalCase>& info) { return info.param.label; });

// Whatever the body, the answer is a 400 whose metav1.Status is valid JSON, even when the parser's
// message quotes the offending bytes (invalid UTF-8 is replaced, control characters escaped).
TEST(ReviewHandlerTest, HostileBodiesGetAValidStatusBody) {
  std::string truncated = kPodCreate.substr(0, kPodCreate.size() / 2);
  for (const std::string& body :
       {truncated, std::string("{\"apiVersion\":\"\xff\xfe\x01\"}"), std::string("\x00\x01\x02", 3),
        std::string("{\"a\":\"\xed\xa0\x80\"}"), std::string(100000, '['),
        std::string("{\"apiVersion\":1e999}"), std::string("nul")}) {
    ReviewOutcome outcome = Call("POST", "application/json", body);
    EXPECT_EQ(outcome.http_status, 400) << body.substr(0, 40);
    EXPECT_FALSE(outcome.request.has_value());
    json status = json::parse(outcome.body);  // throws, failing the test, if not valid JSON
    EXPECT_EQ(status["code"], 400);
    EXPECT_FALSE(outcome.bad_request_reason.empty());
  }
}

TEST(ContentTypeTest, Forms) {
  EXPECT_TRUE(IsJsonContentType("application/json"));
  EXPECT_TRUE(IsJsonContentType("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(IsJsonContentType("application/json ;charset=utf-8"));
  EXPECT_FALSE(IsJsonContentType("application/jsonx"));
  EXPECT_FALSE(IsJsonContentType("application/yaml"));
}

}  // namespace
}  // namespace cgpu
