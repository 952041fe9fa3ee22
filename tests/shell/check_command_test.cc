// `cgpu-guard check` as a process on the ACK fixture nodes, its two output formats as functions,
// and the build-time rules compiler as a process.
#include "shell/check_command.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cluster/cluster_objects.h"
#include "support/fake_api_server.h"
#include "support/fixtures.h"
#include "support/kubeconfig_writer.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::EditedRules;
using testing::kRulesPath;
using testing::LineOf;

const std::string kAckNodes = std::string(CGPU_TEST_FIXTURES) + "/nodes/ack-nodes.json";

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `binary args...` to its end with stdin from `stdin_path`; stdout and stderr apart.
RunResult RunProcess(const std::string& binary, const std::vector<std::string>& args,
                     const std::string& stdin_path = "/dev/null") {
  const std::string dir = testing::MakeTempDir();
  const std::string out_path = dir + "/stdout";
  const std::string err_path = dir + "/stderr";
  // Built before fork: the child of a process with threads (the tests' API server) may only make
  // async-signal-safe calls before exec, and malloc is not one.
  std::vector<char*> argv{const_cast<char*>(binary.c_str())};
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int in = open(stdin_path.c_str(), O_RDONLY);
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  RunResult result;
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid) {
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  result.out = ReadAll(out_path);
  result.err = ReadAll(err_path);
  std::filesystem::remove_all(dir);
  return result;
}

RunResult Check(std::vector<std::string> args, const std::string& stdin_path = "/dev/null") {
  args.insert(args.begin(), "check");
  return RunProcess(CGPU_GUARD_BINARY, args, stdin_path);
}

// One directory for the files the tests write, removed when the test binary exits.
const std::string& ScratchDir() {
  static const struct Scratch {
    std::string path = testing::MakeTempDir();
    ~Scratch() { std::filesystem::remove_all(path); }
  } kScratch;
  return kScratch.path;
}

// A new file in ScratchDir(): `name` with a counter, so no test overwrites another's file.
std::string WriteTemp(const std::string& name, const std::string& content) {
  static int counter = 0;
  const std::string path = ScratchDir() + "/" + std::to_string(++counter) + "-" + name;
  testing::WriteFile(path, content);
  return path;
}

// Node name -> verdict, from the table: NODE CGPU VERDICT FINDING.
std::map<std::string, std::string> TableVerdicts(const std::string& table) {
  std::map<std::string, std::string> verdicts;
  std::istringstream lines(table);
  std::string line;
  EXPECT_TRUE(std::getline(lines, line));
  EXPECT_EQ(line.rfind("NODE ", 0), 0u) << line;
  while (std::getline(lines, line)) {
    if (line.empty()) break;                // the source and summary follow
    if (line.rfind(' ', 0) == 0) continue;  // a further finding of the node above
    std::istringstream words(line);
    std::string name, cgpu, verdict;
    words >> name >> cgpu >> verdict;
    verdicts[name] = verdict;
  }
  return verdicts;
}

std::map<std::string, std::string> JsonVerdicts(const json& report) {
  std::map<std::string, std::string> verdicts;
  for (const json& node : report.at("nodes")) verdicts[node.at("name")] = node.at("verdict");
  return verdicts;
}

const json& NodeNamed(const json& report, const std::string& name) {
  for (const json& node : report.at("nodes")) {
    if (node.at("name") == name) return node;
  }
  ADD_FAILURE() << "no node " << name;
  static const json kNone = json::object();
  return kNone;
}

const std::map<std::string, std::string> kFixtureVerdicts = {
    {"gpu-compatible", "compatible"},  {"gpu-old-cgpu", "incompatible"},
    {"gpu-no-facts", "unknown"},       {"gpu-container-os", "incompatible"},
    {"gpu-gfd-driver", "compatible"},  {"gpu-share-only", "not-cgpu"},
    {"gpu-isolation-off", "not-cgpu"}, {"cpu-worker", "not-cgpu"},
};

TEST(CheckBinaryTest, TableNamesEachNodeWithItsVerdict) {
  RunResult result = Check({"-f", kAckNodes});
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(TableVerdicts(result.out), kFixtureVerdicts) << result.out;
  EXPECT_EQ(result.out.find('\033'), std::string::npos) << "no colour when stdout is a file";
  std::istringstream lines(result.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("gpu-old-cgpu ", 0) == 0) {
      EXPECT_NE(line.find(" 1.5.2 "), std::string::npos) << line;
      EXPECT_NE(line.find("driver: cGPU 1.5.2 does not support NVIDIA driver 535.104.05"),
                std::string::npos)
          << line;
    }
    if (line.rfind("gpu-container-os ", 0) == 0) {
      EXPECT_NE(line.find("container-os: "), std::string::npos) << line;
    }
    if (line.rfind("gpu-no-facts ", 0) == 0) {
      EXPECT_NE(line.find(" ? "), std::string::npos) << line;
    }
    if (line.rfind("cpu-worker ", 0) == 0) {
      EXPECT_NE(line.find(" - "), std::string::npos) << line;
    }
  }
}

