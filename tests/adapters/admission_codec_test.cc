#include "adapters/admission_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

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
// For a result that is a temporary: a copy, not a reference that outlives it.
DecodedReview Ok(ReviewDecodeResult&& result) {
  return Ok(static_cast<const ReviewDecodeResult&>(result));
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
  ASSERT_TRUE(std::holds_alternative<PodObject>(review.object.view));
  EXPECT_EQ(std::get<PodObject>(review.object.view).name, "flexvolume-test");
  EXPECT_FALSE(review.old_object.present);
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
  EXPECT_TRUE(review.object.present);
  EXPECT_TRUE(review.old_object.present);
  // Not a resource cgpu-guard reads: no view.
  EXPECT_TRUE(std::holds_alternative<std::monostate>(review.object.view));
}

TEST(DecodeFixtureTest, EnvelopeOfMalformedObjectStillDecodes) {
  // The object is not a Pod; judging it is the policy's business, not the codec's.
  auto result = DecodeAdmissionReview(
      ReadFixture("upstream/admissionreview-v1-pod-create-malformed-object.json"));
  const DecodedReview& review = Ok(result);
  // {"msg":"Expecting a Pod?"} reads as a pod with no fields at all.
  EXPECT_TRUE(review.object.present);
  ASSERT_TRUE(std::holds_alternative<PodObject>(review.object.view));
  EXPECT_EQ(std::get<PodObject>(review.object.view).name, "");
  EXPECT_FALSE(std::get<PodObject>(review.object.view).requests_cgpu);
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
  EXPECT_FALSE(decoded.object.present);
  EXPECT_TRUE(decoded.old_object.present);
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

// ---------------------------------------------------------------------------------------------
// Hostile and odd input. The decoder parses with simdjson and falls back to nlohmann::json only
// for bodies simdjson refuses; a UTF-8 byte order mark is one (simdjson wants none, nlohmann skips
// it), so decoding "\xEF\xBB\xBF" + body runs the fallback on the same document. Both paths must
// give the same answer, whatever the body.

constexpr std::string_view kBom = "\xEF\xBB\xBF";

std::string Describe(const GpuAnnotations& a) {
  return "annotations{" + a.index + "|" + a.allocation + "}";
}

// Everything a decode produced, as text: equal text, equal results.
std::string Describe(const ReviewDecodeResult& result) {
  std::ostringstream out;
  if (const auto* error = std::get_if<ReviewDecodeError>(&result)) {
    out << "error " << error->reason << ": " << error->message;
    return out.str();
  }
  const DecodedReview& review = std::get<DecodedReview>(result);
  const AdmissionRequest& r = review.request;
  out << ToString(review.api_version) << " uid=" << r.uid << " kind=" << r.kind.group << "/"
      << r.kind.version << "/" << r.kind.kind << " resource=" << r.resource.group << "/"
      << r.resource.version << "/" << r.resource.resource << " sub=" << r.sub_resource
      << " name=" << r.name << " ns=" << r.namespace_name << " op=" << static_cast<int>(r.operation)
      << " user=" << r.user_name << " dry=" << r.dry_run;
  for (const ReviewObject* object : {&review.object, &review.old_object}) {
    out << " | present=" << object->present << " ";
    if (const auto* pod = std::get_if<PodObject>(&object->view)) {
      out << "pod " << pod->namespace_name << "/" << pod->name << " uid=" << pod->uid
          << " node=" << pod->node_name << " phase=" << pod->phase << " cgpu=" << pod->requests_cgpu
          << " " << Describe(pod->gpu_annotations);
    } else if (const auto* binding = std::get_if<BindingObject>(&object->view)) {
      out << "binding " << binding->namespace_name << "/" << binding->name << " -> "
          << binding->target_name << " " << Describe(binding->gpu_annotations);
    } else if (const auto* node = std::get_if<NodeObject>(&object->view)) {
      out << "node " << node->name << " os=" << node->os_image << " kernel=" << node->kernel_version
          << " gpus=" << node->gpu_count << " labels{";
      std::set<std::string> seen;  // each key once, with the value Label() gives
      for (const auto& label : node->labels) {
        if (seen.insert(label.first).second)
          out << label.first << "=" << node->Label(label.first) << ";";
      }
      out << "}";
    } else {
      out << "no view";
    }
  }
  return out.str();
}

// Decodes `body` on both paths, expects them to agree, and returns the result.
ReviewDecodeResult DecodeBothWays(const std::string& body);

// Decodes `body` on both paths and returns the review (empty, with a failure, when it is refused).
DecodedReview DecodeOk(const std::string& body) {
  ReviewDecodeResult result = DecodeBothWays(body);
  return Ok(result);
}

ReviewDecodeResult DecodeBothWays(const std::string& body) {
  ReviewDecodeResult fast = DecodeAdmissionReview(body);
  ReviewDecodeResult fallback = DecodeAdmissionReview(std::string(kBom) + body);
  EXPECT_EQ(Describe(fast), Describe(fallback)) << body.substr(0, 400);
  return fast;
}

// A review carrying a cGPU pod with most of the fields the views read.
json PodReview() {
  json review = MinimalReview();
  review["request"]["userInfo"] = {{"username", "alice"}, {"groups", {"a", "b"}}};
  review["request"]["dryRun"] = false;
  review["request"]["object"] = json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "namespace": "ml", "uid": "pod-uid",
                 "labels": {"app": "x"},
                 "annotations": {"ALIYUN_COM_GPU_MEM_IDX": "1",
                                 "scheduler.framework.gpushare.allocation": "{\"0\":{\"1\":2}}"}},
    "spec": {"nodeName": "n1",
             "initContainers": [{"name": "i", "resources": {}}],
             "containers": [{"name": "c", "image": "x",
                             "resources": {"limits": {"aliyun.com/gpu-mem": "2", "cpu": "1"},
                                           "requests": {"aliyun.com/gpu-mem": "2"}}}]},
    "status": {"phase": "Running"}})");
  review["request"]["oldObject"] = review["request"]["object"];
  review["request"]["oldObject"]["status"]["phase"] = "Pending";
  return review;
}

