#include "adapters/pod_facts_reader.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "adapters/json_text.h"
#include "adapters/nlohmann_view.h"
#include "adapters/object_view_reader.h"

namespace cgpu {
namespace {

// A GPU index: a plain decimal number below this. Real nodes have at most 16 GPUs.
constexpr int kMaxGpuIndex = 1024;

std::optional<int> GpuIndex(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (text.empty() || text.size() > 4) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value < kMaxGpuIndex ? std::optional<int>(value) : std::nullopt;
}

void Normalise(std::vector<int>& indices) {
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
}

// An allocation names one entry per container and GPU: a few dozen at most on real nodes. Past
// this many members in one object it is not an allocation, and reading it further only costs time.
constexpr size_t kMaxAllocationMembers = 1024;

// Calls f(key, value) for each member of `object` but the ones a later member of the same key
// overrides, as a map-building parser would, in one pass over at most kMaxAllocationMembers
// members (false when there are more, or when f says stop).
template <typename F>
bool ForEachLastMember(const simdjson::dom::object& object, F&& f) {
  if (object.size() > kMaxAllocationMembers) return false;
  std::unordered_map<std::string_view, size_t> last;  // key -> index of its last occurrence
  last.reserve(object.size());
  size_t index = 0;
  for (auto it = object.begin(); it != object.end(); ++it) last[it.key()] = index++;
  index = 0;
  for (auto it = object.begin(); it != object.end(); ++it, ++index) {
    if (last[it.key()] != index) continue;
    if (!f(it.key(), it.value())) return false;
  }
  return true;
}

GpuAssignment FromAllocation(const std::string& text) {
  GpuAssignment gpus;
  gpus.source = std::string("annotation ") + kGpuAllocationAnnotation;
  auto fail = [&](const std::string& why) {
    gpus.indices.clear();
    gpus.error = gpus.source + " is \"" + text.substr(0, 80) + (text.size() > 80 ? "..." : "") +
                 "\": " + why;
    return gpus;
  };
  if (JsonNestingDepth(text, 4) > 4) return fail("nested too deeply");
  // One parser per thread keeps its buffers between calls; parse() copies the text into its own
  // padded buffer. Error codes only: nothing here throws.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object allocation;
  if (parser.parse(text.data(), text.size()).get_object().get(allocation) != simdjson::SUCCESS) {
    return fail("expected {\"<container>\":{\"<gpu>\":<GiB>}}");
  }
  std::string why;
  size_t entries = 0;  // container-GPU pairs, over all containers
  const bool complete = ForEachLastMember(
      allocation, [&](std::string_view container, simdjson::dom::element per_gpu) {
        simdjson::dom::object gpu_map;
        if (per_gpu.get_object().get(gpu_map) != simdjson::SUCCESS) {
          why = "container " + std::string(container) + " has no GPU map";
          return false;
        }
        const bool all_gpus =
            ForEachLastMember(gpu_map, [&](std::string_view gpu, simdjson::dom::element amount) {
              if (++entries > kMaxAllocationMembers) return false;
              std::optional<int> index = GpuIndex(gpu);
              if (!index) {
                why = "\"" + std::string(gpu) + "\" is not a GPU index";
                return false;
              }
              double value = 0;
              if (!amount.is_number() || amount.get_double().get(value) != simdjson::SUCCESS ||
                  value < 0) {
                why = "GPU " + std::string(gpu) + " has no amount";
                return false;
              }
              gpus.indices.push_back(*index);
              return true;
            });
        return all_gpus;
      });
  if (!why.empty()) return fail(why);
  if (!complete) {
    return fail("more than " + std::to_string(kMaxAllocationMembers) + " entries");
  }
  Normalise(gpus.indices);
  return gpus;
}

GpuAssignment FromIndex(const std::string& text) {
  GpuAssignment gpus;
  gpus.source = std::string("annotation ") + kGpuIndexAnnotation;
  std::string_view rest = text;
  while (true) {
    const size_t comma = rest.find(',');
    std::optional<int> index = GpuIndex(rest.substr(0, comma));
    if (!index) {
      gpus.indices.clear();
      gpus.error = gpus.source + " is \"" + text.substr(0, 80) + "\", not a GPU index";
      return gpus;
    }
    gpus.indices.push_back(*index);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  Normalise(gpus.indices);
  return gpus;
}

PodPhase Phase(const std::string& phase) {
  if (phase == "Running") return PodPhase::kRunning;
  if (phase == "Succeeded") return PodPhase::kSucceeded;
  if (phase == "Failed") return PodPhase::kFailed;
  if (phase == "Unknown") return PodPhase::kUnknown;
  return PodPhase::kPending;  // also when absent: a pod just created has no status yet
}

}  // namespace

GpuAssignment GpuAssignmentFrom(const GpuAnnotations& annotations) {
  if (!annotations.allocation.empty()) return FromAllocation(annotations.allocation);
  if (!annotations.index.empty()) return FromIndex(annotations.index);
  return {};
}

GpuAssignment ReadGpuAssignment(const nlohmann::json& annotations) {
  return GpuAssignmentFrom(ReadGpuAnnotations(NlohmannView(annotations)));
}

PodFacts PodFactsFrom(const PodObject& pod) {
  PodFacts facts;
  facts.namespace_name = pod.namespace_name;
  facts.name = pod.name;
  facts.uid = pod.uid;
  facts.node_name = pod.node_name;
  facts.phase = Phase(pod.phase);
  facts.shares_gpu = pod.requests_cgpu;
  // Which GPU matters only for a pod that shares one: others' annotations are not even parsed.
  if (facts.shares_gpu) facts.gpus = GpuAssignmentFrom(pod.gpu_annotations);
  return facts;
}

PodFacts PodFactsFrom(PodObject&& pod) {
  PodFacts facts;
  facts.namespace_name = std::move(pod.namespace_name);
  facts.name = std::move(pod.name);
  facts.uid = std::move(pod.uid);
  facts.node_name = std::move(pod.node_name);
  facts.phase = Phase(pod.phase);
  facts.shares_gpu = pod.requests_cgpu;
  if (facts.shares_gpu) facts.gpus = GpuAssignmentFrom(pod.gpu_annotations);
  return facts;
}

PodFacts ReadPodFacts(const nlohmann::json& pod) {
  return PodFactsFrom(ReadPodObject(NlohmannView(pod)));
}

BindingFacts BindingFactsFrom(const BindingObject& binding, const std::string& request_namespace,
                              const std::string& request_name) {
  BindingFacts facts;
  facts.pod_namespace = request_namespace.empty() ? binding.namespace_name : request_namespace;
  facts.pod_name = request_name.empty() ? binding.name : request_name;
  facts.pod_uid = binding.uid;
  facts.node = binding.target_name;
  facts.gpus = GpuAssignmentFrom(binding.gpu_annotations);
  return facts;
}

BindingFacts ReadBindingFacts(const nlohmann::json& binding, const std::string& request_namespace,
                              const std::string& request_name) {
  return BindingFactsFrom(ReadBindingObject(NlohmannView(binding)), request_namespace,
                          request_name);
}

}  // namespace cgpu