TEST(CheckBinaryTest, JsonReport) {
  RunResult result = Check({"-f", kAckNodes, "-o", "json"});
  EXPECT_EQ(result.exit_code, 1) << result.err;
  const json report = json::parse(result.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << result.out;
  ASSERT_TRUE(report.at("nodes").is_array());
  EXPECT_EQ(JsonVerdicts(report), kFixtureVerdicts);

  for (const json& node : report.at("nodes")) {
    SCOPED_TRACE(node.dump());
    ASSERT_TRUE(node.at("name").is_string());
    ASSERT_TRUE(node.at("cgpu").is_boolean());
    ASSERT_TRUE(node.at("verdict").is_string());
    ASSERT_TRUE(node.at("facts").is_object());
    ASSERT_TRUE(node.at("findings").is_array());
    std::string worst = "compatible";
    for (const json& finding : node.at("findings")) {
      ASSERT_TRUE(finding.at("rule").is_string());
      ASSERT_TRUE(finding.at("verdict").is_string());
      ASSERT_TRUE(finding.at("message").is_string());
      EXPECT_FALSE(finding.at("message").get<std::string>().empty());
      const std::string verdict = finding.at("verdict");
      if (verdict == "incompatible") worst = verdict;
      if (verdict == "unknown" && worst != "incompatible") worst = verdict;
    }
    if (node.at("cgpu")) {
      EXPECT_FALSE(node.at("findings").empty());
      EXPECT_EQ(node.at("verdict"), worst) << "the node's verdict is its worst finding's";
    } else {
      EXPECT_TRUE(node.at("findings").empty());
      EXPECT_EQ(node.at("verdict"), "not-cgpu");
    }
  }

  const json& old = NodeNamed(report, "gpu-old-cgpu");
  EXPECT_EQ(old.at("facts").at("cgpuEnabledBy"), "ack.node.gpu.schedule=core_mem");
  EXPECT_EQ(old.at("facts").at("cgpuVersion"), "1.5.2");
  EXPECT_EQ(old.at("facts").at("nvidiaDriverVersion"), "535.104.05");
  EXPECT_EQ(old.at("facts").at("instanceFamily"), "gn6i");
  EXPECT_EQ(old.at("findings").at(0).at("rule"), "driver");
  EXPECT_EQ(old.at("findings").at(0).at("verdict"), "incompatible");

  const json& gfd = NodeNamed(report, "gpu-gfd-driver");
  EXPECT_EQ(gfd.at("facts").at("nvidiaDriverVersion"), "470.82.01");
  EXPECT_EQ(gfd.at("facts").at("kernelVersion"), "5.15.0-101-generic");

  const json& os = NodeNamed(report, "gpu-container-os");
  EXPECT_EQ(os.at("facts").at("containerOptimizedOs"), true);
  EXPECT_EQ(os.at("findings").at(0).at("rule"), "container-os");
  EXPECT_TRUE(os.at("facts").at("aiInstallerVersion").is_null());

  const json& cpu = NodeNamed(report, "cpu-worker");
  EXPECT_EQ(cpu.at("cgpu"), false);
  EXPECT_TRUE(cpu.at("facts").at("cgpuVersion").is_null());
  EXPECT_TRUE(cpu.at("facts").at("cgpuEnabledBy").is_null());

  const json& off = NodeNamed(report, "gpu-isolation-off");
  EXPECT_EQ(off.at("facts").at("cgpuEnabledBy"), "cgpu.disable.isolation=true turns isolation off");

  // Both formats agree.
  EXPECT_EQ(TableVerdicts(Check({"-f", kAckNodes}).out), JsonVerdicts(report));
}

TEST(CheckBinaryTest, AssumedCgpuVersionPlansAnUpgrade) {
  RunResult result = Check({"-f", kAckNodes, "-o", "json", "--cgpu-version", "1.5.20"});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  const json report = json::parse(result.out);
  std::map<std::string, std::string> verdicts = JsonVerdicts(report);
  EXPECT_EQ(verdicts["gpu-old-cgpu"], "compatible");
  EXPECT_EQ(verdicts["gpu-container-os"], "compatible");
  EXPECT_EQ(verdicts["gpu-compatible"], "compatible");
  // A missing driver version stays unknown whatever the cGPU version.
  EXPECT_EQ(verdicts["gpu-no-facts"], "unknown");
  EXPECT_EQ(verdicts["gpu-share-only"], "not-cgpu");
  for (const json& node : report.at("nodes")) {
    EXPECT_NE(node.at("verdict"), "incompatible") << node.dump();
    if (node.at("cgpu")) {
      EXPECT_EQ(node.at("facts").at("cgpuVersion"), "1.5.20");
    }
  }
}

TEST(CheckBinaryTest, AiInstallerVersionClearsTheContainerOsFinding) {
  RunResult result = Check({"-f", kAckNodes, "-o", "json", "--ai-installer-version", "1.12.6"});
  EXPECT_EQ(result.exit_code, 1) << "gpu-old-cgpu is still incompatible";
  const json report = json::parse(result.out);
  const json& os = NodeNamed(report, "gpu-container-os");
  EXPECT_EQ(os.at("verdict"), "compatible");
  EXPECT_EQ(os.at("facts").at("aiInstallerVersion"), "1.12.6");
}

TEST(CheckBinaryTest, ReadsStandardInput) {
  const RunResult from_file = Check({"-f", kAckNodes});
  const RunResult dash = Check({"-f", "-"}, kAckNodes);
  const RunResult implicit = Check({}, kAckNodes);
  EXPECT_EQ(dash.exit_code, 1) << dash.err;
  EXPECT_EQ(implicit.exit_code, 1) << implicit.err;
  // The same report but for where it came from.
  const std::string source = "Source: file " + kAckNodes + ":";
  const std::string stdin_source = "Source: file (standard input):";
  ASSERT_NE(from_file.out.find(source), std::string::npos) << from_file.out;
  ASSERT_NE(dash.out.find(stdin_source), std::string::npos) << dash.out;
  std::string expected = from_file.out;
  expected.replace(expected.find(source), source.size(), stdin_source);
  EXPECT_EQ(dash.out, expected);
  EXPECT_EQ(implicit.out, expected);
  EXPECT_EQ(TableVerdicts(implicit.out), kFixtureVerdicts);
}

// The fixture as `kubectl get nodes -o yaml` would print it.
void EmitYaml(const json& value, YAML::Emitter& out) {
  if (value.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [key, item] : value.items()) {
      out << YAML::Key << key << YAML::Value;
      EmitYaml(item, out);
    }
    out << YAML::EndMap;
  } else if (value.is_array()) {
    out << YAML::BeginSeq;
    for (const json& item : value) EmitYaml(item, out);
    out << YAML::EndSeq;
  } else if (value.is_string()) {
    out << value.get<std::string>();
  } else {
    out << value.dump();
  }
}

TEST(CheckBinaryTest, YamlInputGivesTheSameReport) {
  YAML::Emitter emitter;
  EmitYaml(json::parse(ReadAll(kAckNodes)), emitter);
  ASSERT_TRUE(emitter.good()) << emitter.GetLastError();
  const std::string yaml_path = WriteTemp("nodes.yaml", std::string(emitter.c_str()) + "\n");
  ASSERT_EQ(ReadAll(yaml_path).rfind("apiVersion: v1\n", 0), 0u);

  // The same report but for where it came from.
  auto without_source = [](const std::string& text) {
    json report = json::parse(text);
    report.erase("source");
    return report;
  };
  const RunResult from_json = Check({"-f", kAckNodes, "-o", "json"});
  const RunResult from_yaml = Check({"-f", yaml_path, "-o", "json"});
  EXPECT_EQ(from_yaml.exit_code, 1) << from_yaml.err;
  EXPECT_EQ(without_source(from_yaml.out), without_source(from_json.out));
  EXPECT_EQ(without_source(Check({"-o", "json"}, yaml_path).out), without_source(from_json.out))
      << "YAML on stdin";
  EXPECT_EQ(json::parse(from_yaml.out).at("source").at("path"), yaml_path);
}

TEST(CheckBinaryTest, MultiDocumentYaml) {
  const std::string path =
      WriteTemp("nodes.yaml",
                "kind: Node\n"
                "metadata:\n"
                "  name: first\n"
                "  labels: {ack.node.gpu.schedule: share}\n"
                "---\n"
                "kind: Node\n"
                "metadata:\n"
                "  name: second\n"
                "  labels: {cgpu: true, cgpu-guard.io/cgpu-version: 1.5.20}\n");
  RunResult result = Check({"-f", path});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::map<std::string, std::string> verdicts = TableVerdicts(result.out);
  EXPECT_EQ(verdicts["first"], "not-cgpu");
  EXPECT_EQ(verdicts["second"], "unknown") << result.out;
}