json NodeReview() {
  json review = MinimalReview();
  review["request"]["kind"]["kind"] = "Node";
  review["request"]["resource"]["resource"] = "nodes";
  review["request"]["operation"] = "UPDATE";
  review["request"].erase("namespace");
  review["request"]["object"] = json::parse(R"({
    "metadata": {"name": "n1", "labels": {"ack.node.gpu.schedule": "cgpu",
                                          "cgpu-guard.io/cgpu-version": "1.5.20"}},
    "status": {"capacity": {"aliyun.com/gpu-count": "8"},
               "nodeInfo": {"osImage": "Alibaba Cloud Linux 3", "kernelVersion": "5.10.134"}}})");
  review["request"]["oldObject"] = review["request"]["object"];
  return review;
}

json BindingReview() {
  json review = MinimalReview();
  review["request"]["kind"]["kind"] = "Binding";
  review["request"]["subResource"] = "binding";
  review["request"]["object"] = json::parse(R"({
    "apiVersion": "v1", "kind": "Binding",
    "metadata": {"name": "p", "namespace": "ml",
                 "annotations": {"scheduler.framework.gpushare.allocation": "{\"0\":{\"3\":1}}"}},
    "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})");
  return review;
}

// Calls f(path, value) for every value inside `document`, the document itself first.
void ForEachPath(const json& document, const json::json_pointer& at,
                 const std::function<void(const json::json_pointer&)>& f) {
  f(at);
  const json& value = document.at(at);
  if (value.is_object()) {
    for (const auto& [key, member] : value.items()) ForEachPath(document, at / key, f);
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) ForEachPath(document, at / i, f);
  }
}

