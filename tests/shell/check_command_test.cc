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

#include "support/fixtures.h"
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
  const pid_t pid = fork();
  if (pid == 0) {
    const int in = open(stdin_path.c_str(), O_RDONLY);
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
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
  EXPECT_EQ(dash.out, from_file.out);
  EXPECT_EQ(implicit.out, from_file.out);
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

  const RunResult from_json = Check({"-f", kAckNodes, "-o", "json"});
  const RunResult from_yaml = Check({"-f", yaml_path, "-o", "json"});
  EXPECT_EQ(from_yaml.exit_code, 1) << from_yaml.err;
  EXPECT_EQ(from_yaml.out, from_json.out);
  EXPECT_EQ(Check({"-o", "json"}, yaml_path).out, from_json.out) << "YAML on stdin";
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
  for (const char* flag : {"--file", "--output", "--cgpu-version", "--rules",
                           "--ai-installer-version", "--container-os-pattern"}) {
    EXPECT_NE(result.out.find(flag), std::string::npos) << flag << "\n" << result.out;
  }
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