TEST(CheckBinaryTest, NoNodesIsNotAnError) {
  RunResult result = Check({"-f", WriteTemp("empty.json", R"({"kind": "List", "items": []})")});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.err, "cgpu-guard check: the input holds no Node objects\n");
  EXPECT_EQ(TableVerdicts(result.out).size(), 0u);
}

TEST(CheckBinaryTest, UsageAndInputErrorsExitTwo) {
  const std::string malformed = WriteTemp("malformed.json", "{\"kind\": \"List\", \"items\": [");
  const std::string empty = WriteTemp("empty.json", "\n");
  const std::string pod = WriteTemp("pod.json", R"({"kind": "Pod"})");
  const std::string deep =
      WriteTemp("deep.json", R"({"kind": "Node", "x": )" + std::string(100000, '[') +
                                 std::string(100000, ']') + "}");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"-f", "/nonexistent/nodes.json"}, "cgpu-guard check: cannot read /nonexistent/nodes.json"},
      {{"-f", malformed}, malformed + ": input looks like JSON but does not parse"},
      {{"-f", empty}, empty + ": input is empty"},
      {{"-f", pod}, pod + ": expected a Node, NodeList or List, got kind \"Pod\""},
      {{"-f", deep}, deep + ": input is nested more than 128 levels deep"},
      {{"-f", kAckNodes, "--frobnicate"}, "unknown flag --frobnicate"},
      {{"-f", kAckNodes, "-o", "xml"}, "expected table or json, got \"xml\""},
      {{"-f", kAckNodes, "--cgpu-version", "abc"}, "\"abc\" is not a version"},
      {{"-f", kAckNodes, "--ai-installer-version", "1.12.x"}, "\"1.12.x\" is not a version"},
      {{"-f", kAckNodes, "--container-os-pattern", "("}, "container OS pattern \"(\""},
      {{"-f", kAckNodes, "--rules", "/nonexistent/rules.yaml"},
       "cannot read rules file /nonexistent/rules.yaml"},
      {{kAckNodes}, "unexpected argument"},
  };
  for (const Case& c : cases) {
    RunResult result = Check(c.args);
    EXPECT_EQ(result.exit_code, 2) << c.args.back() << "\n" << result.err;
    EXPECT_NE(result.err.find(c.message), std::string::npos)
        << "expected \"" << c.message << "\" in: " << result.err;
    EXPECT_EQ(result.out, "") << c.args.back();
  }
}

TEST(CheckBinaryTest, BadRulesFileNamesFileAndLine) {
  const std::string text = EditedRules("  max: 20", "  max: twenty");
  const std::string rules = WriteTemp("rules.yaml", text);
  RunResult result = Check({"-f", kAckNodes, "--rules", rules});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(result.err,
            "cgpu-guard check: " + rules + ":" + std::to_string(LineOf(text, "max: twenty")) +
                ": pods_per_gpu.max: \"twenty\" is not a whole number from 1 to 1000\n");

  const std::string broken = EditedRules("  max: 20", "  max: [20");
  const std::string broken_path = WriteTemp("rules.yaml", broken);
  result = Check({"-f", kAckNodes, "--rules", broken_path});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find(broken_path + ":" + std::to_string(LineOf(broken, "  symptom:")) +
                            ": not valid YAML"),
            std::string::npos)
      << result.err;
}

TEST(CheckBinaryTest, RulesFileReplacesTheBuiltInRules) {
  // The unchanged file gives the built-in verdicts.
  const std::string same = WriteTemp("rules.yaml", ReadAll(kRulesPath));
  RunResult result = Check({"-f", kAckNodes, "-o", "json", "--rules", same});
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_EQ(JsonVerdicts(json::parse(result.out)), kFixtureVerdicts);

  // Newest cGPU supports kernels only up to 5.4: gpu-compatible runs 5.10.
  const std::string narrower =
      WriteTemp("rules.yaml", EditedRules("supported: [\"3.x\", \"4.x\", \"5.x <= 5.15\"]",
                                          "supported: [\"3.x\", \"4.x\", \"5.x <= 5.4\"]"));
  result = Check({"-f", kAckNodes, "-o", "json", "--rules", narrower});
  EXPECT_EQ(result.exit_code, 1) << result.err;
  const json report = json::parse(result.out);
  const json& node = NodeNamed(report, "gpu-compatible");
  EXPECT_EQ(node.at("verdict"), "incompatible");
  EXPECT_EQ(node.at("findings").at(0).at("rule"), "kernel");

  // With every node planned onto 1.5.20, the changed row alone decides the exit code.
  EXPECT_EQ(Check({"-f", kAckNodes, "--cgpu-version", "1.5.20"}).exit_code, 0);
  EXPECT_EQ(Check({"-f", kAckNodes, "--cgpu-version", "1.5.20", "--rules", narrower}).exit_code, 1);
}

TEST(CheckBinaryTest, EnablingLabelsComeFromTheRulesFile) {
  // Dropping core_mem from the enabling labels makes gpu-old-cgpu a plain GPU node.
  const std::string rules = WriteTemp(
      "rules.yaml", EditedRules("  - {key: ack.node.gpu.schedule, value: core_mem}\n", ""));
  RunResult result = Check({"-f", kAckNodes, "-o", "json", "--rules", rules});
  const json report = json::parse(result.out);
  EXPECT_EQ(NodeNamed(report, "gpu-old-cgpu").at("verdict"), "not-cgpu");
  EXPECT_EQ(NodeNamed(report, "gpu-compatible").at("verdict"), "compatible");
}