TEST(HostileInputTest, BothPathsReadTheObjectViewsAlike) {
  for (const json& review : {PodReview(), NodeReview(), BindingReview()}) {
    EXPECT_FALSE(std::holds_alternative<ReviewDecodeError>(DecodeBothWays(review.dump())));
  }
  const DecodedReview pod = DecodeOk(PodReview().dump());
  const auto& view = std::get<PodObject>(pod.object.view);
  EXPECT_EQ(view.uid, "pod-uid");
  EXPECT_EQ(view.node_name, "n1");
  EXPECT_EQ(view.phase, "Running");
  EXPECT_TRUE(view.requests_cgpu);
  EXPECT_EQ(view.gpu_annotations.index, "1");
  EXPECT_EQ(std::get<PodObject>(pod.old_object.view).phase, "Pending");
  const DecodedReview node = DecodeOk(NodeReview().dump());
  EXPECT_EQ(std::get<NodeObject>(node.object.view).Label("ack.node.gpu.schedule"), "cgpu");
  EXPECT_EQ(std::get<NodeObject>(node.object.view).gpu_count, "8");
  const DecodedReview binding = DecodeOk(BindingReview().dump());
  EXPECT_EQ(std::get<BindingObject>(binding.object.view).target_name, "n1");
}

// Every value of every kind of review replaced, one at a time, by null, a number, a string, an
// array and an object: each body is answered (decoded or refused with a precise reason), never
// thrown on, and the same way on both paths.
TEST(HostileInputTest, AnyValueOfAnyTypeAnywhereIsAnswered) {
  const std::set<std::string> reasons = {
      "not-a-review", "missing-field",          "wrong-type", "wrong-value", "missing-request",
      "wrong-kind",   "unsupported-api-version"};
  int bodies = 0;
  for (const json& review : {PodReview(), NodeReview(), BindingReview()}) {
    ForEachPath(review, json::json_pointer(), [&](const json::json_pointer& path) {
      for (const json& replacement :
           {json(nullptr), json(7), json(-1.5), json(18446744073709551615ull), json("s"),
            json::array(), json::array({nullptr, 1}), json::object(), json{{"name", nullptr}}}) {
        json mutated = review;
        mutated[path] = replacement;
        ReviewDecodeResult result = DecodeBothWays(mutated.dump());
        if (const auto* error = std::get_if<ReviewDecodeError>(&result)) {
          EXPECT_TRUE(reasons.contains(error->reason)) << error->reason << " " << error->message;
        }
        ++bodies;
      }
    });
  }
  EXPECT_GT(bodies, 500);
}

TEST(HostileInputTest, NumbersWhereStringsAreExpectedAreNamed) {
  for (const char* number : {"7", "-3", "1.5", "1e3", "18446744073709551615",
                             "123456789012345678901234567890" /* past 64 bits */}) {
    for (const auto& [pointer, name] : std::vector<std::pair<std::string, std::string>>{
             {"/apiVersion", "apiVersion"},
             {"/kind", "kind"},
             {"/request/uid", "request.uid"},
             {"/request/kind/group", "request.kind.group"},
             {"/request/kind/kind", "request.kind.kind"},
             {"/request/resource/version", "request.resource.version"},
             {"/request/subResource", "request.subResource"},
             {"/request/namespace", "request.namespace"},
             {"/request/operation", "request.operation"},
             {"/request/userInfo/username", "request.userInfo.username"}}) {
      json review = PodReview();
      review[json::json_pointer(pointer)] = "PLACEHOLDER";
      std::string body = review.dump();
      body.replace(body.find("\"PLACEHOLDER\""), 13, number);
      ReviewDecodeError error = Err(DecodeBothWays(body));
      EXPECT_EQ(error.reason, "wrong-type") << number << " at " << pointer;
      EXPECT_EQ(error.message, name + " must be a string, got number") << number;
    }
  }
}

