#include "adapters/cluster_state_file.h"

#include <simdjson.h>

#include <algorithm>

#include "adapters/json_text.h"
#include "adapters/node_list.h"
#include "adapters/object_view_reader.h"
#include "adapters/simdjson_view.h"

namespace cgpu {
namespace {

// The cluster state from a simdjson document, read item by item into object views: no JSON tree
// of the whole file is ever built (a 100,000-pod file made a 3 GB nlohmann tree). Answers nullopt
// when the document is not a shape it accepts, so that the nlohmann path says why, in its words;
// the cache is touched only once the shape is known good.
std::optional<ClusterStateCounts> LoadFromDocument(const SimdjsonView& document,
                                                   ClusterCache& cache) {
  if (!document.is_object()) return std::nullopt;
  const std::string_view kind = document.Member("kind").String();
  const bool single = kind == "Node" || kind == "Pod";
  std::string_view item_kind_default;  // the kind of items that omit theirs
  if (kind == "NodeList") item_kind_default = "Node";
  if (kind == "PodList") item_kind_default = "Pod";
  if (!single && item_kind_default.empty() && kind != "List") return std::nullopt;
  const SimdjsonView items = document.Member("items");
  if (!single && items.exists() && !items.is_null() && !items.is_array()) return std::nullopt;

  // Calls f on each object of `wanted` kind, in document order.
  auto for_each = [&](std::string_view wanted, auto&& f) {
    if (single) {
      if (kind == wanted) f(document);
      return;
    }
    items.ForEachElement([&](const SimdjsonView& item) {
      if (!item.is_object()) return;
      std::string_view item_kind = item.Member("kind").String();
      if (item_kind.empty()) item_kind = item_kind_default;
      if (item_kind == wanted) f(item);
    });
  };
  ClusterStateCounts counts;
  cache.BeginNodeResync();
  for_each("Node", [&](const SimdjsonView& node) {
    cache.UpsertNode(ReadNodeObject(node));
    ++counts.nodes;
  });
  cache.EndNodeResync();
  cache.BeginPodResync();
  for_each("Pod", [&](const SimdjsonView& pod) {
    cache.UpsertPod(ReadPodObject(pod));
    ++counts.pods;
  });
  cache.EndPodResync();
  cache.MarkNodesSynced();
  cache.MarkPodsSynced();
  return counts;
}

// A {"kind": ..., "items": [...]} document, read one item at a time: only the largest item is
// ever parsed at once, so a 200 MB file costs little beyond its own text. nullopt for anything
// this simple scan does not follow (a "kind" with escapes, a single object, malformed text): the
// caller then parses the whole document. The cache is touched only once every item has parsed.
std::optional<ClusterStateCounts> LoadListItemByItem(std::string_view text, ClusterCache& cache) {
  size_t i = SkipJsonSpace(text, 0);
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  std::string_view kind;
  std::string_view items;  // the array's text, brackets included
  bool items_null = true;
  i = SkipJsonSpace(text, i + 1);
  while (i < text.size() && text[i] != '}') {
    const size_t key_end = SkipJsonValue(text, i);
    if (text[i] != '"' || key_end == std::string_view::npos) return std::nullopt;
    const std::string_view key = text.substr(i + 1, key_end - i - 2);
    i = SkipJsonSpace(text, key_end);
    if (i >= text.size() || text[i] != ':') return std::nullopt;
    i = SkipJsonSpace(text, i + 1);
    const size_t value_end = SkipJsonValue(text, i);
    if (i >= text.size() || value_end == std::string_view::npos || value_end == i) {
      return std::nullopt;
    }
    const std::string_view value = text.substr(i, value_end - i);
    if (key == "kind") {
      if (value.size() < 2 || value.front() != '"' || value.find('\\') != value.npos) {
        return std::nullopt;
      }
      kind = value.substr(1, value.size() - 2);
    } else if (key == "items") {
      items_null = value == "null";
      if (!items_null && value.front() != '[') return std::nullopt;
      items = items_null ? std::string_view() : value;
    } else if (key.find('\\') != key.npos) {
      return std::nullopt;  // an escaped key might spell "kind" or "items"
    }
    i = SkipJsonSpace(text, value_end);
    if (i < text.size() && text[i] == ',') i = SkipJsonSpace(text, i + 1);
  }
  if (i >= text.size() || SkipJsonSpace(text, i + 1) != text.size()) return std::nullopt;
  std::string_view item_kind_default;  // the kind of items that omit theirs
  if (kind == "NodeList") item_kind_default = "Node";
  if (kind == "PodList") item_kind_default = "Pod";
  if (item_kind_default.empty() && kind != "List") return std::nullopt;

  std::vector<NodeObject> nodes;
  std::vector<PodObject> pods;
  if (!items_null) {
    // An item sits two levels down: the whole document's depth bound applies.
    simdjson::dom::parser parser;
    if (parser.allocate(64 * 1024, kMaxJsonDepth - 2) != simdjson::SUCCESS) return std::nullopt;
    size_t at = SkipJsonSpace(items, 1);
    while (at < items.size() && items[at] != ']') {
      const size_t end = SkipJsonValue(items, at);
      if (end == std::string_view::npos) return std::nullopt;
      simdjson::dom::element item;
      // `text` is padded, so every slice of it is readable SIMDJSON_PADDING bytes past its end.
      if (parser.parse(items.data() + at, end - at, /*realloc_if_needed=*/false).get(item) !=
          simdjson::SUCCESS) {
        return std::nullopt;
      }
      const SimdjsonView view(item);
      if (view.is_object()) {
        std::string_view item_kind = view.Member("kind").String();
        if (item_kind.empty()) item_kind = item_kind_default;
        if (item_kind == "Node") nodes.push_back(ReadNodeObject(view));
        if (item_kind == "Pod") pods.push_back(ReadPodObject(view));
      }
      at = SkipJsonSpace(items, end);
      if (at < items.size() && items[at] == ',') at = SkipJsonSpace(items, at + 1);
    }
    if (at + 1 != items.size()) return std::nullopt;
  }
  ClusterStateCounts counts{nodes.size(), pods.size()};
  cache.BeginNodeResync();
  for (const NodeObject& node : nodes) cache.UpsertNode(node);
  cache.EndNodeResync();
  cache.BeginPodResync();
  for (PodObject& pod : pods) cache.UpsertPod(std::move(pod));
  cache.EndPodResync();
  cache.MarkNodesSynced();
  cache.MarkPodsSynced();
  return counts;
}

// The JSON fast paths over text with SIMDJSON_PADDING readable bytes past its end (parsed in
// place: no copy of a file that may be hundreds of megabytes).
std::optional<ClusterStateCounts> LoadPaddedJson(std::string_view text, ClusterCache& cache) {
  const size_t first = SkipJsonSpace(text, 0);
  if (first == text.size() || text[first] != '{') return std::nullopt;
  if (auto counts = LoadListItemByItem(text, cache)) return counts;
  simdjson::dom::parser parser;
  if (parser.allocate(text.size(), kMaxJsonDepth) != simdjson::SUCCESS) return std::nullopt;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size(), /*realloc_if_needed=*/false).get(root) !=
      simdjson::SUCCESS) {
    return std::nullopt;  // e.g. too deep, or not JSON: the nlohmann path words the error
  }
  return LoadFromDocument(SimdjsonView(root), cache);
}