TEST(CheckBinaryTest, Help) {
  RunResult result = Check({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* flag :
       {"--file", "--output", "--cgpu-version", "--rules", "--ai-installer-version",
        "--container-os-pattern", "--kubeconfig", "--context", "--in-cluster", "--timeout",
        "--chunk-size", "--max-pods-per-gpu"}) {
    EXPECT_NE(result.out.find(flag), std::string::npos) << flag << "\n" << result.out;
  }
  for (const char* code : {"Exit codes: 0 no node incompatible and no GPU over its limit",
                           "1 some node incompatible or some GPU over its limit",
                           "2 usage or bad input", "3 the cluster could not be read"}) {
    EXPECT_NE(result.out.find(code), std::string::npos) << code << "\n" << result.out;
  }
}

// ---- check as an audit: pods, GPUs over their limit, the max-pod advice ----

using testing::FakeApiServer;
using testing::MakeList;
using testing::MakeNode;
using testing::MakePod;
using testing::RecordedRequest;
using testing::RequestKind;

json AuditNode(const std::string& name, int gpus, const std::string& max_pod = "") {
  json node = MakeNode({.name = name, .gpus = gpus});
  if (!max_pod.empty()) node["metadata"]["labels"]["ack.node.gpu.max-pod"] = max_pod;
  return node;
}

// `count` running cGPU pods named <prefix>-<i> on GPU `gpu` of `node`.
std::vector<json> AuditPods(const std::string& prefix, const std::string& node, int gpu, int count,
                            testing::GpuScheme scheme = testing::GpuScheme::kAllocationAnnotation) {
  std::vector<json> pods;
  for (int i = 0; i < count; ++i) {
    pods.push_back(MakePod({.name = prefix + "-" + std::to_string(i),
                            .node = node,
                            .gpus = {gpu},
                            .scheme = scheme,
                            .namespace_name = "team"}));
  }
  return pods;
}

// gpu-a: GPU 0 holds 21 running pods (over 20; two finished pods and a plain pod beside them do
// not count), GPU 1 holds 20 (at the limit, not over). gpu-b: its label says 4 and GPU 2 holds 5.
// gpu-c: one GPU, no label, 3 pods without a GPU written on them (GPU 0 of a one-GPU node).
// plain: not a cGPU node.
std::vector<json> AuditCluster() {
  std::vector<json> items = {AuditNode("gpu-a", 8, "20"), AuditNode("gpu-b", 8, "4"),
                             AuditNode("gpu-c", 1), MakeNode({.name = "plain", .schedule = ""})};
  auto add = [&](std::vector<json> pods) {
    for (json& pod : pods) items.push_back(std::move(pod));
  };
  add(AuditPods("a0", "gpu-a", 0, 21));
  add(AuditPods("a1", "gpu-a", 1, 20));
  items.push_back(MakePod({.name = "done", .node = "gpu-a", .gpus = {0}, .phase = "Succeeded"}));
  items.push_back(MakePod({.name = "failed", .node = "gpu-a", .gpus = {0}, .phase = "Failed"}));
  items.push_back(MakePod({.name = "cpu", .node = "gpu-a", .gpus = {0}, .cgpu = false}));
  add(AuditPods("b2", "gpu-b", 2, 5));
  add(AuditPods("c", "gpu-c", 0, 3, testing::GpuScheme::kNone));
  return items;
}

std::vector<std::string> AuditNames(const std::string& prefix, int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.push_back("team/" + prefix + "-" + std::to_string(i));
  std::sort(names.begin(), names.end());
  return names;
}

// The lines of `table` that belong to node `name`: its row and the further lines under it.
std::vector<std::string> AuditNodeLines(const std::string& table, const std::string& name) {
  std::vector<std::string> lines;
  std::istringstream in(table);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.empty()) break;
    if (line.rfind(' ', 0) != 0) inside = line.rfind(name + " ", 0) == 0;
    if (inside) lines.push_back(line);
  }
  return lines;
}

bool AuditHasLine(const std::vector<std::string>& lines, const std::string& text) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& line) { return line.find(text) != std::string::npos; });
}