TEST(HostileInputTest, NullEverywhereInTheObjectReadsAsAbsent) {
  json review = PodReview();
  review["request"]["object"] = json::parse(R"({
    "metadata": {"name": null, "namespace": null, "uid": null, "annotations": null},
    "spec": {"nodeName": null, "containers": [null, {"resources": null},
                                              {"resources": {"limits": null, "requests": null}}],
             "initContainers": null},
    "status": null})");
  const DecodedReview decoded = DecodeOk(review.dump());
  const auto& pod = std::get<PodObject>(decoded.object.view);
  EXPECT_EQ(pod.name, "");
  EXPECT_EQ(pod.node_name, "");
  EXPECT_FALSE(pod.requests_cgpu);
  EXPECT_EQ(pod.gpu_annotations.allocation, "");
  // A null amount is no amount: only a limit above zero makes a cGPU pod.
  review["request"]["object"]["spec"]["containers"][2]["resources"]["limits"] = {
      {"aliyun.com/gpu-mem", nullptr}};
  EXPECT_FALSE(std::get<PodObject>(Ok(DecodeBothWays(review.dump())).object.view).requests_cgpu);
  review["request"]["object"]["spec"]["containers"][2]["resources"]["limits"] = {
      {"aliyun.com/gpu-mem", "1"}};
  EXPECT_TRUE(std::get<PodObject>(Ok(DecodeBothWays(review.dump())).object.view).requests_cgpu);
}

TEST(HostileInputTest, RequiredFieldsNullAreMissing) {
  for (const auto& [pointer, message] : std::vector<std::pair<std::string, std::string>>{
           {"/apiVersion", "apiVersion is missing or empty"},
           {"/kind", "kind is missing or empty"},
           {"/request/uid", "request.uid is missing or empty"},
           {"/request/kind", "request.kind is missing"},
           {"/request/resource", "request.resource is missing"},
           {"/request/kind/kind", "request.kind.kind is missing or empty"},
           {"/request/operation", "request.operation is missing or empty"}}) {
    json review = PodReview();
    review[json::json_pointer(pointer)] = nullptr;
    ReviewDecodeError error = Err(DecodeBothWays(review.dump()));
    EXPECT_EQ(error.reason, "missing-field") << pointer;
    EXPECT_EQ(error.message, message);
  }
  json review = PodReview();
  review["request"] = nullptr;
  EXPECT_EQ(Err(DecodeBothWays(review.dump())).reason, "missing-request");
}

TEST(HostileInputTest, DuplicateKeysTakeTheLastValueEverywhere) {
  auto with = [](std::string body, const std::string& before, const std::string& insert) {
    body.insert(body.find(before), insert);
    return body;
  };
  const std::string pod = PodReview().dump();
  // The envelope, the request, the object's metadata, an annotation, a whole object.
  EXPECT_EQ(Ok(DecodeBothWays(with(pod, "\"apiVersion\"", R"("apiVersion":"x",)"))).api_version,
            ReviewApiVersion::kV1);
  EXPECT_EQ(Ok(DecodeBothWays(with(pod, "\"uid\":\"u-1\"", R"("uid":5,)"))).request.uid, "u-1");
  EXPECT_EQ(Err(DecodeBothWays(with(pod, "\"userInfo\"", R"("uid":5,)"))).message,
            "request.uid must be a string, got number");
  const DecodedReview review =
      DecodeOk(with(with(pod, "\"name\":\"p\"", R"("name":"first",)"), "\"ALIYUN_COM_GPU_MEM_IDX\"",
                    R"("ALIYUN_COM_GPU_MEM_IDX":"7",)"));
  EXPECT_EQ(std::get<PodObject>(review.object.view).name, "p");
  EXPECT_EQ(std::get<PodObject>(review.object.view).gpu_annotations.index, "1");
  const DecodedReview objects =
      DecodeOk(with(pod, "\"object\"", R"("object":{"metadata":{"name":"old"}},)"));
  EXPECT_EQ(std::get<PodObject>(objects.object.view).uid, "pod-uid");
  // A node label repeated with a number last reads as "", as nlohmann's map has it.
  const std::string node = NodeReview().dump();
  const DecodedReview labels = DecodeOk(node);
  EXPECT_EQ(std::get<NodeObject>(labels.object.view).Label("cgpu-guard.io/cgpu-version"), "1.5.20");
  std::string repeated = node;
  const std::string label = R"("cgpu-guard.io/cgpu-version":"1.5.20")";
  repeated.replace(repeated.find(label), label.size(),
                   label + R"(,"cgpu-guard.io/cgpu-version":9)");
  EXPECT_EQ(std::get<NodeObject>(Ok(DecodeBothWays(repeated)).object.view)
                .Label("cgpu-guard.io/cgpu-version"),
            "");
}

