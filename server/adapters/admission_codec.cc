#include "adapters/admission_codec.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_set>

#include "adapters/api_text.h"
#include "adapters/json_text.h"
#include "adapters/nlohmann_view.h"
#include "adapters/object_view_reader.h"
#include "adapters/simdjson_view.h"

namespace cgpu {
namespace {

namespace dom = simdjson::dom;

constexpr std::string_view kV1 = "admission.k8s.io/v1";
constexpr std::string_view kV1beta1 = "admission.k8s.io/v1beta1";
constexpr size_t kMaxWarningRunes = 256;
constexpr size_t kMaxWarningsBytes = 4096;

ReviewDecodeError Error(std::string reason, std::string message) {
  return ReviewDecodeError{std::move(reason), std::move(message)};
}

// Bodies up to this size are parsed by the calling thread's parser, which keeps its buffers (about
// 15 bytes per byte of capacity) for the next call; a larger one gets a parser of its own, freed
// at once, so that a rare huge object does not pin megabytes in each of the worker threads.
constexpr size_t kKeptParserCapacity = 64 * 1024;

// The members of `object` named by `keys`, in that order, in one pass: the last occurrence of a
// repeated key wins, as with Member(). Keys not present (or `object` not an object) are missing.
template <JsonView V, size_t N>
std::array<V, N> Members(const V& object, const std::array<std::string_view, N>& keys) {
  std::array<V, N> found{};
  object.ForEachMember([&](std::string_view key, const V& value) {
    for (size_t i = 0; i < N; ++i) {
      if (key == keys[i]) {
        found[i] = value;
        return;
      }
    }
  });
  return found;
}

std::string FieldPath(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}

// Reads an optional string member. Absent or null leaves `out` untouched; another type is an error.
template <JsonView V>
bool ReadString(const V& value, std::string_view path, std::string_view key, std::string& out,
                ReviewDecodeError& error) {
  if (!value.exists() || value.is_null()) return true;
  if (value.TypeName() != "string") {
    error = Error("wrong-type",
                  FieldPath(path, key) + " must be a string, got " + std::string(value.TypeName()));
    return false;
  }
  out = value.String();
  return true;
}

template <JsonView V>
bool RequireString(const V& value, std::string_view path, std::string_view key, std::string& out,
                   ReviewDecodeError& error) {
  if (!ReadString(value, path, key, out, error)) return false;
  if (out.empty()) {
    error = Error("missing-field", FieldPath(path, key) + " is missing or empty");
    return false;
  }
  return true;
}

// request.kind / request.resource: objects whose `leaf` member must be present.
template <JsonView V>
bool ReadGroupVersion(const V& value, std::string_view key, std::string_view leaf,
                      std::string& group, std::string& version, std::string& leaf_value,
                      ReviewDecodeError& error) {
  const std::string path = FieldPath("request", key);
  if (!value.exists() || value.is_null()) {
    error = Error("missing-field", path + " is missing");
    return false;
  }
  if (!value.is_object()) {
    error = Error("wrong-type", path + " must be an object, got " + std::string(value.TypeName()));
    return false;
  }
  const auto [group_value, version_value, leaf_member] =
      Members(value, std::array<std::string_view, 3>{"group", "version", leaf});
  return ReadString(group_value, path, "group", group, error) &&
         ReadString(version_value, path, "version", version, error) &&
         RequireString(leaf_member, path, leaf, leaf_value, error);
}

bool ParseOperation(std::string_view text, Operation& out) {
  static constexpr std::pair<std::string_view, Operation> kOperations[] = {
      {"CREATE", Operation::kCreate},
      {"UPDATE", Operation::kUpdate},
      {"DELETE", Operation::kDelete},
      {"CONNECT", Operation::kConnect},
  };
  for (const auto& [name, operation] : kOperations) {
    if (text == name) {
      out = operation;
      return true;
    }
  }
  return false;
}

template <JsonView V>
ReviewObject ReadObject(const V& value, ObjectKind kind) {
  ReviewObject object;
  object.present = value.is_object();
  if (!object.present) return object;
  switch (kind) {
    case ObjectKind::kPod:
      object.view = ReadPodObject(value);
      break;
    case ObjectKind::kBinding:
      object.view = ReadBindingObject(value);
      break;
    case ObjectKind::kNode:
      object.view = ReadNodeObject(value);
      break;
    case ObjectKind::kNone:
      break;
  }
  return object;
}

template <JsonView V>
ReviewDecodeResult DecodeRequest(const V& request, ReviewApiVersion version) {
  DecodedReview review;
  review.api_version = version;
  AdmissionRequest& out = review.request;
  ReviewDecodeError error;

  const auto [uid, kind, resource, sub_resource, name, namespace_name, operation_value, user_info,
              dry_run, object, old_object] =
      Members(request, std::array<std::string_view, 11>{
                           "uid", "kind", "resource", "subResource", "name", "namespace",
                           "operation", "userInfo", "dryRun", "object", "oldObject"});
  if (!RequireString(uid, "request", "uid", out.uid, error)) return error;
  if (!ReadGroupVersion(kind, "kind", "kind", out.kind.group, out.kind.version, out.kind.kind,
                        error)) {
    return error;
  }
  if (!ReadGroupVersion(resource, "resource", "resource", out.resource.group, out.resource.version,
                        out.resource.resource, error)) {
    return error;
  }
  std::string operation;
  if (!ReadString(sub_resource, "request", "subResource", out.sub_resource, error) ||
      !ReadString(name, "request", "name", out.name, error) ||
      !ReadString(namespace_name, "request", "namespace", out.namespace_name, error) ||
      !RequireString(operation_value, "request", "operation", operation, error)) {
    return error;
  }
  if (!ParseOperation(operation, out.operation)) {
    return Error("wrong-value", "request.operation \"" + operation +
                                    "\" is not one of CREATE, UPDATE, DELETE, CONNECT");
  }
  if (user_info.exists() && !user_info.is_null()) {
    if (!user_info.is_object()) {
      return Error("wrong-type",
                   "request.userInfo must be an object, got " + std::string(user_info.TypeName()));
    }
    if (!ReadString(user_info.Member("username"), "request.userInfo", "username", out.user_name,
                    error)) {
      return error;
    }
  }
  if (dry_run.exists() && !dry_run.is_null()) {
    const std::optional<bool> value = dry_run.Bool();
    if (!value) {
      return Error("wrong-type",
                   "request.dryRun must be a boolean, got " + std::string(dry_run.TypeName()));
    }
    out.dry_run = *value;
  }
  const ObjectKind object_kind =
      ObjectKindFor(out.resource.group, out.resource.resource, out.sub_resource);
  review.object = ReadObject(object, object_kind);
  review.old_object = ReadObject(old_object, object_kind);
  return review;
}

// The AdmissionReview envelope around the request, from a parsed document of either library.
template <JsonView V>
ReviewDecodeResult DecodeDocument(const V& document) {
  if (!document.is_object()) {
    return Error("not-a-review", "request body must be a JSON object (an AdmissionReview), got " +
                                     std::string(document.TypeName()));
  }
  const auto [api_version_value, kind_value, request] =
      Members(document, std::array<std::string_view, 3>{"apiVersion", "kind", "request"});
  ReviewDecodeError error;
  std::string api_version;
  std::string kind;
  if (!RequireString(api_version_value, "", "apiVersion", api_version, error) ||
      !RequireString(kind_value, "", "kind", kind, error)) {
    return error;
  }
  ReviewApiVersion version;
  if (api_version == kV1) {
    version = ReviewApiVersion::kV1;
  } else if (api_version == kV1beta1) {
    version = ReviewApiVersion::kV1beta1;
  } else {
    return Error("unsupported-api-version", "apiVersion \"" + api_version +
                                                "\" is not supported; send admission.k8s.io/v1 "
                                                "or admission.k8s.io/v1beta1");
  }
  if (kind != "AdmissionReview") {
    return Error("wrong-kind", "kind must be AdmissionReview, got \"" + kind + "\"");
  }
  if (!request.exists() || request.is_null()) {
    return Error("missing-request", "AdmissionReview has no request");
  }
  if (!request.is_object()) {
    return Error("wrong-type", "request must be an object, got " + std::string(request.TypeName()));
  }
  return DecodeRequest(request, version);
}

// A SAX consumer that keeps nothing but nlohmann's message for the first error, with its
// position: checking a document this way costs no memory, whatever its size.
class ErrorOnlySax : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& error) override {
    message = error.what();
    return false;
  }
  std::string message;
};

