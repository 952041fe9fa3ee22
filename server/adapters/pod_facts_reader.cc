#include "adapters/pod_facts_reader.h"

#include <algorithm>
#include <cctype>

#include "adapters/admission_codec.h"

namespace cgpu {
namespace {

using nlohmann::json;

// A GPU index: a plain decimal number below this. Real nodes have at most 16 GPUs.
constexpr int kMaxGpuIndex = 1024;

const json& Member(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

std::string String(const json& value) { return value.is_string() ? value.get<std::string>() : ""; }

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
  const json allocation = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (allocation.is_discarded() || !allocation.is_object()) {
    return fail("expected {\"<container>\":{\"<gpu>\":<GiB>}}");
  }
  for (const auto& [container, per_gpu] : allocation.items()) {
    if (!per_gpu.is_object()) return fail("container " + container + " has no GPU map");
    for (const auto& [gpu, amount] : per_gpu.items()) {
      std::optional<int> index = GpuIndex(gpu);
      if (!index) return fail("\"" + gpu + "\" is not a GPU index");
      if (!amount.is_number() || amount.get<double>() < 0) {
        return fail("GPU " + gpu + " has no amount");
      }
      gpus.indices.push_back(*index);
    }
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

bool RequestsCgpu(const json& containers) {
  if (!containers.is_array()) return false;
  for (const json& container : containers) {
    const json& resources = Member(container, "resources");
    for (const char* kind : {"limits", "requests"}) {
      const json& amounts = Member(resources, kind);
      if (!amounts.is_object()) continue;
      if (amounts.contains(kGpuMemResource) || amounts.contains(kGpuCoreResource)) return true;
    }
  }
  return false;
}

PodPhase Phase(const std::string& phase) {
  if (phase == "Running") return PodPhase::kRunning;
  if (phase == "Succeeded") return PodPhase::kSucceeded;
  if (phase == "Failed") return PodPhase::kFailed;
  if (phase == "Unknown") return PodPhase::kUnknown;
  return PodPhase::kPending;  // also when absent: a pod just created has no status yet
}

}  // namespace

GpuAssignment ReadGpuAssignment(const json& annotations) {
  if (const std::string allocation = String(Member(annotations, kGpuAllocationAnnotation));
      !allocation.empty()) {
    return FromAllocation(allocation);
  }
  if (const std::string index = String(Member(annotations, kGpuIndexAnnotation)); !index.empty()) {
    return FromIndex(index);
  }
  return {};
}

PodFacts ReadPodFacts(const json& pod) {
  PodFacts facts;
  const json& metadata = Member(pod, "metadata");
  facts.namespace_name = String(Member(metadata, "namespace"));
  facts.name = String(Member(metadata, "name"));
  facts.uid = String(Member(metadata, "uid"));
  const json& spec = Member(pod, "spec");
  facts.node_name = String(Member(spec, "nodeName"));
  facts.phase = Phase(String(Member(Member(pod, "status"), "phase")));
  facts.shares_gpu =
      RequestsCgpu(Member(spec, "containers")) || RequestsCgpu(Member(spec, "initContainers"));
  facts.gpus = ReadGpuAssignment(Member(metadata, "annotations"));
  return facts;
}

BindingFacts ReadBindingFacts(const json& binding, const std::string& request_namespace,
                              const std::string& request_name) {
  BindingFacts facts;
  const json& metadata = Member(binding, "metadata");
  facts.pod_namespace =
      request_namespace.empty() ? String(Member(metadata, "namespace")) : request_namespace;
  facts.pod_name = request_name.empty() ? String(Member(metadata, "name")) : request_name;
  facts.node = String(Member(Member(binding, "target"), "name"));
  facts.gpus = ReadGpuAssignment(Member(metadata, "annotations"));
  return facts;
}

}  // namespace cgpu
