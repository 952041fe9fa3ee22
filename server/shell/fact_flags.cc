#include "shell/fact_flags.h"

#include "adapters/embedded_rules.h"
#include "adapters/rules_loader.h"

namespace cgpu {
namespace {

// Any text, "" included. The help shows the target's value as the default unless `show_default`
// is false (the help words it).
FlagSpec TextFlag(std::string name, std::string value_name, std::string help, std::string& target,
                  bool show_default = true) {
  return FlagSpec{std::move(name),
                  "",
                  std::move(value_name),
                  std::move(help),
                  [&target](std::string_view value) -> Status {
                    target = std::string(value);
                    return OkStatus();
                  },
                  show_default ? target : ""};
}

FlagSpec VersionFlag(std::string name, std::string help, std::string& target) {
  return FlagSpec{std::move(name), "", "VERSION", std::move(help),
                  [&target](std::string_view value) -> Status {
                    if (!Version::Parse(value)) {
                      return InvalidArgument("\"" + std::string(value) + "\" is not a version");
                    }
                    target = std::string(value);
                    return OkStatus();
                  }};
}

}  // namespace

std::vector<FlagSpec> FactLabelFlagSpecs(FactLabelKeys& keys) {
  return {
      TextFlag("cgpu-version-label", "KEY", "node label for the cGPU version", keys.cgpu_version),
      TextFlag("driver-version-label", "KEY",
               std::string("node label for the NVIDIA driver version (default ") +
                   kDriverVersionLabel + "; read from nvidia.com/cuda.driver.* when absent)",
               keys.driver_version, /*show_default=*/false),
      TextFlag("toolkit-version-label", "KEY",
               "node label for the nvidia-container-toolkit version", keys.toolkit_version),
  };
}

std::vector<FlagSpec> FactFlagSpecs(FactOptions& o) {
  FactSources& s = o.sources;
  std::vector<FlagSpec> specs = {
      TextFlag("rules", "FILE", "rules YAML replacing the built-in rules/cgpu-rules.yaml",
               o.rules_file),
      VersionFlag("ai-installer-version",
                  "the cluster's ack-ai-installer version (container-optimized OS rule)",
                  s.ai_installer_version),
      TextFlag("container-os-pattern", "REGEX",
               "osImage pattern of container-optimized OS images, case-insensitive",
               s.container_os_pattern),
  };
  std::vector<FlagSpec> labels = FactLabelFlagSpecs(s.labels);
  specs.insert(specs.begin() + 2, labels.begin(), labels.end());
  return specs;
}

StatusOr<RuleTable> LoadConfiguredRules(const FactOptions& options) {
  if (options.rules_file.empty()) return EmbeddedRules();
  return LoadRulesFile(options.rules_file);
}

}  // namespace cgpu
