#include "core/host_facts.h"

#include <cctype>
#include <vector>

#include "core/text.h"
#include "core/version.h"

namespace cgpu {
namespace {

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.push_back(TrimSpace(text.substr(0, end)));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

// A whole word that is a dotted version with at least major.minor ("535.161.08", "v1.5.10"),
// returned as written without a leading v.
std::optional<std::string> VersionWord(std::string_view word) {
  if (!word.empty() && (word.front() == 'v' || word.front() == 'V')) word.remove_prefix(1);
  if (word.find('.') == std::string_view::npos) return std::nullopt;
  if (!Version::Parse(word)) return std::nullopt;
  return std::string(word);
}

// The value after "<key>:" on a line that starts with it.
std::optional<std::string_view> AfterKey(std::string_view line, std::string_view key) {
  if (line.substr(0, key.size()) != key) return std::nullopt;
  return TrimSpace(line.substr(key.size()));
}

}  // namespace

std::optional<std::string> DriverVersionFromProc(std::string_view text) {
  for (std::string_view line : Lines(text)) {
    const auto rest = AfterKey(line, "NVRM version:");
    if (!rest) continue;
    // The version is the first version-shaped word after "Module" ("Kernel Module",
    // "Open Kernel Module for x86_64"); "x86_64" is not version-shaped.
    bool after_module = false;
    for (std::string_view word : Words(*rest)) {
      if (word == "Module") {
        after_module = true;
      } else if (after_module) {
        if (auto version = VersionWord(word)) return version;
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::string> DriverVersionFromNvidiaSmi(std::string_view output) {
  std::optional<std::string> found;
  for (std::string_view line : Lines(output)) {
    if (line.empty()) continue;
    auto version = VersionWord(line);
    if (!version || (found && *found != *version)) return std::nullopt;  // garbled, or mixed
    found = version;
  }
  return found;
}

std::optional<std::string> CgpuVersionFromText(std::string_view text) {
  const std::vector<std::string_view> lines = Lines(text);
  if (lines.empty()) return std::nullopt;
  const std::vector<std::string_view> words = Words(lines.front());
  if (words.empty()) return std::nullopt;
  // The version is the line's last word: "1.5.10" alone or "cgpu version: 1.5.10".
  return VersionWord(words.back());
}

std::optional<std::string> ToolkitVersionFromCli(std::string_view output) {
  for (std::string_view line : Lines(output)) {
    for (std::string_view key : {"cli-version:", "version:"}) {
      if (auto value = AfterKey(line, key)) return VersionWord(*value);
    }
  }
  return std::nullopt;
}

std::optional<std::string> ToolkitVersionFromCtk(std::string_view output) {
  for (std::string_view line : Lines(output)) {
    if (auto value = AfterKey(line, "NVIDIA Container Toolkit CLI version")) {
      return VersionWord(*value);
    }
  }
  return std::nullopt;
}

namespace {

// "1:1.14.3-1" -> "1.14.3"; "1.14.3~rc.1-1" -> nothing (a pre-release is not the release).
std::optional<std::string> UpstreamVersion(std::string_view package_version) {
  if (const size_t colon = package_version.find(':'); colon != std::string_view::npos) {
    package_version.remove_prefix(colon + 1);
  }
  if (const size_t dash = package_version.rfind('-'); dash != std::string_view::npos) {
    package_version = package_version.substr(0, dash);
  }
  return VersionWord(package_version);
}

}  // namespace

std::optional<std::string> ToolkitVersionFromDpkgStatus(std::string_view status) {
  // Stanzas are separated by blank lines; fields we need: Package, Status, Version.
  std::map<std::string, std::string> installed;  // package -> version
  std::string package, state, version;
  const auto finish = [&] {
    if (!package.empty() && state == "install ok installed") installed[package] = version;
    package.clear();
    state.clear();
    version.clear();
  };
  for (std::string_view line : Lines(status)) {
    if (line.empty()) {
      finish();
    } else if (auto value = AfterKey(line, "Package:")) {
      package = std::string(*value);
    } else if (auto value_status = AfterKey(line, "Status:")) {
      state = std::string(*value_status);
    } else if (auto value_version = AfterKey(line, "Version:")) {
      version = std::string(*value_version);
    }
  }
  finish();
  for (const char* name :
       {"nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools"}) {
    if (auto found = installed.find(name); found != installed.end()) {
      return UpstreamVersion(found->second);
    }
  }
  return std::nullopt;
}

std::optional<std::string> ToolkitVersionFromRpmQuery(std::string_view output) {
  const std::vector<std::string_view> lines = Lines(output);
  if (lines.empty()) return std::nullopt;
  return VersionWord(lines.front());
}

bool IsValidLabelValue(std::string_view value) {
  if (value.empty() || value.size() > 63) return false;
  const auto alphanumeric = [](char c) { return std::isalnum(static_cast<unsigned char>(c)); };
  if (!alphanumeric(value.front()) || !alphanumeric(value.back())) return false;
  for (char c : value) {
    if (!alphanumeric(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

LabelChange DiffOwnedLabels(const std::map<std::string, std::string>& current,
                            const std::map<std::string, std::optional<std::string>>& desired) {
  LabelChange change;
  for (const auto& [key, value] : desired) {
    const auto found = current.find(key);
    if (value) {
      if (found == current.end() || found->second != *value) change[key] = value;
    } else if (found != current.end()) {
      change[key] = std::nullopt;
    }
  }
  return change;
}

}  // namespace cgpu
