// Reading nodes from what `kubectl get nodes -o json` (or -o yaml) prints.
//
// Accepts a Node, a NodeList, or a List (whose non-Node items, e.g. pods from
// `kubectl get nodes,pods -o json`, are skipped), as JSON or YAML (several YAML documents too).
// Pure function of the text; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace cgpu {

StatusOr<std::vector<nlohmann::json>> ReadNodeObjects(std::string_view text);

// The same for any kinds: objects of `kinds` ("Node", "Pod"), alone, in <Kind>Lists or in Lists.
// Each returned object has its kind set.
StatusOr<std::vector<nlohmann::json>> ReadObjectsOfKinds(std::string_view text,
                                                         const std::vector<std::string>& kinds);

// YAML text as JSON: mappings, sequences, null; every other scalar becomes a string, which is
// what Kubernetes labels and nodeInfo fields are.
StatusOr<std::vector<nlohmann::json>> YamlDocumentsToJson(std::string_view text);

}  // namespace cgpu
