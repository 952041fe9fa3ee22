#include "adapters/node_label_patch.h"

#include <nlohmann/json.hpp>

namespace cgpu {

using nlohmann::json;

StatusOr<std::map<std::string, std::string>> ReadNodeLabels(const std::string& node_json) {
  const json node = json::parse(node_json, nullptr, false);
  if (node.is_discarded() || !node.is_object()) {
    return InvalidArgument("the API server's answer is not a JSON object");
  }
  if (node.value("kind", "") != "Node") {
    return InvalidArgument("the API server's answer is not a Node (kind \"" +
                           node.value("kind", "") + "\")");
  }
  std::map<std::string, std::string> labels;
  const auto metadata = node.find("metadata");
  if (metadata == node.end() || !metadata->is_object()) return labels;
  const auto found = metadata->find("labels");
  if (found == metadata->end() || found->is_null()) return labels;
  if (!found->is_object()) return InvalidArgument("metadata.labels is not an object");
  for (const auto& [key, value] : found->items()) {
    if (value.is_string()) labels[key] = value.get<std::string>();
  }
  return labels;
}

std::string EncodeLabelMergePatch(const LabelChange& change) {
  json labels = json::object();
  for (const auto& [key, value] : change) labels[key] = value ? json(*value) : json(nullptr);
  return json{{"metadata", {{"labels", labels}}}}.dump();
}

bool IsPermissionRefusal(int status, const std::string& body) {
  if (status == 401) return true;
  if (status != 403) return false;
  const json answer = json::parse(body, nullptr, false);
  const std::string message =
      answer.is_object() && answer.contains("message") && answer["message"].is_string()
          ? answer["message"].get<std::string>()
          : body;
  return message.find("admission webhook") == std::string::npos;
}

}  // namespace cgpu