// A body simdjson refused is read into nlohmann's tree (several times its size in memory) only
// when it is this small. The API server sends nothing simdjson refuses; past this, a client gets
// the error and no tree is built.
constexpr size_t kMaxFallbackTreeBytes = 256 * 1024;

// What simdjson refused goes the way every body went before simdjson: the depth bound, then
// nlohmann's parser, whose message gives the position of the error. A small body nlohmann
// accepts (an integer beyond 64 bits, a byte order mark) is decoded from nlohmann's tree:
// slower, but the same answer. Only bodies simdjson cannot parse pay for any of this.
ReviewDecodeResult DecodeRefused(std::string_view body, simdjson::error_code code) {
  if (int depth = JsonNestingDepth(body, kMaxJsonDepth); depth > kMaxJsonDepth) {
    return Error("too-deep", "request body nests JSON deeper than " +
                                 std::to_string(kMaxJsonDepth) + " levels");
  }
  ErrorOnlySax sax;
  const bool valid = nlohmann::json::sax_parse(body, &sax, nlohmann::json::input_format_t::json,
                                               /*strict=*/true);
  if (!valid) {
    return Error(
        "invalid-json",
        "request body is not valid JSON: " +
            (sax.message.empty() ? std::string(simdjson::error_message(code)) : sax.message));
  }
  if (body.size() > kMaxFallbackTreeBytes) {
    return Error("invalid-json", "request body is JSON this server reads only in bodies up to " +
                                     std::to_string(kMaxFallbackTreeBytes) + " bytes (" +
                                     simdjson::error_message(code) + ")");
  }
  const nlohmann::json document = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!document.is_discarded()) return DecodeDocument(NlohmannView(document));
  return Error("invalid-json",
               std::string("request body is not valid JSON: ") + simdjson::error_message(code));
}