TEST(CheckAuditTest, FileWithPodsReportsGpusOverTheirLimitWithTheirPods) {
  const std::string path = WriteTemp("cluster.json", MakeList(AuditCluster()));
  const RunResult table = Check({"-f", path});
  EXPECT_EQ(table.exit_code, 1) << table.out << table.err;
  EXPECT_EQ(table.err, "");
  EXPECT_EQ(TableVerdicts(table.out), (std::map<std::string, std::string>{{"gpu-a", "compatible"},
                                                                          {"gpu-b", "compatible"},
                                                                          {"gpu-c", "compatible"},
                                                                          {"plain", "not-cgpu"}}))
      << table.out;

  std::string a_pods;
  for (const std::string& name : AuditNames("a0", 21))
    a_pods += (a_pods.empty() ? "" : ", ") + name;
  const std::vector<std::string> a = AuditNodeLines(table.out, "gpu-a");
  ASSERT_EQ(a.size(), 1u) << table.out;  // one GPU over, and no advice: its label is 20
  EXPECT_NE(a[0].find("over-limit: GPU 0 runs 21 cGPU pods, over its limit of 20 (the most cGPU "
                      "supports on one GPU): " +
                      a_pods),
            std::string::npos)
      << a[0];
  EXPECT_EQ(a[0].find("team/a1-"), std::string::npos) << "GPU 1 is at its limit, not over";
  EXPECT_EQ(a[0].find("done"), std::string::npos) << "finished pods do not count";
  EXPECT_EQ(a[0].find("failed"), std::string::npos);

  const std::vector<std::string> b = AuditNodeLines(table.out, "gpu-b");
  ASSERT_EQ(b.size(), 1u) << table.out;
  EXPECT_NE(b[0].find("over-limit: GPU 2 runs 5 cGPU pods, over its limit of 4 (the node's "
                      "ack.node.gpu.max-pod limit): team/b2-0, team/b2-1, team/b2-2, team/b2-3, "
                      "team/b2-4"),
            std::string::npos)
      << b[0];

  const std::vector<std::string> c = AuditNodeLines(table.out, "gpu-c");
  ASSERT_EQ(c.size(), 1u) << table.out;
  EXPECT_NE(c[0].find("advice: no ack.node.gpu.max-pod label: "), std::string::npos) << c[0];
  EXPECT_NE(c[0].find("; fix: kubectl label node gpu-c ack.node.gpu.max-pod=20 --overwrite"),
            std::string::npos)
      << c[0];
  EXPECT_EQ(AuditNodeLines(table.out, "plain").size(), 1u) << "no advice for a plain node";

  EXPECT_NE(table.out.find("\n\nSource: file " + path + ": 4 nodes, 52 pods\n"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("\nSummary: 3 cGPU nodes: 0 incompatible, 0 unknown; 2 GPUs over "
                           "their limit; 1 node advised to set ack.node.gpu.max-pod (advice "
                           "only)\n"),
            std::string::npos)
      << table.out;

  const RunResult out = Check({"-f", path, "-o", "json"});
  EXPECT_EQ(out.exit_code, 1) << out.err;
  const json report = json::parse(out.out);
  EXPECT_EQ(report.at("source"), json::parse(R"({"kind": "file", "path": ")" + path + R"("})"));
  EXPECT_EQ(report.at("summary"), json::parse(R"({"nodes": 4, "cgpuNodes": 3,
      "incompatibleNodes": 0, "unknownNodes": 0, "podsChecked": true, "pods": 52,
      "gpusOverLimit": 2, "maxPodsPerGpu": 20, "nodesAdvised": 1, "exitCode": 1})"));
  const json& ja = NodeNamed(report, "gpu-a");
  ASSERT_EQ(ja.at("gpusOverLimit").size(), 1u);
  EXPECT_EQ(ja.at("gpusOverLimit")[0].at("gpu"), 0);
  EXPECT_EQ(ja.at("gpusOverLimit")[0].at("pods"), 21);
  EXPECT_EQ(ja.at("gpusOverLimit")[0].at("limit"), 20);
  EXPECT_EQ(ja.at("gpusOverLimit")[0].at("limitSource"), "the most cGPU supports on one GPU");
  EXPECT_EQ(ja.at("gpusOverLimit")[0].at("podNames"), json(AuditNames("a0", 21)));
  EXPECT_EQ(ja.at("advice"), json::array());
  EXPECT_EQ(ja.at("facts").at("maxPodLabel"), "20");
  EXPECT_EQ(ja.at("facts").at("gpuCount"), 8);
  const json& jb = NodeNamed(report, "gpu-b");
  EXPECT_EQ(jb.at("gpusOverLimit")[0].at("limit"), 4);
  EXPECT_EQ(jb.at("gpusOverLimit")[0].at("limitSource"), "the node's ack.node.gpu.max-pod limit");
  const json& jc = NodeNamed(report, "gpu-c");
  EXPECT_EQ(jc.at("gpusOverLimit"), json::array());
  ASSERT_EQ(jc.at("advice").size(), 1u);
  EXPECT_EQ(jc.at("advice")[0].at("rule"), "max-pod-label");
  EXPECT_EQ(jc.at("advice")[0].at("problem"), "missing");
  EXPECT_EQ(jc.at("advice")[0].at("fix"),
            "kubectl label node gpu-c ack.node.gpu.max-pod=20 --overwrite");
  EXPECT_TRUE(jc.at("facts").at("maxPodLabel").is_null());
  EXPECT_EQ(jc.at("verdict"), "compatible") << "advice is never a verdict";
  for (const json& finding : jc.at("findings")) EXPECT_NE(finding.at("rule"), "max-pod-label");
  EXPECT_EQ(NodeNamed(report, "plain").at("advice"), json::array());
}

// A lower --max-pods-per-gpu lowers every node's limit, and the label gpu-a carries (20) is now
// above it: advice to set it to 10.
TEST(CheckAuditTest, MaxPodsPerGpuLowersTheLimit) {
  const std::string path = WriteTemp("cluster.json", MakeList(AuditCluster()));
  const RunResult out = Check({"-f", path, "-o", "json", "--max-pods-per-gpu", "10"});
  EXPECT_EQ(out.exit_code, 1) << out.err;
  const json report = json::parse(out.out);
  EXPECT_EQ(report.at("summary").at("maxPodsPerGpu"), 10);
  const json& a = NodeNamed(report, "gpu-a");
  ASSERT_EQ(a.at("gpusOverLimit").size(), 2u);
  EXPECT_EQ(a.at("gpusOverLimit")[1].at("gpu"), 1);
  EXPECT_EQ(a.at("gpusOverLimit")[1].at("pods"), 20);
  EXPECT_EQ(a.at("gpusOverLimit")[1].at("limit"), 10);
  EXPECT_EQ(a.at("gpusOverLimit")[1].at("limitSource"), "the limit set by --max-pods-per-gpu");
  ASSERT_EQ(a.at("advice").size(), 1u);
  EXPECT_EQ(a.at("advice")[0].at("problem"), "above-limit");
  EXPECT_EQ(a.at("advice")[0].at("fix"),
            "kubectl label node gpu-a ack.node.gpu.max-pod=10 --overwrite");
  EXPECT_EQ(NodeNamed(report, "gpu-b").at("advice"), json::array()) << "4 is below 10";
  EXPECT_EQ(Check({"-f", path, "--max-pods-per-gpu", "0"}).exit_code, 2);
}

TEST(CheckAuditTest, AdviceAloneExitsZero) {
  std::vector<json> items = {AuditNode("gpu-c", 1), AuditNode("gpu-d", 2, "many"),
                             AuditNode("gpu-e", 2, "12")};
  for (json& pod : AuditPods("c", "gpu-c", 0, 20)) items.push_back(std::move(pod));
  const std::string path = WriteTemp("cluster.json", MakeList(items));
  const RunResult table = Check({"-f", path});
  EXPECT_EQ(table.exit_code, 0) << table.out << table.err;
  EXPECT_TRUE(AuditHasLine(AuditNodeLines(table.out, "gpu-c"), "advice: no ack.node.gpu.max-pod"))
      << table.out;
  EXPECT_TRUE(AuditHasLine(AuditNodeLines(table.out, "gpu-d"),
                           "advice: ack.node.gpu.max-pod=\"many\" is not a positive whole number"))
      << table.out;
  EXPECT_EQ(AuditNodeLines(table.out, "gpu-e").size(), 1u);
  EXPECT_FALSE(AuditHasLine(AuditNodeLines(table.out, "gpu-e"), "advice")) << table.out;
  EXPECT_NE(table.out.find("0 GPUs over their limit; 2 nodes advised"), std::string::npos)
      << table.out;

  const RunResult out = Check({"-f", path, "-o", "json"});
  EXPECT_EQ(out.exit_code, 0);
  const json report = json::parse(out.out);
  EXPECT_EQ(report.at("summary").at("nodesAdvised"), 2);
  EXPECT_EQ(report.at("summary").at("gpusOverLimit"), 0);
  EXPECT_EQ(report.at("summary").at("exitCode"), 0);
  EXPECT_EQ(NodeNamed(report, "gpu-d").at("advice")[0].at("problem"), "invalid");
}

// Nodes alone (kubectl get nodes): no pods, so nothing is said of GPUs over their limit.
TEST(CheckAuditTest, NodesAloneDoNotCheckPods) {
  const RunResult out = Check({"-f", kAckNodes, "-o", "json"});
  const json report = json::parse(out.out);
  EXPECT_EQ(report.at("summary").at("podsChecked"), false);
  EXPECT_TRUE(report.at("summary").at("pods").is_null());
  EXPECT_TRUE(report.at("summary").at("gpusOverLimit").is_null());
  EXPECT_EQ(report.at("summary").at("nodesAdvised"), 5) << "every cGPU node of the fixture";
  const RunResult table = Check({"-f", kAckNodes});
  EXPECT_NE(table.out.find("8 nodes, no pods (GPUs over their limit not checked; give kubectl get "
                           "nodes,pods -A -o json)"),
            std::string::npos)
      << table.out;
}

// ---- check against the API server (the tests' FakeApiServer: real HTTPS, paged lists) ----

class CheckLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    testing::WriteFile(dir_ + "/api-ca.crt", api_.ca_pem());
    api_.RequireToken("s3cret");
    for (json& item : AuditCluster()) {
      const bool node = item.at("kind") == "Node";
      api_.Add(node ? "nodes" : "pods", std::move(item));
    }
    // current-context names an API server that is not there: only --context live reaches ours.
    WriteKubeconfig("dead", dead_port());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A port where nothing listens: a server's, once it has stopped.
  int dead_port() {
    static const int port = [] {
      FakeApiServer gone;
      const int p = gone.port();
      gone.Stop();
      return p;
    }();
    return port;
  }

  void WriteKubeconfig(const std::string& current, int dead) {
    testing::WriteFile(dir_ + "/kubeconfig",
                       testing::KubeconfigText({{"live", api_.port()}, {"dead", dead}}, current,
                                               "api-ca.crt", "token: s3cret"));
  }

  RunResult CheckLive(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--kubeconfig", dir_ + "/kubeconfig", "--context", "live"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Check(args);
  }

  std::vector<RecordedRequest> Lists(const std::string& path) {
    std::vector<RecordedRequest> lists;
    for (const RecordedRequest& request : api_.requests()) {
      if (request.kind == RequestKind::kList && request.path == path) lists.push_back(request);
    }
    return lists;
  }

  FakeApiServer api_;
  std::string dir_;
};