TEST(HostileInputTest, EveryTruncationIsInvalidJson) {
  std::string body = PodReview().dump();
  for (size_t length = 1; length < body.size(); ++length) {
    ReviewDecodeError error = Err(DecodeAdmissionReview(body.substr(0, length)));
    EXPECT_EQ(error.reason, "invalid-json") << length;
    EXPECT_EQ(error.message.rfind("request body is not valid JSON: [json.exception.parse_error", 0),
              0u)
        << error.message;
  }
}

TEST(HostileInputTest, InvalidUtf8AnywhereIsInvalidJson) {
  const std::string body = PodReview().dump();
  for (const char* bad : {"\xff", "\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                          "\xf4\x90\x80\x80", "\xe2\x82", "\xf0\x9f\x98"}) {
    for (const char* where : {"\"uid\"", "u-1", "pod-uid", "Running", "gpu-mem", "\"image\""}) {
      std::string broken = body;
      broken.insert(broken.find(where) + 2, bad);
      ReviewDecodeError error = Err(DecodeAdmissionReview(broken));
      EXPECT_EQ(error.reason, "invalid-json") << where;
      EXPECT_EQ(error.message.rfind("request body is not valid JSON: ", 0), 0u) << error.message;
    }
  }
  // Well-formed non-ASCII passes untouched.
  json review = PodReview();
  review["request"]["name"] = "caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80";
  EXPECT_EQ(Ok(DecodeBothWays(review.dump())).request.name,
            "caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80");
}

TEST(HostileInputTest, DepthIsBoundedAt128Levels) {
  // The envelope, request and object are 3 levels; arrays under the object make the rest.
  auto nested = [](int arrays) {
    json review = PodReview();
    review["request"]["object"]["deep"] = "PLACEHOLDER";
    std::string body = review.dump();
    body.replace(body.find("\"PLACEHOLDER\""), 13,
                 std::string(arrays, '[') + std::string(arrays, ']'));
    return body;
  };
  EXPECT_EQ(JsonNestingDepth(nested(125), 1000), 128);
  EXPECT_EQ(Ok(DecodeBothWays(nested(125))).request.uid, "u-1");
  EXPECT_EQ(Err(DecodeBothWays(nested(126))).reason, "too-deep");
  for (const std::string& body : {std::string(100000, '['), std::string(100000, '{'),
                                  [] {
                                    std::string objects;
                                    for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
                                    return objects + "1" + std::string(100000, '}');
                                  }(),
                                  [] {
                                    std::string mixed;
                                    for (int i = 0; i < 50000; ++i) mixed += "[{\"a\":";
                                    return mixed;
                                  }()}) {
    ReviewDecodeError error = Err(DecodeAdmissionReview(body));
    EXPECT_EQ(error.reason, "too-deep");
    EXPECT_EQ(error.message, "request body nests JSON deeper than 128 levels");
  }
}

TEST(HostileInputTest, BodiesOnlyTheFallbackParsesDecodeAlike) {
  // An integer past 64 bits: nlohmann reads it as a double, simdjson refuses it.
  json review = PodReview();
  review["request"]["object"]["spec"]["priority"] = "PLACEHOLDER";
  std::string body = review.dump();
  body.replace(body.find("\"PLACEHOLDER\""), 13, "123456789012345678901234567890");
  const DecodedReview decoded = DecodeOk(body);
  EXPECT_EQ(decoded.request.uid, "u-1");
  EXPECT_EQ(std::get<PodObject>(decoded.object.view).node_name, "n1");
  // A byte order mark: nlohmann skips it, simdjson does not.
  EXPECT_EQ(Ok(DecodeAdmissionReview(std::string(kBom) + PodReview().dump())).request.uid, "u-1");
}

// The fallback builds nlohmann's tree (several times the body in memory) only for small bodies:
// a large one simdjson refuses gets its 400 from a pass that keeps nothing.
TEST(HostileInputTest, TheFallbackTreeIsBuiltOnlyForSmallBodies) {
  json review = PodReview();
  review["request"]["object"]["metadata"]["annotations"]["big"] = std::string(300000, 'x');
  const ReviewDecodeResult large = DecodeAdmissionReview(std::string(kBom) + review.dump());
  const auto* error = std::get_if<ReviewDecodeError>(&large);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->reason, "invalid-json");
  EXPECT_NE(error->message.find("only in bodies up to 262144 bytes"), std::string::npos)
      << error->message;
  // Invalid JSON of any size still names where it went wrong.
  const ReviewDecodeResult broken =
      DecodeAdmissionReview("{\"apiVersion\":" + std::string(400000, ' ') + "x}");
  ASSERT_NE(std::get_if<ReviewDecodeError>(&broken), nullptr);
  EXPECT_NE(std::get<ReviewDecodeError>(broken).message.find("syntax error"), std::string::npos)
      << std::get<ReviewDecodeError>(broken).message;
}