// What every input goes through that the fast path did not take: YAML, and refusals.
StatusOr<ClusterStateCounts> LoadThroughNlohmann(std::string_view text, ClusterCache& cache) {
  StatusOr<std::vector<nlohmann::json>> objects = ReadObjectsOfKinds(text, {"Node", "Pod"});
  if (!objects.ok()) return objects.status();
  ClusterStateCounts counts;
  cache.BeginNodeResync();
  for (const nlohmann::json& object : *objects) {
    if (object["kind"] == "Node") {
      cache.UpsertNode(object);
      ++counts.nodes;
    }
  }
  cache.EndNodeResync();
  cache.BeginPodResync();
  for (const nlohmann::json& object : *objects) {
    if (object["kind"] == "Pod") {
      cache.UpsertPod(object);
      ++counts.pods;
    }
  }
  cache.EndPodResync();
  cache.MarkNodesSynced();
  cache.MarkPodsSynced();
  return counts;
}

}  // namespace

StatusOr<ClusterStateCounts> LoadClusterState(std::string_view text, ClusterCache& cache) {
  const simdjson::padded_string padded(text);
  if (std::optional<ClusterStateCounts> counts = LoadPaddedJson(padded, cache)) return *counts;
  return LoadThroughNlohmann(text, cache);
}

StatusOr<ClusterStateCounts> LoadClusterStateFile(const std::string& path, ClusterCache& cache) {
  simdjson::padded_string text;
  if (simdjson::padded_string::load(path).get(text) != simdjson::SUCCESS) {
    return NotFound("cannot read cluster state file " + path);
  }
  std::optional<ClusterStateCounts> counts = LoadPaddedJson(text, cache);
  if (counts) return *counts;
  StatusOr<ClusterStateCounts> slow = LoadThroughNlohmann(text, cache);
  if (!slow.ok()) return InvalidArgument(path + ": " + slow.status().message());
  return slow;
}

}  // namespace cgpu