TEST_F(CheckLiveTest, ReadsNodesAndPodsOverSeveralPages) {
  const RunResult out = CheckLive({"-o", "json", "--chunk-size", "3"});
  EXPECT_EQ(out.exit_code, 1) << out.err;
  EXPECT_EQ(out.err, "");
  const json report = json::parse(out.out);
  EXPECT_EQ(report.at("source"),
            json({{"kind", "kubeconfig"},
                  {"path", dir_ + "/kubeconfig"},
                  {"context", "live"},
                  {"server", "https://127.0.0.1:" + std::to_string(api_.port())}}));
  EXPECT_EQ(report.at("summary").at("pods"), 52);
  EXPECT_EQ(report.at("summary").at("gpusOverLimit"), 2);
  EXPECT_EQ(report.at("summary").at("nodesAdvised"), 1);
  EXPECT_EQ(NodeNamed(report, "gpu-a").at("gpusOverLimit")[0].at("podNames"),
            json(AuditNames("a0", 21)));
  // Nodes come sorted by name, as the API server lists them.
  std::vector<std::string> names;
  for (const json& node : report.at("nodes")) names.push_back(node.at("name"));
  EXPECT_EQ(names, (std::vector<std::string>{"gpu-a", "gpu-b", "gpu-c", "plain"}));

  // 4 nodes in pages of 3: 2 lists; 52 pods: 18. Every page after the first carries the token.
  const auto nodes = Lists("/api/v1/nodes");
  const auto pods = Lists("/api/v1/pods");
  EXPECT_EQ(nodes.size(), 2u);
  EXPECT_EQ(pods.size(), 18u);
  for (const auto* lists : {&nodes, &pods}) {
    for (size_t i = 0; i < lists->size(); ++i) {
      const RecordedRequest& request = (*lists)[i];
      EXPECT_EQ(request.params.at("limit"), "3");
      EXPECT_EQ(request.params.count("continue"), i == 0 ? 0u : 1u) << i;
      EXPECT_EQ(request.params.count("watch"), 0u);
      EXPECT_EQ(request.authorization, "Bearer s3cret");
    }
  }
  // The same report as from a file of the same objects, but for the source.
  const RunResult file =
      Check({"-f", WriteTemp("cluster.json", MakeList(AuditCluster())), "-o", "json"});
  json from_file = json::parse(file.out);
  json from_api = report;
  from_file.erase("source");
  from_api.erase("source");
  EXPECT_EQ(from_api, from_file);

  const RunResult table = CheckLive({"--chunk-size", "3"});
  EXPECT_EQ(table.exit_code, 1);
  EXPECT_NE(
      table.out.find("\nSource: API server https://127.0.0.1:" + std::to_string(api_.port()) +
                     " (kubeconfig " + dir_ + "/kubeconfig, context live): 4 nodes, 52 pods\n"),
      std::string::npos)
      << table.out;
}

TEST_F(CheckLiveTest, ExpiredContinueTokenListsAgainFromTheStart) {
  api_.ExpireNextContinue(1);
  const RunResult out = CheckLive({"-o", "json", "--chunk-size", "10"});
  EXPECT_EQ(out.exit_code, 1) << out.err;
  const json report = json::parse(out.out);
  EXPECT_EQ(report.at("summary").at("pods"), 52) << "nothing lost, nothing counted twice";
  EXPECT_EQ(NodeNamed(report, "gpu-a").at("gpusOverLimit")[0].at("pods"), 21);
  // nodes fit one page; pods: page 1, page 2 refused (410), then pages 1..6 again.
  const auto pods = Lists("/api/v1/pods");
  ASSERT_EQ(pods.size(), 8u);
  EXPECT_EQ(pods[1].status, 410);
  EXPECT_EQ(pods[1].params.count("continue"), 1u);
  EXPECT_EQ(pods[2].params.count("continue"), 0u) << "the list starts again";
  EXPECT_EQ(pods[2].status, 200);
}

TEST_F(CheckLiveTest, ContinueTokensThatKeepExpiringGiveUp) {
  api_.ExpireNextContinue(100);
  const RunResult out = CheckLive({"--chunk-size", "10"});
  EXPECT_EQ(out.exit_code, 3);
  EXPECT_EQ(out.out, "");
  EXPECT_NE(out.err.find("list pods: HTTP 410: The provided continue parameter is too old"),
            std::string::npos)
      << out.err;
  EXPECT_NE(out.err.find("expired 4 times in a row"), std::string::npos) << out.err;
  EXPECT_EQ(Lists("/api/v1/pods").size(), 8u) << "4 lists of 2 pages each";
}

TEST_F(CheckLiveTest, UnreachableApiServerExitsThree) {
  const RunResult out = Check({"--kubeconfig", dir_ + "/kubeconfig"});  // current-context: dead
  EXPECT_EQ(out.exit_code, 3) << out.err;
  EXPECT_EQ(out.out, "");
  EXPECT_NE(out.err.find("cgpu-guard check: cannot read the cluster from https://127.0.0.1:" +
                         std::to_string(dead_port()) + " (kubeconfig " + dir_ +
                         "/kubeconfig (context dead)): list nodes: "),
            std::string::npos)
      << out.err;
  EXPECT_NE(out.err.find("cannot connect"), std::string::npos) << out.err;
}