// A parser that refuses documents nested deeper than kMaxJsonDepth (simdjson counts the way
// JsonNestingDepth does: 128 nested arrays pass, 129 do not).
simdjson::error_code PrepareParser(dom::parser& parser, size_t capacity) {
  constexpr size_t kDepth = kMaxJsonDepth;
  if (parser.capacity() >= capacity && parser.max_depth() == kDepth) return simdjson::SUCCESS;
  return parser.allocate(std::max(capacity, parser.capacity()), kDepth);
}

ReviewDecodeResult DecodeWith(dom::parser& parser, std::string_view body, size_t capacity) {
  if (PrepareParser(parser, std::max(capacity, body.size())) != simdjson::SUCCESS) {
    return Error("no-memory", "cannot allocate a JSON parser for a body of " +
                                  std::to_string(body.size()) + " bytes");
  }
  // parse() copies the body into the parser's own padded buffer, reused from call to call.
  dom::element document;
  if (auto code = parser.parse(body.data(), body.size()).get(document); code != simdjson::SUCCESS) {
    return DecodeRefused(body, code);
  }
  return DecodeDocument(SimdjsonView(document));
}

// Length in bytes of the first `max_runes` UTF-8 characters of `text` (the whole text if shorter).
size_t PrefixBytesForRunes(std::string_view text, size_t max_runes) {
  size_t runes = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if ((byte & 0xC0) != 0x80) {  // a lead byte starts a new rune
      if (runes == max_runes) return i;
      ++runes;
    }
  }
  return text.size();
}

}  // namespace

std::string_view ToString(ReviewApiVersion version) {
  return version == ReviewApiVersion::kV1 ? kV1 : kV1beta1;
}

ReviewDecodeResult DecodeAdmissionReview(std::string_view body) {
  if (body.empty())
    return Error("empty-body", "request body is empty; expected an AdmissionReview");
  if (body.size() <= kKeptParserCapacity) {
    thread_local dom::parser parser;
    return DecodeWith(parser, body, kKeptParserCapacity);
  }
  dom::parser parser;
  return DecodeWith(parser, body, body.size());
}

std::string EncodeAdmissionResponse(ReviewApiVersion version, std::string_view uid,
                                    const Decision& decision) {
  // Written directly, without a JSON tree, on the request path; members in sorted order, so the
  // same decision is always the same bytes.
  std::string out;
  out.reserve(160 + uid.size() + decision.message.size());
  out.append(R"({"apiVersion":)");
  AppendJsonString(out, ToString(version));
  out.append(R"(,"kind":"AdmissionReview","response":{"allowed":)");
  out.append(decision.allowed() ? "true" : "false");
  if (!decision.allowed()) {
    const int code = decision.code == 0 ? 403 : decision.code;
    out.append(R"(,"status":{"code":)");
    out.append(std::to_string(code));
    out.append(R"(,"message":)");
    AppendJsonString(out, decision.message);
    out.append(R"(,"reason":)");
    AppendJsonString(out, StatusReasonFor(code));
    out.push_back('}');
  }
  out.append(R"(,"uid":)");
  AppendJsonString(out, uid);
  if (std::vector<std::string> warnings = FitWarnings(decision.warnings); !warnings.empty()) {
    out.append(R"(,"warnings":[)");
    for (size_t i = 0; i < warnings.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendJsonString(out, warnings[i]);
    }
    out.push_back(']');
  }
  out.append("}}");
  return out;
}

std::string EncodeStatusError(int http_status, std::string_view message) {
  std::string out;
  out.reserve(128 + message.size());
  out.append(R"({"apiVersion":"v1","code":)");
  out.append(std::to_string(http_status));
  out.append(R"(,"kind":"Status","message":)");
  AppendJsonString(out, message);
  out.append(R"(,"metadata":{},"reason":)");
  AppendJsonString(out, StatusReasonFor(http_status));
  out.append(R"(,"status":"Failure"})");
  return out;
}

std::vector<std::string> FitWarnings(const std::vector<std::string>& warnings) {
  std::vector<std::string> fitted;
  std::unordered_set<std::string> seen;
  size_t total = 0;
  for (const std::string& warning : warnings) {
    std::string clean = warning;
    std::replace_if(
        clean.begin(), clean.end(),
        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; }, ' ');
    clean.resize(PrefixBytesForRunes(clean, kMaxWarningRunes));
    if (clean.find_first_not_of(' ') == std::string::npos) continue;
    if (total + clean.size() > kMaxWarningsBytes) break;
    if (!seen.insert(clean).second) continue;
    total += clean.size();
    fitted.push_back(std::move(clean));
  }
  return fitted;
}

}  // namespace cgpu
