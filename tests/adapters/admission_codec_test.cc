#include "adapters/admission_codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/fixtures.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::ReadFixture;

const DecodedReview& Ok(const ReviewDecodeResult& result) {
  if (auto* error = std::get_if<ReviewDecodeError>(&result)) {
    ADD_FAILURE() << "decode failed: " << error->message;
    static DecodedReview empty;
    return empty;
  }
  return std::get<DecodedReview>(result);
}

ReviewDecodeError Err(const ReviewDecodeResult& result) {
  if (const auto* error = std::get_if<ReviewDecodeError>(&result)) return *error;
  ADD_FAILURE() << "decode succeeded but an error was expected";
  return {};
}

// A small valid review to mutate in malformed-input tests.
json MinimalReview() {
  return json::parse(R"({
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE", "namespace": "ml", "name": "p"}})");
}

TEST(DecodeFixtureTest, MinimalPodCreate) {
  auto result =
      DecodeAdmissionReview(ReadFixture("upstream/admissionreview-v1-pod-create-minimal.json"));
  const DecodedReview& review = Ok(result);
  EXPECT_EQ(review.api_version, ReviewApiVersion::kV1);
  EXPECT_EQ(review.request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
  EXPECT_EQ(review.request.kind.kind, "Pod");
  EXPECT_EQ(review.request.kind.version, "v1");
  EXPECT_EQ(review.request.ResourcePath(), "pods");
  EXPECT_EQ(review.request.operation, Operation::kCreate);
  EXPECT_EQ(review.request.user_name, "admin");
  EXPECT_FALSE(review.request.dry_run);
  EXPECT_EQ(review.object["metadata"]["name"], "flexvolume-test");
  EXPECT_TRUE(review.old_object.is_null());
}

TEST(DecodeFixtureTest, GenerateNameCreateHasNoName) {
  auto result = DecodeAdmissionReview(
      ReadFixture("upstream/admissionreview-v1-pod-create-replicaset-controller.json"));
  const DecodedReview& review = Ok(result);
  EXPECT_EQ(review.request.name, "");
  EXPECT_EQ(review.request.namespace_name, "test-connaisseur");
  EXPECT_EQ(review.request.user_name, "system:serviceaccount:kube-system:replicaset-controller");
}

TEST(DecodeFixtureTest, EphemeralContainersPodDecodes) {
  auto result = DecodeAdmissionReview(
      ReadFixture("upstream/admissionreview-v1-pod-create-ephemeralcontainers.json"));
  EXPECT_EQ(Ok(result).request.kind.kind, "Pod");
}

TEST(DecodeFixtureTest, ReplicaSetUpdateKeepsBothObjects) {
  auto result = DecodeAdmissionReview(
      ReadFixture("upstream/admissionreview-v1-replicaset-update-with-oldobject.json"));
  const DecodedReview& review = Ok(result);
  EXPECT_EQ(review.request.operation, Operation::kUpdate);
  EXPECT_EQ(review.request.ResourcePath(), "replicasets");
  EXPECT_TRUE(review.object.is_object());
  EXPECT_TRUE(review.old_object.is_object());
}

TEST(DecodeFixtureTest, EnvelopeOfMalformedObjectStillDecodes) {
  // The object is not a Pod; judging it is the policy's business, not the codec's.
  auto result = DecodeAdmissionReview(
      ReadFixture("upstream/admissionreview-v1-pod-create-malformed-object.json"));
  const DecodedReview& review = Ok(result);
  EXPECT_EQ(review.object["msg"], "Expecting a Pod?");
}

TEST(DecodeFixtureTest, AllFieldsV1beta1WithARealOperation) {
  json document =
      json::parse(ReadFixture("upstream/admissionreview-v1beta1-roundtrip-allfields.json"));
  document["request"]["operation"] = "UPDATE";
  auto result = DecodeAdmissionReview(document.dump());
  const DecodedReview& review = Ok(result);
  EXPECT_EQ(review.api_version, ReviewApiVersion::kV1beta1);
  EXPECT_EQ(review.request.uid, "uidValue");
  EXPECT_EQ(review.request.kind.group, "groupValue");
  EXPECT_EQ(review.request.resource.resource, "resourceValue");
  EXPECT_EQ(review.request.sub_resource, "subResourceValue");
  EXPECT_EQ(review.request.name, "nameValue");
  EXPECT_EQ(review.request.namespace_name, "namespaceValue");
  EXPECT_TRUE(review.request.dry_run);
  EXPECT_EQ(review.request.user_name, "usernameValue");
}

TEST(DecodeFixtureTest, AllFieldsPlaceholderOperationIsRefused) {
  auto error = Err(
      DecodeAdmissionReview(ReadFixture("upstream/admissionreview-v1-roundtrip-allfields.json")));
  EXPECT_EQ(error.reason, "wrong-value");
  EXPECT_EQ(error.message,
            "request.operation \"operationValue\" is not one of CREATE, UPDATE, DELETE, CONNECT");
}

TEST(DecodeFixtureTest, RequestWithOnlyOperationNamesTheMissingUid) {
  for (const char* name : {"upstream/admissionreview-v1-create-request-missing-fields.json",
                           "upstream/admissionreview-v1-update-request-missing-fields.json"}) {
    auto error = Err(DecodeAdmissionReview(ReadFixture(name)));
    EXPECT_EQ(error.reason, "missing-field") << name;
    EXPECT_EQ(error.message, "request.uid is missing or empty") << name;
  }
}

TEST(DecodeFixtureTest, NullBody) {
  auto error = Err(DecodeAdmissionReview(ReadFixture("upstream/admissionreview-null-body.json")));
  EXPECT_EQ(error.reason, "not-a-review");
  EXPECT_EQ(error.message, "request body must be a JSON object (an AdmissionReview), got null");
}

TEST(DecodeFixtureTest, BareAdmissionRequestIsNotAReview) {
  auto error = Err(DecodeAdmissionReview(
      ReadFixture("upstream/admissionrequest-v1-pod-create-full-object.json")));
  EXPECT_EQ(error.reason, "missing-field");
  EXPECT_EQ(error.message, "apiVersion is missing or empty");
}

TEST(DecodeFixtureTest, DeleteWithOldObjectWrappedInAReview) {
  json review = {
      {"apiVersion", "admission.k8s.io/v1"},
      {"kind", "AdmissionReview"},
      {"request",
       json::parse(ReadFixture("upstream/admissionrequest-v1-pod-delete-with-oldobject.json"))}};
  const DecodedReview& decoded = Ok(DecodeAdmissionReview(review.dump()));
  EXPECT_EQ(decoded.request.operation, Operation::kDelete);
  EXPECT_TRUE(decoded.object.is_null());
  EXPECT_TRUE(decoded.old_object.is_object());
}

struct MalformedCase {
  const char* label;
  std::string body;
  const char* reason;
  const char* message;  // exact, or a prefix when ending in "..."
};

void PrintTo(const MalformedCase& c, std::ostream* out) { *out << c.label; }

std::string Mutated(const std::function<void(json&)>& change) {
  json review = MinimalReview();
  change(review);
  return review.dump();
}

class MalformedReviewTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedReviewTest, GivesPreciseError) {
  const MalformedCase& c = GetParam();
  ReviewDecodeError error = Err(DecodeAdmissionReview(c.body));
  EXPECT_EQ(error.reason, c.reason);
  std::string expected = c.message;
  if (expected.size() > 3 && expected.substr(expected.size() - 3) == "...") {
    expected.resize(expected.size() - 3);
    EXPECT_EQ(error.message.substr(0, expected.size()), expected) << error.message;
  } else {
    EXPECT_EQ(error.message, expected);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Codec, MalformedReviewTest,
    ::testing::Values(
        MalformedCase{"empty", "", "empty-body",
                      "request body is empty; expected an AdmissionReview"},
        MalformedCase{"open-brace", "{", "invalid-json", "request body is not valid JSON: ..."},
        MalformedCase{"truncated", MinimalReview().dump().substr(0, 80), "invalid-json",
                      "request body is not valid JSON: ..."},
        MalformedCase{"non-utf8", "{\"apiVersion\":\"admission.k8s.io/v1\xff\"}", "invalid-json",
                      "request body is not valid JSON: ..."},
        MalformedCase{"deep", std::string(100000, '[') + std::string(100000, ']'), "too-deep",
                      "request body nests JSON deeper than 128 levels"},
        MalformedCase{"array", "[]", "not-a-review",
                      "request body must be a JSON object (an AdmissionReview), got array"},
        MalformedCase{"v2", Mutated([](json& r) { r["apiVersion"] = "admission.k8s.io/v2"; }),
                      "unsupported-api-version",
                      "apiVersion \"admission.k8s.io/v2\" is not supported; send "
                      "admission.k8s.io/v1 or admission.k8s.io/v1beta1"},
        MalformedCase{"api-version-number", Mutated([](json& r) { r["apiVersion"] = 1; }),
                      "wrong-type", "apiVersion must be a string, got number"},
        MalformedCase{"kind", Mutated([](json& r) { r["kind"] = "Pod"; }), "wrong-kind",
                      "kind must be AdmissionReview, got \"Pod\""},
        MalformedCase{"no-request", Mutated([](json& r) { r.erase("request"); }), "missing-request",
                      "AdmissionReview has no request"},
        MalformedCase{"null-request", Mutated([](json& r) { r["request"] = nullptr; }),
                      "missing-request", "AdmissionReview has no request"},
        MalformedCase{"string-request", Mutated([](json& r) { r["request"] = "x"; }), "wrong-type",
                      "request must be an object, got string"},
        MalformedCase{"uid-number", Mutated([](json& r) { r["request"]["uid"] = 42; }),
                      "wrong-type", "request.uid must be a string, got number"},
        MalformedCase{"no-kind", Mutated([](json& r) { r["request"].erase("kind"); }),
                      "missing-field", "request.kind is missing"},
        MalformedCase{"kind-string", Mutated([](json& r) { r["request"]["kind"] = "Pod"; }),
                      "wrong-type", "request.kind must be an object, got string"},
        MalformedCase{"no-resource-name",
                      Mutated([](json& r) { r["request"]["resource"].erase("resource"); }),
                      "missing-field", "request.resource.resource is missing or empty"},
        MalformedCase{"no-operation", Mutated([](json& r) { r["request"].erase("operation"); }),
                      "missing-field", "request.operation is missing or empty"},
        MalformedCase{"lower-operation",
                      Mutated([](json& r) { r["request"]["operation"] = "create"; }), "wrong-value",
                      "request.operation \"create\" is not one of CREATE, UPDATE, DELETE, CONNECT"},
        MalformedCase{"dry-run-string", Mutated([](json& r) { r["request"]["dryRun"] = "true"; }),
                      "wrong-type", "request.dryRun must be a boolean, got string"},
        MalformedCase{"user-info-array",
                      Mutated([](json& r) { r["request"]["userInfo"] = json::array(); }),
                      "wrong-type", "request.userInfo must be an object, got array"},
        MalformedCase{"name-number", Mutated([](json& r) { r["request"]["name"] = 7; }),
                      "wrong-type", "request.name must be a string, got number"}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) {
      std::string name = info.param.label;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

TEST(DecodeTest, NullOptionalFieldsAreTreatedAsAbsent) {
  std::string body = Mutated([](json& r) {
    r["request"]["name"] = nullptr;
    r["request"]["dryRun"] = nullptr;
    r["request"]["userInfo"] = nullptr;
    r["request"]["object"] = nullptr;
  });
  const DecodedReview& review = Ok(DecodeAdmissionReview(body));
  EXPECT_EQ(review.request.name, "");
  EXPECT_FALSE(review.request.dry_run);
}

TEST(DecodeTest, DuplicateKeysTakeTheLastValue) {
  std::string body = MinimalReview().dump();
  body.insert(body.find("\"uid\""), "\"uid\":\"first\",");
  // nlohmann keeps the last occurrence, like Go's encoding/json that the API server uses.
  const DecodedReview& review = Ok(DecodeAdmissionReview(body));
  EXPECT_EQ(review.request.uid, "u-1");
}

TEST(DecodeTest, BracketsInsideStringsDoNotCountAsNesting) {
  std::string body = Mutated([](json& r) { r["request"]["name"] = std::string(500, '['); });
  EXPECT_EQ(Ok(DecodeAdmissionReview(body)).request.name, std::string(500, '['));
}

TEST(EncodeTest, AllowEchoesUidAndApiVersion) {
  json response = json::parse(EncodeAdmissionResponse(ReviewApiVersion::kV1, "u-1", Allow("x")));
  EXPECT_EQ(response, json::parse(R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                                      "response":{"uid":"u-1","allowed":true}})"));
}

TEST(EncodeTest, V1beta1IsEchoed) {
  json response =
      json::parse(EncodeAdmissionResponse(ReviewApiVersion::kV1beta1, "u-2", Allow("x")));
  EXPECT_EQ(response["apiVersion"], "admission.k8s.io/v1beta1");
  EXPECT_EQ(response["response"]["uid"], "u-2");
}

TEST(EncodeTest, DenialCarriesStatusAndNoPatch) {
  Decision decision = Deny("pods-per-gpu", "GPU 1 of node n1 already runs 20 pods");
  decision.warnings = {"first warning"};
  json response = json::parse(EncodeAdmissionResponse(ReviewApiVersion::kV1, "u-3", decision));
  EXPECT_EQ(response["response"], json::parse(R"({"uid":"u-3","allowed":false,
                            "status":{"code":403,"reason":"Forbidden",
                                      "message":"GPU 1 of node n1 already runs 20 pods"},
                            "warnings":["first warning"]})"));
}

TEST(EncodeTest, StatusErrorIsAMetaV1Status) {
  json status = json::parse(EncodeStatusError(413, "too big"));
  EXPECT_EQ(status, json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},
                                    "status":"Failure","message":"too big",
                                    "reason":"RequestEntityTooLarge","code":413})"));
}

TEST(FitWarningsTest, CutsEachWarningAt256Runes) {
  std::string accented;
  for (int i = 0; i < 300; ++i) accented += "\xC3\xA9";  // é, two bytes each
  std::vector<std::string> fitted = FitWarnings({accented});
  ASSERT_EQ(fitted.size(), 1u);
  EXPECT_EQ(fitted[0].size(), 512u);  // 256 runes, never a split character
}

TEST(FitWarningsTest, ControlCharactersBecomeSpacesAndBlanksAndRepeatsGo) {
  std::vector<std::string> fitted = FitWarnings({"line\none", "", "\n\t", "line one", "other"});
  EXPECT_EQ(fitted, (std::vector<std::string>{"line one", "other"}));
}

TEST(FitWarningsTest, StopsBeforeTotalPasses4096Bytes) {
  std::vector<std::string> many;
  for (int i = 0; i < 40; ++i) many.push_back(std::to_string(i) + std::string(200, 'w'));
  std::vector<std::string> fitted = FitWarnings(many);
  size_t total = 0;
  for (const auto& warning : fitted) total += warning.size();
  EXPECT_LE(total, 4096u);
  EXPECT_EQ(fitted.size(), 20u);  // 10 x 201 bytes + 10 x 202 bytes = 4030; one more passes 4096
  EXPECT_EQ(fitted.front().substr(0, 1), "0");
}

}  // namespace
}  // namespace cgpu
