#include "adapters/node_list.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "adapters/json_text.h"

namespace cgpu {
namespace {

using nlohmann::json;

constexpr int kMaxYamlDepth = kMaxJsonDepth;

// Aliases let a few bytes of YAML name an exponential number of nodes ("billion laughs"); the
// JSON written out may hold at most this many nodes per input byte (plus a floor for tiny inputs).
constexpr size_t kNodesPerInputByte = 16;
constexpr size_t kMinNodeBudget = 100'000;

json ToJson(const YAML::Node& node, int depth, size_t& budget) {
  if (depth > kMaxYamlDepth) throw YAML::Exception(node.Mark(), "nested too deeply");
  if (budget == 0) {
    throw YAML::Exception(node.Mark(), "aliases expand to more nodes than the input could hold");
  }
  --budget;
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json object = json::object();
      for (const auto& entry : node) {
        object[entry.first.Scalar()] = ToJson(entry.second, depth + 1, budget);
      }
      return object;
    }
    case YAML::NodeType::Sequence: {
      json array = json::array();
      for (const auto& item : node) array.push_back(ToJson(item, depth + 1, budget));
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

// "a Node, Pod, NodeList, PodList or List"
std::string Expected(const std::vector<std::string>& kinds) {
  std::vector<std::string> names = kinds;
  for (const std::string& kind : kinds) names.push_back(kind + "List");
  std::string text = "a ";
  for (const std::string& name : names) text += name + ", ";
  return text.substr(0, text.size() - 2) + " or List";
}

bool Wanted(const std::vector<std::string>& kinds, const std::string& kind) {
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

Status Collect(const json& document, const std::vector<std::string>& kinds,
               std::vector<json>& objects) {
  if (!document.is_object()) {
    return InvalidArgument("expected " + Expected(kinds) + " object, got " +
                           std::string(document.type_name()));
  }
  const std::string kind = KindOf(document);
  if (Wanted(kinds, kind)) {
    objects.push_back(document);
    return OkStatus();
  }
  const bool typed_list =
      kind.size() > 4 && kind.ends_with("List") && Wanted(kinds, kind.substr(0, kind.size() - 4));
  if (!typed_list && kind != "List") {
    return InvalidArgument("expected " + Expected(kinds) + ", got kind \"" + kind + "\"");
  }
  auto items = document.find("items");
  if (items == document.end() || items->is_null()) return OkStatus();
  if (!items->is_array()) return InvalidArgument(kind + ".items must be a list");
  for (const json& item : *items) {
    // A NodeList's items may omit their kind; a List names each item's kind.
    if (!item.is_object()) continue;
    std::string item_kind = KindOf(item);
    if (item_kind.empty() && typed_list) item_kind = kind.substr(0, kind.size() - 4);
    if (Wanted(kinds, item_kind)) {
      objects.push_back(item);
      objects.back()["kind"] = item_kind;
    }
  }
  return OkStatus();
}

// A line that starts or ends a YAML document: "---" or "..." at column 0, alone or followed by
// a space (YAML 1.2 forbids such lines inside any content, so splitting on them is exact).
bool IsDocumentMarker(std::string_view line, std::string_view marker) {
  return line.substr(0, 3) == marker &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

// Only directives, comments and blank lines: belongs to the document that follows.
bool HoldsNoContent(std::string_view piece) {
  while (!piece.empty()) {
    const size_t end = piece.find('\n');
    std::string_view line = piece.substr(0, end);
    const size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string_view::npos && line[first] != '#' && line[first] != '%') return false;
    if (end == std::string_view::npos) break;
    piece.remove_prefix(end + 1);
  }
  return true;
}

// The stream's documents, each parsed on its own with YAML::Load. yaml-cpp 0.7's LoadAll never
// returns on some inputs (a node with only an anchor or tag followed by ",", e.g. "&a,": found
// by fuzz_list_watch); Load on the same text returns.
std::vector<std::string_view> SplitDocuments(std::string_view text) {
  std::vector<std::string_view> documents;
  size_t start = 0;
  size_t position = 0;
  while (position < text.size()) {
    size_t end = text.find('\n', position);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(position, end - position);
    const size_t next = std::min(end + 1, text.size());
    if (IsDocumentMarker(line, "---") || IsDocumentMarker(line, "...")) {
      const std::string_view piece = text.substr(start, position - start);
      if (!HoldsNoContent(piece)) {
        documents.push_back(piece);
        start = position;
      }
      // "..." ends a document; its line belongs to none. "---" starts one and stays with it.
      if (IsDocumentMarker(line, "...")) start = next;
    }
    position = next;
  }
  if (start < text.size()) documents.push_back(text.substr(start));
  return documents;
}

}  // namespace

StatusOr<std::vector<json>> YamlDocumentsToJson(std::string_view text) {
  std::vector<json> documents;
  size_t budget = std::max(kMinNodeBudget, text.size() * kNodesPerInputByte);
  for (std::string_view piece : SplitDocuments(text)) {
    try {
      const YAML::Node document = YAML::Load(std::string(piece));
      if (document.IsDefined() && !document.IsNull()) {
        documents.push_back(ToJson(document, 0, budget));
      }
    } catch (const YAML::Exception& error) {
      const auto lines_before = std::count(text.data(), piece.data(), '\n');
      return InvalidArgument("input is neither JSON nor YAML (line " +
                             std::to_string(lines_before + error.mark.line + 1) + ": " + error.msg +
                             ")");
    }
  }
  return documents;
}

StatusOr<std::vector<json>> ReadNodeObjects(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return InvalidArgument("input is empty; expected kubectl get nodes -o json output");
  }
  return ReadObjectsOfKinds(text, {"Node"});
}

StatusOr<std::vector<json>> ReadObjectsOfKinds(std::string_view text,
                                               const std::vector<std::string>& kinds) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return InvalidArgument("input is empty");
  }
  std::vector<json> documents;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (text[first] == '{' || text[first] == '[') {
    // Too deep a document is refused while parsing (the parser itself does not recurse): copying
    // or walking one would overflow the stack.
    bool too_deep = false;
    json document = json::parse(
        text,
        [&too_deep](int depth, json::parse_event_t event, json&) {
          const bool opens = event == json::parse_event_t::object_start ||
                             event == json::parse_event_t::array_start;
          if (opens && depth >= kMaxJsonDepth) too_deep = true;
          return !too_deep;
        },
        /*allow_exceptions=*/false);
    if (too_deep) {
      return InvalidArgument("input is nested more than " + std::to_string(kMaxJsonDepth) +
                             " levels deep");
    }
    if (document.is_discarded()) {
      return InvalidArgument("input looks like JSON but does not parse");
    }
    documents.push_back(std::move(document));
  } else {
    StatusOr<std::vector<json>> yaml = YamlDocumentsToJson(text);
    if (!yaml.ok()) return yaml.status();
    documents = std::move(yaml).value();
  }
  std::vector<json> objects;
  for (const json& document : documents) {
    if (Status status = Collect(document, kinds, objects); !status.ok()) return status;
  }
  return objects;
}

}  // namespace cgpu
