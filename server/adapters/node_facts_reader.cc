#include "adapters/node_facts_reader.h"

#include "adapters/nlohmann_view.h"
#include "adapters/object_view_reader.h"
#include "core/max_pod_label.h"

namespace cgpu {
namespace {

std::string Label(const NodeObject& node, const std::string& key) {
  return std::string(node.Label(key));
}

VersionFact LabelVersion(const NodeObject& node, const std::string& key) {
  VersionFact fact;
  fact.source = "label " + key;
  fact.raw = Label(node, key);
  if (fact.present()) fact.value = Version::Parse(fact.raw);
  return fact;
}

VersionFact DriverVersion(const NodeObject& node, const FactSources& sources) {
  VersionFact fact = LabelVersion(node, sources.labels.driver_version);
  if (fact.present()) return fact;
  const std::string& prefix = sources.gfd_driver_label_prefix;
  const std::string major = Label(node, prefix + ".major");
  if (major.empty()) {
    fact.source = "label " + sources.labels.driver_version + " (or " + prefix + ".major/minor/rev)";
    return fact;
  }
  fact.source = "labels " + prefix + ".major/minor/rev";
  fact.raw = major;
  for (const char* part : {".minor", ".rev"}) {
    const std::string value = Label(node, prefix + part);
    if (value.empty()) break;
    fact.raw += "." + value;
  }
  fact.value = Version::Parse(fact.raw);
  return fact;
}

// "8" -> 8; empty, zero, negative, not a plain number or over 9999 -> nullopt.
std::optional<int> SmallCount(const std::string& text) {
  if (text.empty() || text.size() > 4 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const int value = std::stoi(text);
  return value > 0 ? std::optional<int>(value) : std::nullopt;
}

}  // namespace

StatusOr<NodeFactsReader> NodeFactsReader::Create(FactSources sources, const RuleTable& table) {
  std::regex container_os;
  try {
    container_os = std::regex(sources.container_os_pattern,
                              std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
  } catch (const std::regex_error& error) {
    return InvalidArgument("container OS pattern \"" + sources.container_os_pattern +
                           "\" is not a valid regular expression: " + error.what());
  }
  return NodeFactsReader(std::move(sources), std::move(container_os), table.cgpu_enabled_labels,
                         table.isolation_disabled_label);
}

bool NodeFactsReader::IsContainerOs(const std::string& os_image) const {
  {
    std::lock_guard<std::mutex> lock(os_image_memo_->mu);
    if (auto it = os_image_memo_->matches.find(os_image); it != os_image_memo_->matches.end()) {
      return it->second;
    }
  }
  const bool matches = std::regex_search(os_image, container_os_);  // outside the lock: slow
  std::lock_guard<std::mutex> lock(os_image_memo_->mu);
  if (os_image_memo_->matches.size() >= OsImageMemo::kMaxEntries) os_image_memo_->matches.clear();
  os_image_memo_->matches.emplace(os_image, matches);
  return matches;
}

NodeFacts NodeFactsReader::Read(const nlohmann::json& node) const {
  return Read(ReadNodeObject(NlohmannView(node)));
}

NodeFacts NodeFactsReader::Read(const NodeObject& node) const {
  NodeFacts facts;
  facts.name = node.name;
  facts.uid = node.uid;

  for (const LabelMatch& match : cgpu_enabled_labels_) {
    if (node.Label(match.key) == match.value) {
      facts.cgpu_enabled = true;
      facts.cgpu_enabled_by = match.key + "=" + match.value;
      break;
    }
  }
  if (facts.cgpu_enabled &&
      node.Label(isolation_disabled_label_.key) == isolation_disabled_label_.value) {
    facts.cgpu_enabled = false;
    facts.cgpu_enabled_by = isolation_disabled_label_.key + "=" + isolation_disabled_label_.value +
                            " turns isolation off";
  }

  facts.cgpu_version = LabelVersion(node, sources_.labels.cgpu_version);
  if (!sources_.assume_cgpu_version.empty()) {
    facts.cgpu_version.source = "--cgpu-version";
    facts.cgpu_version.raw = sources_.assume_cgpu_version;
    facts.cgpu_version.value = Version::Parse(sources_.assume_cgpu_version);
  }
  facts.driver_version = DriverVersion(node, sources_);
  facts.toolkit_version = LabelVersion(node, sources_.labels.toolkit_version);

  facts.kernel_version.source = "status.nodeInfo.kernelVersion";
  facts.kernel_version.raw = node.kernel_version;
  if (facts.kernel_version.present()) {
    facts.kernel_version.value = Version::ParsePrefix(facts.kernel_version.raw);
  }

  facts.ai_installer_version.source = "--ai-installer-version";
  facts.ai_installer_version.raw = sources_.ai_installer_version;
  if (facts.ai_installer_version.present()) {
    facts.ai_installer_version.value = Version::Parse(sources_.ai_installer_version);
  }

  facts.instance_type_source = "label " + sources_.instance_type_labels.front();
  for (const std::string& key : sources_.instance_type_labels) {
    facts.instance_type = Label(node, key);
    if (!facts.instance_type.empty()) {
      facts.instance_type_source = "label " + key;
      break;
    }
  }
  if (!facts.instance_type.empty()) facts.instance_family = InstanceFamily(facts.instance_type);

  facts.os_image = node.os_image;
  facts.container_optimized_os = !facts.os_image.empty() && IsContainerOs(facts.os_image);

  if (const std::string* max_pods = node.FindLabel(sources_.max_pods_per_gpu_label)) {
    facts.max_pod_label = *max_pods;
    facts.max_pods_per_gpu = ParseMaxPodLabel(*max_pods);
  }
  facts.gpu_count = SmallCount(node.gpu_count);
  if (!facts.gpu_count)
    facts.gpu_count = SmallCount(Label(node, "aliyun.accelerator/nvidia_count"));
  return facts;
}

}  // namespace cgpu
