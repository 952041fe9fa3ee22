#include "shell/check_command.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "adapters/node_list.h"
#include "shell/fact_flags.h"

namespace cgpu {
namespace {

using nlohmann::ordered_json;

struct CheckOptions {
  std::string input = "-";
  std::string output = "table";
  FactOptions facts;
};

std::string Colour(std::string_view text, NodeVerdict verdict, bool colour) {
  if (!colour) return std::string(text);
  const char* code = verdict == NodeVerdict::kIncompatible ? "31"
                     : verdict == NodeVerdict::kUnknown    ? "33"
                     : verdict == NodeVerdict::kCompatible ? "32"
                                                           : "2";
  return "\033[" + std::string(code) + "m" + std::string(text) + "\033[0m";
}

ordered_json FactJson(const VersionFact& fact) {
  return fact.present() ? ordered_json(fact.raw) : ordered_json(nullptr);
}

StatusOr<std::string> ReadInput(const std::string& path) {
  std::ostringstream text;
  if (path == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFound("cannot read " + path);
    text << in.rdbuf();
  }
  return text.str();
}

}  // namespace

std::string FormatCheckTable(const std::vector<CheckedNode>& nodes, bool colour) {
  std::vector<std::vector<std::string>> rows = {{"NODE", "CGPU", "VERDICT", "FINDING"}};
  std::vector<NodeVerdict> verdicts = {NodeVerdict::kNotCgpu};
  for (const CheckedNode& node : nodes) {
    std::string cgpu = !node.facts.cgpu_enabled            ? "-"
                       : node.facts.cgpu_version.present() ? node.facts.cgpu_version.raw
                                                           : "?";
    // Every problem of the node, one line each (worst first, as the evaluation orders them):
    // an upgrade often has to fix more than one thing.
    std::vector<std::string> problems;
    for (const Finding& finding : node.evaluation.findings) {
      if (finding.verdict == RuleVerdict::kCompatible) continue;
      problems.push_back(finding.rule + ": " + finding.message);
    }
    rows.push_back({node.facts.name.empty() ? "(unnamed)" : node.facts.name, cgpu,
                    std::string(ToString(node.evaluation.verdict)),
                    problems.empty() ? "" : problems.front()});
    verdicts.push_back(node.evaluation.verdict);
    for (size_t i = 1; i < problems.size(); ++i) {
      rows.push_back({"", "", "", problems[i]});
      verdicts.push_back(NodeVerdict::kNotCgpu);
    }
  }
  std::vector<size_t> widths(3, 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < 3; ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::ostringstream out;
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < 3; ++c) {
      std::string cell = rows[r][c] + std::string(widths[c] - rows[r][c].size() + 2, ' ');
      const bool continued = r > 0 && rows[r][0].empty();  // a further finding of the node above
      out << (c == 2 && r > 0 && !continued ? Colour(cell, verdicts[r], colour) : cell);
    }
    out << rows[r][3] << "\n";
  }
  return out.str();
}

std::string FormatCheckJson(const std::vector<CheckedNode>& nodes) {
  ordered_json list = ordered_json::array();
  for (const CheckedNode& node : nodes) {
    const NodeFacts& f = node.facts;
    ordered_json findings = ordered_json::array();
    for (const Finding& finding : node.evaluation.findings) {
      findings.push_back({{"rule", finding.rule},
                          {"verdict", ToString(finding.verdict)},
                          {"message", finding.message}});
    }
    list.push_back(
        {{"name", f.name},
         {"cgpu", f.cgpu_enabled},
         {"verdict", ToString(node.evaluation.verdict)},
         {"facts",
          {{"cgpuEnabledBy",
            f.cgpu_enabled_by.empty() ? ordered_json(nullptr) : ordered_json(f.cgpu_enabled_by)},
           {"cgpuVersion", FactJson(f.cgpu_version)},
           {"nvidiaDriverVersion", FactJson(f.driver_version)},
           {"containerToolkitVersion", FactJson(f.toolkit_version)},
           {"kernelVersion", FactJson(f.kernel_version)},
           {"instanceType",
            f.instance_type.empty() ? ordered_json(nullptr) : ordered_json(f.instance_type)},
           {"instanceFamily",
            f.instance_family ? ordered_json(*f.instance_family) : ordered_json(nullptr)},
           {"osImage", f.os_image.empty() ? ordered_json(nullptr) : ordered_json(f.os_image)},
           {"containerOptimizedOs", f.container_optimized_os},
           {"aiInstallerVersion", FactJson(f.ai_installer_version)}}},
         {"findings", std::move(findings)}});
  }
  return ordered_json{{"nodes", std::move(list)}}.dump(2, ' ', false,
                                                       ordered_json::error_handler_t::replace) +
         "\n";
}

