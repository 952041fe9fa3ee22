#include "support/fake_event_rules.h"

#include <cctype>

namespace cgpu::testing {
namespace {

using nlohmann::json;

std::string Text(const json& event, const char* key) {
  const auto found = event.find(key);
  return found != event.end() && found->is_string() ? found->get<std::string>() : "";
}

std::string Required(const json& event, const char* key, size_t max = 0) {
  const std::string value = Text(event, key);
  if (value.empty()) return std::string(key) + ": Required value";
  if (max > 0 && value.size() > max) {
    return std::string(key) + ": Invalid value: can have at most " + std::to_string(max) +
           " characters";
  }
  return "";
}

// apimachinery validation.IsQualifiedName: an optional DNS-subdomain prefix and "/", then a name
// of at most 63 characters, alphanumeric at both ends, with '-', '_' and '.' inside.
bool IsQualifiedName(const std::string& text) {
  const size_t slash = text.find('/');
  const std::string name = slash == std::string::npos ? text : text.substr(slash + 1);
  const std::string prefix = slash == std::string::npos ? "" : text.substr(0, slash);
  if (slash != std::string::npos && (prefix.empty() || prefix.size() > 253)) return false;
  for (char c : prefix) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
      return false;
    }
  }
  if (name.empty() || name.size() > 63) return false;
  const auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

std::string EventCreateProblem(const json& event) {
  for (const auto& [key, max] :
       {std::pair{"eventTime", 0}, std::pair{"reportingController", 0},
        std::pair{"reportingInstance", 128}, std::pair{"action", 128}, std::pair{"reason", 128}}) {
    if (std::string problem = Required(event, key, max); !problem.empty()) return problem;
  }
  const std::string type = Text(event, "type");
  if (type != "Normal" && type != "Warning") return "type: Invalid value: \"" + type + "\"";
  if (Text(event, "note").size() > 1024) return "note: Invalid value: can have at most 1024 bytes";
  if (event.contains("series")) {
    const json& series = event["series"];
    if (!series.is_object() || !series["count"].is_number_integer() ||
        series["count"].get<int64_t>() < 2) {
      return "series.count: Invalid value: should be at least 2";
    }
    if (Text(series, "lastObservedTime").empty()) return "series.lastObservedTime: Required value";
  }
  if (!IsQualifiedName(Text(event, "reportingController"))) {
    return "reportingController: Invalid value: not a qualified name";
  }
  // With an eventTime, only an Event about a cluster-scoped object is tied to a namespace.
  const std::string event_namespace = Text(event["metadata"], "namespace");
  const json regarding = event.value("regarding", json::object());
  if (Text(regarding, "namespace").empty() && event_namespace != "default" &&
      event_namespace != "kube-system") {
    return "involvedObject.namespace: Invalid value: does not match event.namespace";
  }
  return "";
}

std::string EventUpdateProblem(const json& updated, const json& stored) {
  for (const char* key : {"eventTime", "reportingController", "reportingInstance", "action",
                          "reason", "type", "note", "regarding", "related"}) {
    const json left = updated.contains(key) ? updated[key] : json();
    const json right = stored.contains(key) ? stored[key] : json();
    if (left != right) return std::string(key) + ": Invalid value: field is immutable";
  }
  json as_created = updated;
  as_created["metadata"]["namespace"] = stored["metadata"]["namespace"];
  return EventCreateProblem(as_created);
}

}  // namespace cgpu::testing
