#include "shell/check_command.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "adapters/cluster_state_file.h"
#include "adapters/cluster_watch.h"
#include "adapters/kube_client.h"
#include "adapters/kube_config.h"
#include "adapters/node_list.h"
#include "core/placement_policy.h"
#include "shell/fact_flags.h"
#include "shell/version.h"

namespace cgpu {
namespace {

using nlohmann::ordered_json;

struct CheckOptions {
  std::string input = "-";
  bool input_given = false;
  std::string output = "table";
  FactOptions facts;
  // The API server: a kubeconfig (and context), or the pod's service account.
  std::string kubeconfig;
  std::string context;
  bool in_cluster = false;
  PolicyOptions policy;                       // max_pods_per_gpu only
  std::chrono::milliseconds timeout{60'000};  // the whole read of the cluster
  int chunk_size = 500;                       // objects per list page
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

std::string JoinKeys(const std::vector<std::string>& keys) {
  std::string text;
  for (const std::string& key : keys) text += (text.empty() ? "" : ", ") + key;
  return text;
}

// "GPU 0 runs 22 cGPU pods, over its limit of 20 (the most cGPU supports on one GPU): a/b, ..."
std::string DescribeOverLimit(const ClusterCache::GpuOverLimit& gpu) {
  return "GPU " + std::to_string(gpu.gpu) + " runs " + std::to_string(gpu.pods) +
         " cGPU pods, over its limit of " + std::to_string(gpu.limit.value) + " (" +
         gpu.limit.source + "): " + JoinKeys(gpu.pod_keys);
}

// Every line of a node's FINDING column, worst first.
std::vector<std::string> ProblemLines(const CheckedNode& node) {
  std::vector<std::string> lines;
  for (const Finding& finding : node.evaluation.findings) {
    if (finding.verdict == RuleVerdict::kIncompatible) {
      lines.push_back(finding.rule + ": " + finding.message);
    }
  }
  for (const ClusterCache::GpuOverLimit& gpu : node.over_limit) {
    lines.push_back("over-limit: " + DescribeOverLimit(gpu));
  }
  for (const Finding& finding : node.evaluation.findings) {
    if (finding.verdict != RuleVerdict::kIncompatible &&
        finding.verdict != RuleVerdict::kCompatible) {
      lines.push_back(finding.rule + ": " + finding.message);
    }
  }
  if (node.advice.due()) {
    lines.push_back("advice: " + node.advice.message + "; fix: " + node.advice.fix);
  }
  return lines;
}

struct Tally {
  size_t cgpu_nodes = 0;
  size_t incompatible = 0;
  size_t unknown = 0;
  size_t gpus_over_limit = 0;
  size_t advised = 0;
};

Tally Count(const CheckReport& report) {
  Tally tally;
  for (const CheckedNode& node : report.nodes) {
    if (node.facts.cgpu_enabled) ++tally.cgpu_nodes;
    if (node.evaluation.verdict == NodeVerdict::kIncompatible) ++tally.incompatible;
    if (node.evaluation.verdict == NodeVerdict::kUnknown) ++tally.unknown;
    tally.gpus_over_limit += node.over_limit.size();
    if (node.advice.due()) ++tally.advised;
  }
  return tally;
}

std::string Plural(size_t count, const std::string& one, const std::string& many) {
  return std::to_string(count) + " " + (count == 1 ? one : many);
}

std::string DescribeSource(const CheckReport& report) {
  const CheckSource& source = report.source;
  std::string text;
  if (source.kind == "file") {
    text = "file " + (source.path == "-" ? std::string("(standard input)") : source.path);
  } else if (source.kind == "kubeconfig") {
    text = "API server " + source.server + " (kubeconfig " + source.path + ", context " +
           source.context + ")";
  } else {
    text = "API server " + source.server + " (in-cluster)";
  }
  text += ": " + Plural(report.nodes.size(), "node", "nodes") + ", ";
  if (report.pods_checked) return text + Plural(report.pods, "pod", "pods");
  return text +
         "no pods (GPUs over their limit not checked; give kubectl get nodes,pods -A -o json)";
}

}  // namespace

std::string FormatCheckTable(const std::vector<CheckedNode>& nodes, bool colour) {
  std::vector<std::vector<std::string>> rows = {{"NODE", "CGPU", "VERDICT", "FINDING"}};
  std::vector<NodeVerdict> verdicts = {NodeVerdict::kNotCgpu};
  for (const CheckedNode& node : nodes) {
    std::string cgpu = !node.facts.cgpu_enabled            ? "-"
                       : node.facts.cgpu_version.present() ? node.facts.cgpu_version.raw
                                                           : "?";
    // Every problem of the node, one line each, worst first: an upgrade often has to fix more
    // than one thing.
    const std::vector<std::string> problems = ProblemLines(node);
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

std::string FormatAuditTable(const CheckReport& report, bool colour) {
  const Tally tally = Count(report);
  std::string summary = Plural(tally.cgpu_nodes, "cGPU node", "cGPU nodes") + ": " +
                        std::to_string(tally.incompatible) + " incompatible, " +
                        std::to_string(tally.unknown) + " unknown";
  if (report.pods_checked) {
    summary += "; " + Plural(tally.gpus_over_limit, "GPU over its limit", "GPUs over their limit");
  }
  summary += "; " + Plural(tally.advised, "node", "nodes") + " advised to set " +
             std::string(kMaxPodLabel) + " (advice only)";
  return FormatCheckTable(report.nodes, colour) + "\nSource: " + DescribeSource(report) +
         "\nSummary: " + summary + "\n";
}

namespace {

ordered_json NodeJson(const CheckedNode& node) {
  const NodeFacts& f = node.facts;
  ordered_json findings = ordered_json::array();
  for (const Finding& finding : node.evaluation.findings) {
    findings.push_back({{"rule", finding.rule},
                        {"verdict", ToString(finding.verdict)},
                        {"message", finding.message}});
  }
  ordered_json advice = ordered_json::array();
  if (node.advice.due()) {
    advice.push_back({{"rule", "max-pod-label"},
                      {"problem", ToString(node.advice.problem)},
                      {"message", node.advice.message},
                      {"fix", node.advice.fix}});
  }
  ordered_json over_limit = ordered_json::array();
  for (const ClusterCache::GpuOverLimit& gpu : node.over_limit) {
    over_limit.push_back({{"gpu", gpu.gpu},
                          {"pods", gpu.pods},
                          {"limit", gpu.limit.value},
                          {"limitSource", gpu.limit.source},
                          {"podNames", gpu.pod_keys}});
  }
  return {
      {"name", f.name},
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
        {"aiInstallerVersion", FactJson(f.ai_installer_version)},
        {"maxPodLabel", f.max_pod_label ? ordered_json(*f.max_pod_label) : ordered_json(nullptr)},
        {"gpuCount", f.gpu_count ? ordered_json(*f.gpu_count) : ordered_json(nullptr)}}},
      {"findings", std::move(findings)},
      {"advice", std::move(advice)},
      {"gpusOverLimit", std::move(over_limit)}};
}

std::string Dump(const ordered_json& value) {
  return value.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string FormatCheckJson(const std::vector<CheckedNode>& nodes) {
  ordered_json list = ordered_json::array();
  for (const CheckedNode& node : nodes) list.push_back(NodeJson(node));
  return Dump(ordered_json{{"nodes", std::move(list)}});
}

std::string FormatAuditJson(const CheckReport& report) {
  const CheckSource& s = report.source;
  ordered_json source = {{"kind", s.kind}};
  if (s.kind == "file") source["path"] = s.path;
  if (s.kind == "kubeconfig") {
    source["path"] = s.path;
    source["context"] = s.context;
  }
  if (s.kind != "file") source["server"] = s.server;
  ordered_json list = ordered_json::array();
  for (const CheckedNode& node : report.nodes) list.push_back(NodeJson(node));
  const Tally tally = Count(report);
  ordered_json summary = {
      {"nodes", report.nodes.size()},
      {"cgpuNodes", tally.cgpu_nodes},
      {"incompatibleNodes", tally.incompatible},
      {"unknownNodes", tally.unknown},
      {"podsChecked", report.pods_checked},
      {"pods", report.pods_checked ? ordered_json(report.pods) : ordered_json(nullptr)},
      {"gpusOverLimit",
       report.pods_checked ? ordered_json(tally.gpus_over_limit) : ordered_json(nullptr)},
      {"maxPodsPerGpu", report.max_pods_per_gpu},
      {"nodesAdvised", tally.advised},
      {"exitCode", CheckExitCode(report)}};
  return Dump(ordered_json{
      {"source", std::move(source)}, {"nodes", std::move(list)}, {"summary", std::move(summary)}});
}

int CheckExitCode(const CheckReport& report) {
  for (const CheckedNode& node : report.nodes) {
    if (node.evaluation.verdict == NodeVerdict::kIncompatible || !node.over_limit.empty()) {
      return kCheckProblems;
    }
  }
  return kCheckOk;
}

namespace {

constexpr char kUsageText[] =
    "Usage: kubectl get nodes,pods -A -o json | cgpu-guard check [flags]\n"
    "       cgpu-guard check --kubeconfig FILE [--context NAME] [flags]\n"
    "       cgpu-guard check --in-cluster [flags]\n"
    "\n"
    "Audits the cluster: checks each cGPU node's facts against the compatibility rules, reports\n"
    "every GPU that runs more cGPU pods than its limit (the rules' 20, lowered by\n"
    "--max-pods-per-gpu and the node's ack.node.gpu.max-pod label) with its pods, and advises\n"
    "setting ack.node.gpu.max-pod where it is missing, invalid or above the limit (ACK's\n"
    "GPU-sharing scheduler counts pods per GPU only on labelled nodes). Nodes and pods come from "
    "a\n"
    "file or standard input (-f; pods only when the input holds Pods), or from the API server\n"
    "(--kubeconfig, --in-cluster), listed page by page; that needs list on nodes and pods at\n"
    "cluster scope.\n"
    "\n"
    "Exit codes: 0 no node incompatible and no GPU over its limit (advice alone does not count);\n"
    "1 some node incompatible or some GPU over its limit; 2 usage or bad input (file, kubeconfig,\n"
    "rules, flags); 3 the cluster could not be read (API server unreachable, 401, 403, or not\n"
    "done within --timeout).";

// Nodes and pods from the -f input: nodes as ReadNodeObjects reads them (in input order, with its
// errors), pods into `cache` as `serve --cluster-state` loads them.
int ReadFile(const CheckOptions& options, const NodeFactsReader& reader, const RuleTable& rules,
             ClusterCache& cache, CheckReport& report) {
  StatusOr<std::string> input = ReadInput(options.input);
  if (!input.ok()) {
    std::cerr << "cgpu-guard check: " << input.status().message() << "\n";
    return kCheckUsage;
  }
  StatusOr<std::vector<nlohmann::json>> objects = ReadNodeObjects(*input);
  if (!objects.ok()) {
    std::cerr << "cgpu-guard check: " << options.input << ": " << objects.status().message()
              << "\n";
    return kCheckUsage;
  }
  StatusOr<ClusterStateCounts> counts = LoadClusterState(*input, cache);
  if (!counts.ok()) {
    std::cerr << "cgpu-guard check: " << options.input << ": " << counts.status().message() << "\n";
    return kCheckUsage;
  }
  report.source = {"file", options.input, "", ""};
  report.pods_checked = counts->pods > 0;
  report.pods = counts->pods;
  for (const nlohmann::json& object : *objects) {
    CheckedNode node{reader.Read(object), {}, {}, {}};
    node.evaluation = EvaluateNode(node.facts, rules);
    report.nodes.push_back(std::move(node));
  }
  return kCheckOk;
}

// Nodes and pods listed from the API server into `cache`.
int ReadCluster(const CheckOptions& options, ClusterCache& cache, CheckReport& report) {
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  StatusOr<KubeConfig> config =
      options.in_cluster ? InClusterConfig() : LoadKubeconfig(options.kubeconfig, options.context);
  if (!config.ok()) {
    std::cerr << "cgpu-guard check: " << config.status().message()
              << (options.in_cluster ? " (--in-cluster runs in a pod with a service account)" : "")
              << "\n";
    return kCheckUsage;
  }
  KubeClientOptions client_options;
  client_options.version = kVersion;
  const KubeClient client(*config, client_options);
  report.source = {options.in_cluster ? "in-cluster" : "kubeconfig",
                   options.in_cluster ? "" : options.kubeconfig, config->context, ""};
  report.source.server = client.Describe().substr(0, client.Describe().find(' '));
  std::signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write must not kill the process
  ClusterReadOptions read;
  read.page_size = options.chunk_size;
  read.deadline = deadline;
  StatusOr<ClusterReadCounts> counts = ReadClusterOnce(client, cache, read);
  if (!counts.ok()) {
    std::cerr << "cgpu-guard check: cannot read the cluster from " << client.Describe() << ": "
              << counts.status().message();
    if (counts.status().code() == StatusCode::kDeadlineExceeded) {
      std::cerr << " (--timeout " << options.timeout.count() / 1000.0 << "s)";
    }
    std::cerr << "\n";
    return kCheckClusterUnreadable;
  }
  report.pods_checked = true;
  report.pods = counts->pods;
  for (ClusterCache::NodeSnapshot& node : cache.Nodes()) {
    report.nodes.push_back({std::move(node.facts), std::move(node.evaluation), {}, {}});
  }
  return kCheckOk;
}

}  // namespace

int RunCheckCommand(const std::vector<std::string>& args) {
  CheckOptions options;
  std::vector<FlagSpec> specs = {
      FlagSpec{"file", "f", "FILE",
               "nodes (and pods) to check: kubectl get nodes[,pods -A] -o json|yaml output "
               "(default -, stdin)",
               [&](std::string_view value) -> Status {
                 options.input = std::string(value);
                 options.input_given = true;
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
      Flag("kubeconfig", "FILE",
           "read nodes and pods from the API server this kubeconfig names, instead of a file",
           SetString(options.kubeconfig)),
      Flag("context", "NAME", "kubeconfig context (default: its current-context)",
           SetString(options.context)),
      FlagSpec{"in-cluster", "", "",
               "read nodes and pods from the API server with the pod's service account "
               "(KUBERNETES_SERVICE_HOST/PORT)",
               [&](std::string_view) -> Status {
                 options.in_cluster = true;
                 return OkStatus();
               }},
      Flag("timeout", "DURATION", "give up reading the cluster after this long, exit code 3",
           SetDuration(options.timeout)),
      Flag("chunk-size", "N", "nodes or pods per list page from the API server",
           SetInt(options.chunk_size, 1, 100'000)),
      Flag("max-pods-per-gpu", "N",
           "pods per GPU, to go below the rules' limit of 20, as serve's flag (default: the "
           "rules')",
           SetInt(options.policy.max_pods_per_gpu, 1, 1000).ShowingDefault("")),
  };
  for (FlagSpec& spec : FactFlagSpecs(options.facts)) specs.push_back(std::move(spec));

  StatusOr<ParsedArgs> parsed = ParseFlags(args, specs);
  if (!parsed.ok()) {
    std::cerr << "cgpu-guard check: " << parsed.status().message() << "\n";
    return kCheckUsage;
  }
  if (parsed->help_requested) {
    std::cout << FlagUsage(kUsageText, specs);
    return kCheckOk;
  }
  if (!parsed->positional.empty()) {
    std::cerr << "cgpu-guard check: unexpected argument \"" << parsed->positional.front()
              << "\" (use -f FILE)\n";
    return kCheckUsage;
  }
  const bool live = !options.kubeconfig.empty() || options.in_cluster;
  std::string conflict;
  if (!options.kubeconfig.empty() && options.in_cluster) {
    conflict = "--kubeconfig and --in-cluster exclude each other";
  } else if (live && options.input_given) {
    conflict = "-f reads a file; --kubeconfig and --in-cluster read the API server: give one";
  } else if (!options.context.empty() && options.kubeconfig.empty()) {
    conflict = "--context needs --kubeconfig";
  } else if (options.timeout.count() <= 0) {
    conflict = "--timeout must be above zero";
  }
  if (!conflict.empty()) {
    std::cerr << "cgpu-guard check: " << conflict << "\n";
    return kCheckUsage;
  }
  StatusOr<RuleTable> rules = LoadConfiguredRules(options.facts);
  if (!rules.ok()) {
    std::cerr << "cgpu-guard check: " << rules.status().message() << "\n";
    return kCheckUsage;
  }
  StatusOr<NodeFactsReader> reader = NodeFactsReader::Create(options.facts.sources, *rules);
  if (!reader.ok()) {
    std::cerr << "cgpu-guard check: " << reader.status().message() << "\n";
    return kCheckUsage;
  }
  // The webhook's own cluster cache counts the pods: the same ledger, the same rules for which
  // pods hold a GPU (bound, not Succeeded or Failed) and which GPU a pod without one written on
  // it holds (GPU 0 of a one-GPU node).
  ClusterCache cache(*rules, *reader, {});
  CheckReport report;
  const int read = live ? ReadCluster(options, cache, report)
                        : ReadFile(options, *reader, *rules, cache, report);
  if (read != kCheckOk) return read;

  const PodLimit configured = ConfiguredPodsPerGpuLimit(*rules, options.policy);
  report.max_pods_per_gpu = configured.value;
  std::map<std::string, std::vector<ClusterCache::GpuOverLimit>> over_limit;
  for (ClusterCache::GpuOverLimit& gpu : cache.GpusOverLimit(options.policy)) {
    over_limit[gpu.node].push_back(std::move(gpu));
  }
  for (CheckedNode& node : report.nodes) {
    if (!node.facts.cgpu_enabled) continue;
    node.advice = AdviseMaxPodLabel(node.facts.max_pod_label, configured.value, node.facts.name,
                                    options.facts.sources.max_pods_per_gpu_label);
    if (auto it = over_limit.find(node.facts.name); it != over_limit.end()) {
      node.over_limit = std::move(it->second);
      over_limit.erase(it);  // a node listed twice in a file is reported once
    }
  }
  if (report.nodes.empty()) {
    std::cerr << "cgpu-guard check: "
              << (live ? "the cluster has no nodes" : "the input holds no Node objects") << "\n";
  }
  if (options.output == "json") {
    std::cout << FormatAuditJson(report);
  } else {
    const bool colour = isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
    std::cout << FormatAuditTable(report, colour);
  }
  return CheckExitCode(report);
}

}  // namespace cgpu
