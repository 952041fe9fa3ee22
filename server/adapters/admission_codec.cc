#include "adapters/admission_codec.h"

#include <algorithm>
#include <unordered_set>

namespace cgpu {
namespace {

using nlohmann::json;

constexpr std::string_view kV1 = "admission.k8s.io/v1";
constexpr std::string_view kV1beta1 = "admission.k8s.io/v1beta1";
constexpr size_t kMaxWarningRunes = 256;
constexpr size_t kMaxWarningsBytes = 4096;

ReviewDecodeError Error(std::string reason, std::string message) {
  return ReviewDecodeError{std::move(reason), std::move(message)};
}

std::string_view TypeName(const json& value) {
  return value.is_number() ? std::string_view("number") : std::string_view(value.type_name());
}

}  // namespace

int JsonNestingDepth(std::string_view body, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

namespace {

// Reads an optional string member. Absent or null leaves `out` untouched; another type is an error.
bool ReadString(const json& parent, const char* key, std::string_view path, std::string& out,
                ReviewDecodeError& error) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return true;
  if (!it->is_string()) {
    error = Error("wrong-type", std::string(path) + "." + key + " must be a string, got " +
                                    std::string(TypeName(*it)));
    return false;
  }
  out = it->get<std::string>();
  return true;
}

bool RequireString(const json& parent, const char* key, std::string_view path, std::string& out,
                   ReviewDecodeError& error) {
  if (!ReadString(parent, key, path, out, error)) return false;
  if (out.empty()) {
    error = Error("missing-field", std::string(path) + "." + key + " is missing or empty");
    return false;
  }
  return true;
}

// request.kind / request.resource: objects whose `leaf` member must be present.
bool ReadGroupVersion(const json& request, const char* key, const char* leaf, std::string& group,
                      std::string& version, std::string& leaf_value, ReviewDecodeError& error) {
  const std::string path = std::string("request.") + key;
  auto it = request.find(key);
  if (it == request.end() || it->is_null()) {
    error = Error("missing-field", path + " is missing");
    return false;
  }
  if (!it->is_object()) {
    error = Error("wrong-type", path + " must be an object, got " + std::string(TypeName(*it)));
    return false;
  }
  return ReadString(*it, "group", path, group, error) &&
         ReadString(*it, "version", path, version, error) &&
         RequireString(*it, leaf, path, leaf_value, error);
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

ReviewDecodeResult DecodeRequest(json& request, ReviewApiVersion version) {
  DecodedReview review;
  review.api_version = version;
  AdmissionRequest& out = review.request;
  ReviewDecodeError error;

  if (!RequireString(request, "uid", "request", out.uid, error)) return error;
  if (!ReadGroupVersion(request, "kind", "kind", out.kind.group, out.kind.version, out.kind.kind,
                        error)) {
    return error;
  }
  if (!ReadGroupVersion(request, "resource", "resource", out.resource.group, out.resource.version,
                        out.resource.resource, error)) {
    return error;
  }
  std::string operation;
  if (!ReadString(request, "subResource", "request", out.sub_resource, error) ||
      !ReadString(request, "name", "request", out.name, error) ||
      !ReadString(request, "namespace", "request", out.namespace_name, error) ||
      !RequireString(request, "operation", "request", operation, error)) {
    return error;
  }
  if (!ParseOperation(operation, out.operation)) {
    return Error("wrong-value", "request.operation \"" + operation +
                                    "\" is not one of CREATE, UPDATE, DELETE, CONNECT");
  }
  if (auto user = request.find("userInfo"); user != request.end() && !user->is_null()) {
    if (!user->is_object()) {
      return Error("wrong-type",
                   "request.userInfo must be an object, got " + std::string(TypeName(*user)));
    }
    if (!ReadString(*user, "username", "request.userInfo", out.user_name, error)) return error;
  }
  if (auto dry_run = request.find("dryRun"); dry_run != request.end() && !dry_run->is_null()) {
    if (!dry_run->is_boolean()) {
      return Error("wrong-type",
                   "request.dryRun must be a boolean, got " + std::string(TypeName(*dry_run)));
    }
    out.dry_run = dry_run->get<bool>();
  }
  if (auto object = request.find("object"); object != request.end()) {
    review.object = std::move(*object);
  }
  if (auto old_object = request.find("oldObject"); old_object != request.end()) {
    review.old_object = std::move(*old_object);
  }
  return review;
}

std::string StatusReason(int http_status) {
  switch (http_status) {
    case 400:
      return "BadRequest";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 503:
      return "ServiceUnavailable";
    default:
      return http_status >= 500 ? "InternalError" : "";
  }
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
  if (int depth = JsonNestingDepth(body, kMaxJsonDepth); depth > kMaxJsonDepth) {
    return Error("too-deep", "request body nests JSON deeper than " +
                                 std::to_string(kMaxJsonDepth) + " levels");
  }
  json document = json::parse(body, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    // Parse again for the position; only bad input pays for this.
    try {
      [[maybe_unused]] json again = json::parse(body);
    } catch (const json::parse_error& e) {
      return Error("invalid-json", std::string("request body is not valid JSON: ") + e.what());
    }
    return Error("invalid-json", "request body is not valid JSON");
  }
  if (!document.is_object()) {
    return Error("not-a-review", "request body must be a JSON object (an AdmissionReview), got " +
                                     std::string(TypeName(document)));
  }
  ReviewDecodeError error;
  std::string api_version;
  std::string kind;
  if (!RequireString(document, "apiVersion", "AdmissionReview", api_version, error) ||
      !RequireString(document, "kind", "AdmissionReview", kind, error)) {
    error.message.replace(0, std::string_view("AdmissionReview.").size(), "");
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
  auto request = document.find("request");
  if (request == document.end() || request->is_null()) {
    return Error("missing-request", "AdmissionReview has no request");
  }
  if (!request->is_object()) {
    return Error("wrong-type", "request must be an object, got " + std::string(TypeName(*request)));
  }
  return DecodeRequest(*request, version);
}

std::string EncodeAdmissionResponse(ReviewApiVersion version, std::string_view uid,
                                    const Decision& decision) {
  json response = {{"uid", uid}, {"allowed", decision.allowed()}};
  if (!decision.allowed()) {
    response["status"] = {{"code", decision.code == 0 ? 403 : decision.code},
                          {"reason", StatusReason(decision.code == 0 ? 403 : decision.code)},
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

std::string EncodeStatusError(int http_status, std::string_view message) {
  json status = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
                 {"status", "Failure"}, {"message", message}, {"reason", StatusReason(http_status)},
                 {"code", http_status}};
  return status.dump(-1, ' ', false, json::error_handler_t::replace);
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