TEST_F(CheckLiveTest, ForbiddenNamesThePermission) {
  api_.FailNext(1, 403, RequestKind::kList, "/api/v1/pods");
  const RunResult out = CheckLive({});
  EXPECT_EQ(out.exit_code, 3) << out.err;
  EXPECT_EQ(out.out, "");
  EXPECT_NE(out.err.find("list pods: HTTP 403"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("needs permission to list nodes and pods at cluster scope"),
            std::string::npos)
      << out.err;
}

TEST_F(CheckLiveTest, RefusedCredentialsExitThree) {
  api_.RequireToken("another");
  const RunResult out = CheckLive({});
  EXPECT_EQ(out.exit_code, 3) << out.err;
  EXPECT_NE(out.err.find("list nodes: HTTP 401"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("does not accept the credentials of kubeconfig " + dir_ +
                         "/kubeconfig (context live)"),
            std::string::npos)
      << out.err;
}

// The API server answers long after --timeout: the audit gives up at the timeout, whatever the
// request was doing. (The answer's delay ends when the test's server stops.)
TEST_F(CheckLiveTest, TimeoutExitsThree) {
  api_.SetDelay(std::chrono::minutes(5));
  const RunResult out = CheckLive({"--timeout", "300ms"});
  EXPECT_EQ(out.exit_code, 3) << out.err;
  EXPECT_NE(out.err.find("list nodes: "), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("within the deadline (--timeout 0.3s)"), std::string::npos) << out.err;
}

TEST_F(CheckLiveTest, ContextSelectsTheCluster) {
  WriteKubeconfig("live", dead_port());
  EXPECT_EQ(Check({"--kubeconfig", dir_ + "/kubeconfig"}).exit_code, 1) << "current-context";
  EXPECT_EQ(Check({"--kubeconfig", dir_ + "/kubeconfig", "--context", "dead"}).exit_code, 3);
  const RunResult unknown = Check({"--kubeconfig", dir_ + "/kubeconfig", "--context", "nope"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("nope"), std::string::npos) << unknown.err;
}

// Outside a pod there is no service account: a configuration error, not an unreadable cluster.
TEST_F(CheckLiveTest, InClusterOutsideAPodExitsTwo) {
  if (std::getenv("KUBERNETES_SERVICE_HOST") != nullptr) GTEST_SKIP() << "running in a pod";
  const RunResult out = Check({"--in-cluster"});
  EXPECT_EQ(out.exit_code, 2) << out.err;
  EXPECT_NE(out.err.find("KUBERNETES_SERVICE_HOST"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("--in-cluster runs in a pod with a service account"), std::string::npos)
      << out.err;
}

TEST_F(CheckLiveTest, UsageErrorsExitTwo) {
  const std::string kubeconfig = dir_ + "/kubeconfig";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--kubeconfig", kubeconfig, "-f", kAckNodes}, "give one"},
      {{"--kubeconfig", kubeconfig, "--in-cluster"}, "exclude each other"},
      {{"-f", kAckNodes, "--context", "live"}, "--context needs --kubeconfig"},
      {{"--kubeconfig", dir_ + "/missing"}, dir_ + "/missing"},
      {{"--kubeconfig", kubeconfig, "--timeout", "0s"}, "--timeout must be above zero"},
      {{"--kubeconfig", kubeconfig, "--chunk-size", "0"}, "--chunk-size"},
  };
  for (const auto& [args, message] : cases) {
    const RunResult out = Check(args);
    EXPECT_EQ(out.exit_code, 2) << args.back() << "\n" << out.err;
    EXPECT_NE(out.err.find(message), std::string::npos) << out.err;
    EXPECT_EQ(out.out, "");
  }
  EXPECT_EQ(api_.CountRequests(RequestKind::kAny), 0);
}

// Four nodes, one per verdict, in the order EvaluateNode would sort findings.
std::vector<CheckedNode> SampleNodes() {
  std::vector<CheckedNode> nodes(4);
  nodes[0].facts.name = "a";
  nodes[0].facts.cgpu_enabled = true;
  nodes[0].facts.cgpu_enabled_by = "ack.node.gpu.schedule=cgpu";
  nodes[0].facts.cgpu_version = {Version::Parse("1.5.2"), "1.5.2", "label x"};
  nodes[0].facts.instance_type = "ecs.gn6i-c4g1.xlarge";
  nodes[0].facts.instance_family = "gn6i";
  nodes[0].evaluation.verdict = NodeVerdict::kIncompatible;
  nodes[0].evaluation.findings = {{"driver", RuleVerdict::kIncompatible, "too new"},
                                  {"kernel-panic", RuleVerdict::kIncompatible, "affected"},
                                  {"toolkit", RuleVerdict::kUnknown, "newer than every row"},
                                  {"kernel", RuleVerdict::kCompatible, "fine"}};
  nodes[1].facts.name = "";  // unnamed, not a cGPU node
  nodes[2].facts.name = "b";
  nodes[2].facts.cgpu_enabled = true;
  nodes[2].evaluation.verdict = NodeVerdict::kUnknown;
  nodes[2].evaluation.findings = {{"kernel", RuleVerdict::kUnknown, "kernel version unknown"}};
  nodes[3].facts.name = "c";
  nodes[3].facts.cgpu_enabled = true;
  nodes[3].facts.cgpu_version = {Version::Parse("1.5.20"), "1.5.20", "label x"};
  nodes[3].evaluation.verdict = NodeVerdict::kCompatible;
  nodes[3].evaluation.findings = {{"driver", RuleVerdict::kCompatible, "fine"}};
  return nodes;
}

// Every problem of a node has its line; compatible findings have none.
TEST(FormatCheckTableTest, PlainTable) {
  EXPECT_EQ(FormatCheckTable(SampleNodes(), /*colour=*/false),
            "NODE       CGPU    VERDICT       FINDING\n"
            "a          1.5.2   incompatible  driver: too new\n"
            "                                 kernel-panic: affected\n"
            "                                 toolkit: newer than every row\n"
            "(unnamed)  -       not-cgpu      \n"
            "b          ?       unknown       kernel: kernel version unknown\n"
            "c          1.5.20  compatible    \n");
}

TEST(FormatCheckTableTest, ColourWrapsOnlyTheVerdictCells) {
  const std::string table = FormatCheckTable(SampleNodes(), /*colour=*/true);
  EXPECT_EQ(table.rfind("NODE       CGPU    VERDICT       FINDING\n", 0), 0u) << table;
  EXPECT_NE(table.find("a          1.5.2   \033[31mincompatible  \033[0mdriver: too new\n"),
            std::string::npos)
      << table;
  // A further finding's line has no verdict cell to colour.
  EXPECT_NE(table.find("\033[0mdriver: too new\n                                 kernel-panic"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("(unnamed)  -       \033[2mnot-cgpu      \033[0m\n"), std::string::npos);
  EXPECT_NE(table.find("\033[33munknown       \033[0mkernel:"), std::string::npos);
  EXPECT_NE(table.find("\033[32mcompatible    \033[0m\n"), std::string::npos);
  EXPECT_EQ(FormatCheckTable({}, true), "NODE  CGPU  VERDICT  FINDING\n");
}

// Worst first: incompatible findings, GPUs over their limit, unknown findings, then advice.
TEST(FormatCheckTableTest, OverLimitAndAdviceLines) {
  std::vector<CheckedNode> nodes = SampleNodes();
  nodes[0].over_limit = {{"a", 3, 21, {20, "the most cGPU supports on one GPU"}, {"x/p", "y/q"}}};
  nodes[0].advice = AdviseMaxPodLabel(std::string("30"), 20, "a");
  EXPECT_EQ(FormatCheckTable({nodes[0]}, /*colour=*/false),
            "NODE  CGPU   VERDICT       FINDING\n"
            "a     1.5.2  incompatible  driver: too new\n"
            "                           kernel-panic: affected\n"
            "                           over-limit: GPU 3 runs 21 cGPU pods, over its limit of 20 "
            "(the most cGPU supports on one GPU): x/p, y/q\n"
            "                           toolkit: newer than every row\n"
            "                           advice: " +
                nodes[0].advice.message +
                "; fix: kubectl label node a ack.node.gpu.max-pod=20 --overwrite\n");
  CheckReport report;
  report.source = {"in-cluster", "", "", "https://10.0.0.1:443"};
  report.nodes = nodes;
  report.pods_checked = true;
  report.pods = 7;
  EXPECT_EQ(CheckExitCode(report), kCheckProblems);
  const std::string table = FormatAuditTable(report, false);
  EXPECT_NE(table.find("\n\nSource: API server https://10.0.0.1:443 (in-cluster): 4 nodes, 7 pods\n"
                       "Summary: 3 cGPU nodes: 1 incompatible, 1 unknown; 1 GPU over its limit; 1 "
                       "node advised to set ack.node.gpu.max-pod (advice only)\n"),
            std::string::npos)
      << table;
  const json audit = json::parse(FormatAuditJson(report));
  EXPECT_EQ(audit.at("source"),
            json::parse(R"({"kind": "in-cluster", "server": "https://10.0.0.1:443"})"));
  EXPECT_EQ(audit.at("nodes")[0].at("gpusOverLimit"),
            json::parse(R"([{"gpu": 3, "pods": 21, "limit": 20,
                             "limitSource": "the most cGPU supports on one GPU",
                             "podNames": ["x/p", "y/q"]}])"));
  EXPECT_EQ(audit.at("nodes")[0].at("advice")[0].at("problem"), "above-limit");
  EXPECT_EQ(audit.at("summary").at("exitCode"), 1);

  // Over a limit on a compatible node is a problem too; advice alone is not.
  report.nodes = {nodes[3]};
  report.nodes[0].advice = AdviseMaxPodLabel(std::nullopt, 20, "c");
  EXPECT_EQ(CheckExitCode(report), kCheckOk);
  report.nodes[0].over_limit = nodes[0].over_limit;
  EXPECT_EQ(CheckExitCode(report), kCheckProblems);
}

TEST(FormatCheckJsonTest, FieldsAndNulls) {
  const std::string text = FormatCheckJson(SampleNodes());
  EXPECT_EQ(text.back(), '\n');
  const json report = json::parse(text);
  ASSERT_EQ(report.at("nodes").size(), 4u);
  const json& a = report["nodes"][0];
  EXPECT_EQ(a.at("name"), "a");
  EXPECT_EQ(a.at("cgpu"), true);
  EXPECT_EQ(a.at("verdict"), "incompatible");
  EXPECT_EQ(a.at("facts").at("cgpuEnabledBy"), "ack.node.gpu.schedule=cgpu");
  EXPECT_EQ(a.at("facts").at("cgpuVersion"), "1.5.2");
  EXPECT_EQ(a.at("facts").at("instanceType"), "ecs.gn6i-c4g1.xlarge");
  EXPECT_EQ(a.at("facts").at("instanceFamily"), "gn6i");
  EXPECT_EQ(a.at("findings"),
            json::parse(R"([{"rule": "driver", "verdict": "incompatible", "message": "too new"},
                            {"rule": "kernel-panic", "verdict": "incompatible",
                             "message": "affected"},
                            {"rule": "toolkit", "verdict": "unknown",
                             "message": "newer than every row"},
                            {"rule": "kernel", "verdict": "compatible", "message": "fine"}])"));

  const json& unnamed = report["nodes"][1];
  EXPECT_EQ(unnamed.at("name"), "");
  EXPECT_EQ(unnamed.at("verdict"), "not-cgpu");
  EXPECT_EQ(unnamed.at("findings"), json::array());
  for (const char* fact :
       {"cgpuEnabledBy", "cgpuVersion", "nvidiaDriverVersion", "containerToolkitVersion",
        "kernelVersion", "instanceType", "instanceFamily", "osImage", "aiInstallerVersion"}) {
    EXPECT_TRUE(unnamed.at("facts").at(fact).is_null()) << fact;
  }
  EXPECT_EQ(unnamed.at("facts").at("containerOptimizedOs"), false);

  // Keys keep their documented order.
  EXPECT_LT(text.find("\"name\""), text.find("\"cgpu\""));
  EXPECT_LT(text.find("\"cgpu\""), text.find("\"verdict\""));
  EXPECT_LT(text.find("\"verdict\""), text.find("\"facts\""));
  EXPECT_LT(text.find("\"facts\""), text.find("\"findings\""));

  EXPECT_EQ(json::parse(FormatCheckJson({})), json::parse(R"({"nodes": []})"));
}

TEST(FormatCheckJsonTest, InvalidUtf8IsReplacedNotThrown) {
  std::vector<CheckedNode> nodes(1);
  nodes[0].facts.name = "bad\xff name";
  std::string text;
  EXPECT_NO_THROW(text = FormatCheckJson(nodes));
  const json report = json::parse(text);
  EXPECT_EQ(report["nodes"][0]["name"], "bad\xEF\xBF\xBD name");
}

TEST(RulesCompileTest, RealFileCompiles) {
  const std::string out = ScratchDir() + "/embedded.cc";
  RunResult result = RunProcess(CGPU_RULES_COMPILE_BINARY, {kRulesPath, out});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const std::string source = ReadAll(out);
  EXPECT_NE(source.find("// Generated by rules-compile from " + kRulesPath), std::string::npos);
  EXPECT_NE(source.find("std::string_view cgpu::EmbeddedRulesYaml()"), std::string::npos);
  // "schema" as bytes: the text is embedded, not just validated.
  EXPECT_NE(source.find("0x73, 0x63, 0x68, 0x65, 0x6d, 0x61"), std::string::npos);
}

TEST(RulesCompileTest, MalformedFileFailsNamingFileAndLine) {
  const std::string broken = EditedRules("  max: 20", "  max: [20");
  const std::string path = WriteTemp("rules.yaml", broken);
  const std::string out = ScratchDir() + "/embedded.cc";
  RunResult result = RunProcess(CGPU_RULES_COMPILE_BINARY, {path, out});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.err.rfind(
                "error: " + path + ":" + std::to_string(LineOf(broken, "  symptom:")) + ": ", 0),
            0u)
      << result.err;

  const std::string invalid = EditedRules("- cgpu: 1.5.3 - 1.5.8", "- cgpu: 1.5.3 - 1.5.9");
  const std::string invalid_path = WriteTemp("rules.yaml", invalid);
  result = RunProcess(CGPU_RULES_COMPILE_BINARY, {invalid_path, out});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.err, "error: " + invalid_path + ":" +
                            std::to_string(LineOf(invalid, "1.5.3 - 1.5.9")) +
                            ": rules.kernel.rows[1].cgpu: 1.5.3-1.5.9 overlaps row 0 "
                            "(1.5.9-1.5.20)\n");
}

TEST(RulesCompileTest, UsageErrors) {
  EXPECT_EQ(RunProcess(CGPU_RULES_COMPILE_BINARY, {}).exit_code, 2);
  RunResult result =
      RunProcess(CGPU_RULES_COMPILE_BINARY, {"/nonexistent/rules.yaml", ScratchDir() + "/out.cc"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("cannot read /nonexistent/rules.yaml"), std::string::npos);
}

}  // namespace
}  // namespace cgpu
