#include "adapters/node_facts_reader.h"

namespace cgpu {
namespace {

using nlohmann::json;

// A string member of an object, or "" when anything on the way is missing or not a string.
std::string StringAt(const json& object, std::initializer_list<const char*> path) {
  const json* current = &object;
  for (const char* key : path) {
    if (!current->is_object()) return "";
    auto it = current->find(key);
    if (it == current->end()) return "";
    current = &*it;
  }
  return current->is_string() ? current->get<std::string>() : "";
}

std::string Label(const json& labels, const std::string& key) {
  if (!labels.is_object()) return "";
  auto it = labels.find(key);
  return it != labels.end() && it->is_string() ? it->get<std::string>() : "";
}

VersionFact LabelVersion(const json& labels, const std::string& key) {
  VersionFact fact;
  fact.source = "label " + key;
  fact.raw = Label(labels, key);
  if (fact.present()) fact.value = Version::Parse(fact.raw);
  return fact;
}

VersionFact DriverVersion(const json& labels, const FactSources& sources) {
  VersionFact fact = LabelVersion(labels, sources.driver_version_label);
  if (fact.present()) return fact;
  const std::string& prefix = sources.gfd_driver_label_prefix;
  const std::string major = Label(labels, prefix + ".major");
  if (major.empty()) {
    fact.source = "label " + sources.driver_version_label + " (or " + prefix + ".major/minor/rev)";
    return fact;
  }
  fact.source = "labels " + prefix + ".major/minor/rev";
  fact.raw = major;
  for (const char* part : {".minor", ".rev"}) {
    const std::string value = Label(labels, prefix + part);
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

NodeFacts NodeFactsReader::Read(const json& node) const {
  NodeFacts facts;
  facts.name = StringAt(node, {"metadata", "name"});
  const json empty = json::object();
  const json* labels = &empty;
  if (auto metadata = node.find("metadata"); metadata != node.end() && metadata->is_object()) {
    if (auto found = metadata->find("labels"); found != metadata->end() && found->is_object()) {
      labels = &*found;
    }
  }

  for (const LabelMatch& match : cgpu_enabled_labels_) {
    if (Label(*labels, match.key) == match.value) {
      facts.cgpu_enabled = true;
      facts.cgpu_enabled_by = match.key + "=" + match.value;
      break;
    }
  }
  if (facts.cgpu_enabled &&
      Label(*labels, isolation_disabled_label_.key) == isolation_disabled_label_.value) {
    facts.cgpu_enabled = false;
    facts.cgpu_enabled_by = isolation_disabled_label_.key + "=" + isolation_disabled_label_.value +
                            " turns isolation off";
  }

  facts.cgpu_version = LabelVersion(*labels, sources_.cgpu_version_label);
  if (!sources_.assume_cgpu_version.empty()) {
    facts.cgpu_version.source = "--cgpu-version";
    facts.cgpu_version.raw = sources_.assume_cgpu_version;
    facts.cgpu_version.value = Version::Parse(sources_.assume_cgpu_version);
  }
  facts.driver_version = DriverVersion(*labels, sources_);
  facts.toolkit_version = LabelVersion(*labels, sources_.toolkit_version_label);

  facts.kernel_version.source = "status.nodeInfo.kernelVersion";
  facts.kernel_version.raw = StringAt(node, {"status", "nodeInfo", "kernelVersion"});
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
    facts.instance_type = Label(*labels, key);
    if (!facts.instance_type.empty()) {
      facts.instance_type_source = "label " + key;
      break;
    }
  }
  if (!facts.instance_type.empty()) facts.instance_family = InstanceFamily(facts.instance_type);

  facts.os_image = StringAt(node, {"status", "nodeInfo", "osImage"});
  facts.container_optimized_os =
      !facts.os_image.empty() && std::regex_search(facts.os_image, container_os_);

  if (std::optional<int> max_pods = SmallCount(Label(*labels, sources_.max_pods_per_gpu_label))) {
    facts.max_pods_per_gpu = max_pods;
  }
  facts.gpu_count = SmallCount(StringAt(node, {"status", "capacity", "aliyun.com/gpu-count"}));
  if (!facts.gpu_count)
    facts.gpu_count = SmallCount(Label(*labels, "aliyun.accelerator/nvidia_count"));
  return facts;
}

}  // namespace cgpu