TEST(HostileInputTest, LargeBodiesDecodeToo) {
  // Past the size the per-thread parser keeps: a parser of its own, then the usual answer.
  json review = PodReview();
  review["request"]["object"]["metadata"]["annotations"]["big"] = std::string(200000, 'x');
  const DecodedReview decoded = DecodeOk(review.dump());
  EXPECT_EQ(std::get<PodObject>(decoded.object.view).uid, "pod-uid");
  // And the per-thread parser still answers small bodies afterwards.
  EXPECT_EQ(Ok(DecodeAdmissionReview(PodReview().dump())).request.uid, "u-1");
}

// ---------------------------------------------------------------------------------------------
// Encoding writes JSON text directly (json_text_test checks its strings against nlohmann::json);
// the whole response must be what nlohmann::json wrote before, byte for byte.

// The encoders as they were, on nlohmann::json, for comparison.
std::string OldEncodeAdmissionResponse(ReviewApiVersion version, std::string_view uid,
                                       const Decision& decision, std::string_view reason) {
  json response = {{"uid", uid}, {"allowed", decision.allowed()}};
  if (!decision.allowed()) {
    response["status"] = {{"code", decision.code == 0 ? 403 : decision.code},
                          {"reason", reason},
                          {"message", decision.message}};
  }
  if (std::vector<std::string> warnings = FitWarnings(decision.warnings); !warnings.empty()) {
    response["warnings"] = std::move(warnings);
  }
  json review = {{"apiVersion", ToString(version)},
                 {"kind", "AdmissionReview"},
                 {"response", std::move(response)}};
  return review.dump(-1, ' ', false, json::error_handler_t::replace);
}

TEST(EncodeTest, SameBytesAsTheNlohmannEncoder) {
  Decision allow = Allow("fine");
  allow.warnings = {"w1", "w\n2 \xff", "caf\xc3\xa9"};
  Decision deny = Deny("pods-per-gpu", "GPU \"1\" of node n1\tis full \xc3\xa9 \xed\xa0\x80");
  Decision deny_code = Deny("x", "y");
  deny_code.code = 418;  // a code metav1 has no reason for: ""
  for (const auto& [decision, reason] : std::vector<std::pair<Decision, std::string>>{
           {allow, ""}, {deny, "Forbidden"}, {deny_code, ""}}) {
    for (ReviewApiVersion version : {ReviewApiVersion::kV1, ReviewApiVersion::kV1beta1}) {
      for (std::string_view uid : {"u-1", "odd \"uid\" \x01"}) {
        EXPECT_EQ(EncodeAdmissionResponse(version, uid, decision),
                  OldEncodeAdmissionResponse(version, uid, decision, reason));
      }
    }
  }
  for (int status : {400, 413, 500, 503, 418}) {
    const std::string message = "bad \"thing\"\n\xff";
    json old = {{"kind", "Status"},
                {"apiVersion", "v1"},
                {"metadata", json::object()},
                {"status", "Failure"},
                {"message", message},
                {"reason", json::parse(EncodeStatusError(status, ""))["reason"]},
                {"code", status}};
    EXPECT_EQ(EncodeStatusError(status, message),
              old.dump(-1, ' ', false, json::error_handler_t::replace));
  }
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
