#include "adapters/node_list.h"

#include <yaml-cpp/yaml.h>

#include "adapters/admission_codec.h"

namespace cgpu {
namespace {

using nlohmann::json;

constexpr int kMaxYamlDepth = kMaxJsonDepth;

json ToJson(const YAML::Node& node, int depth) {
  if (depth > kMaxYamlDepth) throw YAML::Exception(node.Mark(), "nested too deeply");
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json object = json::object();
      for (const auto& entry : node) object[entry.first.Scalar()] = ToJson(entry.second, depth + 1);
      return object;
    }
    case YAML::NodeType::Sequence: {
      json array = json::array();
      for (const auto& item : node) array.push_back(ToJson(item, depth + 1));
      return array;
    }
    case YAML::NodeType::Scalar:
      return node.Scalar();
    default:
      return nullptr;
  }
}

std::string KindOf(const json& object) {
  auto kind = object.find("kind");
  return kind != object.end() && kind->is_string() ? kind->get<std::string>() : "";
}

Status CollectNodes(const json& document, std::vector<json>& nodes) {
  if (!document.is_object()) {
    return InvalidArgument("expected a Node, NodeList or List object, got " +
                           std::string(document.type_name()));
  }
  const std::string kind = KindOf(document);
  if (kind == "Node") {
    nodes.push_back(document);
    return OkStatus();
  }
  if (kind != "NodeList" && kind != "List") {
    return InvalidArgument("expected a Node, NodeList or List, got kind \"" + kind + "\"");
  }
  auto items = document.find("items");
  if (items == document.end() || items->is_null()) return OkStatus();
  if (!items->is_array()) return InvalidArgument(kind + ".items must be a list");
  for (const json& item : *items) {
    // NodeList items may omit their kind; a List names each item's kind.
    const std::string item_kind = item.is_object() ? KindOf(item) : "";
    if (item_kind == "Node" || (kind == "NodeList" && item_kind.empty() && item.is_object())) {
      nodes.push_back(item);
    }
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::vector<json>> YamlDocumentsToJson(std::string_view text) {
  try {
    std::vector<json> documents;
    for (const YAML::Node& document : YAML::LoadAll(std::string(text))) {
      if (document.IsDefined() && !document.IsNull()) documents.push_back(ToJson(document, 0));
    }
    return documents;
  } catch (const YAML::Exception& error) {
    return InvalidArgument("input is neither JSON nor YAML (line " +
                           std::to_string(error.mark.line + 1) + ": " + error.msg + ")");
  }
}

StatusOr<std::vector<json>> ReadNodeObjects(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return InvalidArgument("input is empty; expected kubectl get nodes -o json output");
  }
  std::vector<json> documents;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (text[first] == '{' || text[first] == '[') {
    json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) {
      return InvalidArgument("input looks like JSON but does not parse");
    }
    documents.push_back(std::move(document));
  } else {
    StatusOr<std::vector<json>> yaml = YamlDocumentsToJson(text);
    if (!yaml.ok()) return yaml.status();
    documents = std::move(yaml).value();
  }
  std::vector<json> nodes;
  for (const json& document : documents) {
    if (Status status = CollectNodes(document, nodes); !status.ok()) return status;
  }
  return nodes;
}

}  // namespace cgpu