int RunCheckCommand(const std::vector<std::string>& args) {
  CheckOptions options;
  std::vector<FlagSpec> specs = {
      FlagSpec{"file", "f", "FILE",
               "nodes to check: kubectl get nodes -o json|yaml output (default -, stdin)",
               [&](std::string_view value) -> Status {
                 options.input = std::string(value);
                 return OkStatus();
               }},
      FlagSpec{"output", "o", "FORMAT", "table (default) or json",
               [&](std::string_view value) -> Status {
                 if (value != "table" && value != "json") {
                   return InvalidArgument("expected table or json, got \"" + std::string(value) +
                                          "\"");
                 }
                 options.output = std::string(value);
                 return OkStatus();
               }},
      FlagSpec{"cgpu-version", "", "VERSION",
               "evaluate every cGPU node as if it ran this cGPU version (upgrade planning)",
               [&](std::string_view value) -> Status {
                 if (!Version::Parse(value)) {
                   return InvalidArgument("\"" + std::string(value) + "\" is not a version");
                 }
                 options.facts.sources.assume_cgpu_version = std::string(value);
                 return OkStatus();
               }},
  };
  for (FlagSpec& spec : FactFlagSpecs(options.facts)) specs.push_back(std::move(spec));

  StatusOr<ParsedArgs> parsed = ParseFlags(args, specs);
  if (!parsed.ok()) {
    std::cerr << "cgpu-guard check: " << parsed.status().message() << "\n";
    return 2;
  }
  if (parsed->help_requested) {
    std::cout << FlagUsage(
        "Usage: kubectl get nodes -o json | cgpu-guard check [flags]\n\n"
        "Checks each cGPU node's facts against the compatibility rules. Exit code 0: no node is\n"
        "incompatible; 1: at least one is; 2: bad input or usage.",
        specs);
    return 0;
  }
  if (!parsed->positional.empty()) {
    std::cerr << "cgpu-guard check: unexpected argument \"" << parsed->positional.front()
              << "\" (use -f FILE)\n";
    return 2;
  }
  StatusOr<RuleTable> rules = LoadConfiguredRules(options.facts);
  if (!rules.ok()) {
    std::cerr << "cgpu-guard check: " << rules.status().message() << "\n";
    return 2;
  }
  StatusOr<NodeFactsReader> reader = NodeFactsReader::Create(options.facts.sources, *rules);
  if (!reader.ok()) {
    std::cerr << "cgpu-guard check: " << reader.status().message() << "\n";
    return 2;
  }
  StatusOr<std::string> input = ReadInput(options.input);
  if (!input.ok()) {
    std::cerr << "cgpu-guard check: " << input.status().message() << "\n";
    return 2;
  }
  StatusOr<std::vector<nlohmann::json>> objects = ReadNodeObjects(*input);
  if (!objects.ok()) {
    std::cerr << "cgpu-guard check: " << options.input << ": " << objects.status().message()
              << "\n";
    return 2;
  }
  std::vector<CheckedNode> nodes;
  bool any_incompatible = false;
  for (const nlohmann::json& object : *objects) {
    CheckedNode node{reader->Read(object), {}};
    node.evaluation = EvaluateNode(node.facts, *rules);
    any_incompatible |= node.evaluation.verdict == NodeVerdict::kIncompatible;
    nodes.push_back(std::move(node));
  }
  if (nodes.empty()) std::cerr << "cgpu-guard check: the input holds no Node objects\n";
  if (options.output == "json") {
    std::cout << FormatCheckJson(nodes);
  } else {
    const bool colour = isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
    std::cout << FormatCheckTable(nodes, colour);
  }
  return any_incompatible ? 1 : 0;
}

}  // namespace cgpu
