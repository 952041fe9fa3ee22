// `cgpu-guard node-facts` as the DaemonSet runs it: the real binary, a fake host root, and the
// tests' local API server (tests/support/fake_api_server.h) holding the node.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/child_process.h"
#include "support/fake_api_server.h"
#include "support/fixtures.h"
#include "support/kubeconfig_writer.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::RequestKind;

constexpr char kCgpu[] = "cgpu-guard.io/cgpu-version";
constexpr char kDriver[] = "cgpu-guard.io/nvidia-driver-version";
constexpr char kToolkit[] = "cgpu-guard.io/container-toolkit-version";

class NodeFactsBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    host_ = dir_ + "/host";
    heartbeat_ = dir_ + "/heartbeat";
    HostFile("/proc/driver/nvidia/version",
             testing::ReadFixture("host-facts/proc-driver-version-proprietary.txt"));
    HostFile("/proc/cgpu_km/version", "1.5.10\n");
    HostFile("/usr/bin/nvidia-ctk.out", testing::ReadFixture("host-facts/nvidia-ctk-1.14.6.txt"));
    HostFile("/usr/bin/nvidia-ctk", "#!/bin/sh\ncat '" + host_ + "/usr/bin/nvidia-ctk.out'\n");
    chmod((host_ + "/usr/bin/nvidia-ctk").c_str(), 0755);

    testing::WriteFile(dir_ + "/api-ca.crt", api_.ca_pem());
    testing::WriteKubeconfig(dir_ + "/kubeconfig", api_.port(), "api-ca.crt", "token: agent-token");
    api_.RequireToken("agent-token");
    api_.Add("nodes", json{{"apiVersion", "v1"},
                           {"kind", "Node"},
                           {"metadata",
                            {{"name", "gpu-1"},
                             {"labels",
                              {{"kubernetes.io/hostname", "gpu-1"},
                               {"ack.node.gpu.schedule", "cgpu"},
                               {kCgpu, "1.5.9"}}}}}});
  }

  void HostFile(const std::string& path, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(host_ + path).parent_path());
    testing::WriteFile(host_ + path, content);
  }

  // Runs `node-facts --once` to the end; returns its exit code.
  int RunOnce(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "node-facts",  "--once", "--node-name",     "gpu-1",
        "--host-root", host_,    "--kubeconfig",    dir_ + "/kubeconfig",
        "--rpm",       "",       "--retry-backoff", "20ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = testing::Spawn(args, dir_);
    return process_->Wait(20s);
  }

  std::vector<testing::RecordedRequest> Patches() const {
    std::vector<testing::RecordedRequest> patches;
    for (const auto& request : api_.requests()) {
      if (request.kind == RequestKind::kPatch) patches.push_back(request);
    }
    return patches;
  }

  json Labels() const { return api_.Find("nodes", "gpu-1").value()["metadata"]["labels"]; }

  // The agent running until SIGTERM, its heartbeat in the test's directory.
  void RunAgent(std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "node-facts",         "--node-name", "gpu-1", "--host-root",      host_,     "--kubeconfig",
        dir_ + "/kubeconfig", "--rpm",       "",      "--heartbeat-file", heartbeat_};
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = testing::Spawn(args, dir_);
  }

  // Dates the heartbeat file back to 2001, so that any beat after this one moves its mtime.
  void AgeHeartbeat() const {
    const timespec old[2] = {{kOldHeartbeat, 0}, {kOldHeartbeat, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, heartbeat_.c_str(), old, 0), 0) << heartbeat_;
  }
  bool HeartbeatRefreshed() const {
    struct stat info {};
    return stat(heartbeat_.c_str(), &info) == 0 && info.st_mtim.tv_sec != kOldHeartbeat;
  }
  // `node-facts --alive` as the liveness probe runs it; its exit code.
  int Alive(const std::string& max_age) {
    prober_ = testing::Spawn(
        {"node-facts", "--alive", "--heartbeat-file", heartbeat_, "--max-age", max_age}, dir_);
    return prober_->Wait(20s);
  }

  static constexpr time_t kOldHeartbeat = 1'000'000'000;

  std::string dir_, host_;
  std::string heartbeat_;
  testing::FakeApiServer api_;
  std::unique_ptr<testing::Process> process_, prober_;
};

TEST_F(NodeFactsBinaryTest, PatchesExactlyItsOwnLabelsThenNothingWhenUnchanged) {
  ASSERT_EQ(RunOnce(), 0) << process_->Log();
  const auto patches = Patches();
  ASSERT_EQ(patches.size(), 1u) << process_->Log();
  EXPECT_EQ(patches[0].path, "/api/v1/nodes/gpu-1");
  EXPECT_EQ(patches[0].content_type, "application/merge-patch+json");
  EXPECT_EQ(json::parse(patches[0].body), json::parse(R"({"metadata":{"labels":{
              "cgpu-guard.io/cgpu-version":"1.5.10",
              "cgpu-guard.io/container-toolkit-version":"1.14.6",
              "cgpu-guard.io/nvidia-driver-version":"535.161.08"}}})"));
  // Everyone else's labels are untouched.
  const json labels = Labels();
  EXPECT_EQ(labels["kubernetes.io/hostname"], "gpu-1");
  EXPECT_EQ(labels["ack.node.gpu.schedule"], "cgpu");
  EXPECT_EQ(labels[kDriver], "535.161.08");

  ASSERT_EQ(RunOnce(), 0) << process_->Log();
  EXPECT_EQ(Patches().size(), 1u) << "a second pass with nothing changed must not write";
  EXPECT_NE(process_->Log().find("labels up to date"), std::string::npos) << process_->Log();
}

TEST_F(NodeFactsBinaryTest, SetsTheMaxPodLabelOnlyWhenAskedAndNeverRaisesALowerOne) {
  // Not asked: the scheduler's label is left alone.
  ASSERT_EQ(RunOnce(), 0) << process_->Log();
  EXPECT_FALSE(Labels().contains("ack.node.gpu.max-pod"));

  // Asked, the label missing: set with the facts, in the same patch's way (only that key).
  ASSERT_EQ(RunOnce({"--set-max-pod-label", "20"}), 0) << process_->Log();
  EXPECT_EQ(Labels()["ack.node.gpu.max-pod"], "20");
  EXPECT_EQ(json::parse(Patches().back().body),
            json::parse(R"({"metadata":{"labels":{"ack.node.gpu.max-pod":"20"}}})"));

  // An operator's lower limit stays; an unreadable or higher one is brought to the limit.
  for (const auto& [before, after] :
       {std::pair<std::string, std::string>{"8", "8"}, {"twenty", "20"}, {"32", "20"}}) {
    json node = *api_.Find("nodes", "gpu-1");
    node["metadata"]["labels"]["ack.node.gpu.max-pod"] = before;
    api_.Update("nodes", node);
    const size_t patches = Patches().size();
    ASSERT_EQ(RunOnce({"--set-max-pod-label", "20"}), 0) << process_->Log();
    EXPECT_EQ(Labels()["ack.node.gpu.max-pod"], after) << before;
    EXPECT_EQ(Patches().size(), patches + (before == after ? 0 : 1)) << before;
  }
}

TEST_F(NodeFactsBinaryTest, AFactThatCannotBeReadRemovesItsLabelAndSaysWhy) {
  ASSERT_EQ(RunOnce(), 0) << process_->Log();
  std::filesystem::remove(host_ + "/proc/cgpu_km/version");  // the module was unloaded
  ASSERT_EQ(RunOnce(), 0) << process_->Log();
  const auto patches = Patches();
  ASSERT_EQ(patches.size(), 2u);
  EXPECT_EQ(json::parse(patches[1].body),
            json::parse(R"({"metadata":{"labels":{"cgpu-guard.io/cgpu-version":null}}})"));
  EXPECT_FALSE(Labels().contains(kCgpu));
  const std::string log = process_->Log();
  EXPECT_NE(log.find("fact absent: its label is removed"), std::string::npos) << log;
  EXPECT_NE(log.find("/sys/module/cgpu_km/version"), std::string::npos) << log;
}

TEST_F(NodeFactsBinaryTest, ForbiddenEndsWithACleanMessageAndExitCode3) {
  api_.FailNext(1, 403, RequestKind::kPatch);
  EXPECT_EQ(RunOnce(), 3) << process_->Log();
  const std::string log = process_->Log();
  EXPECT_NE(log.find("not allowed to patch node gpu-1"), std::string::npos) << log;
  EXPECT_NE(log.find("needs get and patch on nodes"), std::string::npos) << log;
  EXPECT_EQ(api_.CountRequests(RequestKind::kPatch), 1);  // no retrying a refusal

  api_.FailNext(1, 403, RequestKind::kGet);
  EXPECT_EQ(RunOnce(), 3);
  EXPECT_NE(process_->Log().find("not allowed to get node gpu-1"), std::string::npos);
}

TEST_F(NodeFactsBinaryTest, ServerErrorsAreRetriedWithBackoff) {
  api_.FailNext(2, 500, RequestKind::kGet);
  ASSERT_EQ(RunOnce(), 0) << process_->Log();
  EXPECT_EQ(api_.CountRequests(RequestKind::kGet), 3);
  EXPECT_EQ(Patches().size(), 1u);
  EXPECT_NE(process_->Log().find("pass failed; retrying"), std::string::npos);

  // --once gives up after its attempts, with exit 1, when the server never recovers.
  api_.FailNext(100, 503, RequestKind::kGet);
  EXPECT_EQ(RunOnce(), 1) << process_->Log();
  EXPECT_NE(process_->Log().find("giving up"), std::string::npos);
}

TEST_F(NodeFactsBinaryTest, AMissingNodeIsNamed) {
  std::vector<std::string> args = {"node-facts",  "--once", "--node-name",     "no-such-node",
                                   "--host-root", host_,    "--kubeconfig",    dir_ + "/kubeconfig",
                                   "--rpm",       "",       "--retry-backoff", "10ms"};
  process_ = testing::Spawn(args, dir_);
  EXPECT_EQ(process_->Wait(20s), 1);
  EXPECT_NE(process_->Log().find("node no-such-node does not exist"), std::string::npos)
      << process_->Log();
}

TEST_F(NodeFactsBinaryTest, DryRunPrintsTheLabelsAndTouchesNothing) {
  std::filesystem::remove(host_ + "/usr/bin/nvidia-ctk");
  process_ = testing::Spawn({"node-facts", "--once", "--dry-run", "--node-name", "gpu-1",
                             "--host-root", host_, "--rpm", ""},
                            dir_);
  ASSERT_EQ(process_->Wait(20s), 0) << process_->Log();
  const std::string log = process_->Log();
  const json printed = json::parse(log.substr(log.find('{')));
  EXPECT_EQ(printed["node"], "gpu-1");
  EXPECT_EQ(printed["labels"][kCgpu], "1.5.10");
  EXPECT_EQ(printed["labels"][kDriver], "535.161.08");
  EXPECT_TRUE(printed["labels"][kToolkit].is_null());
  EXPECT_NE(printed["sources"][kToolkit].get<std::string>().find("nvidia-ctk: not installed"),
            std::string::npos);
  EXPECT_TRUE(api_.requests().empty());
}

TEST_F(NodeFactsBinaryTest, BadFlagsAreRefusedWithUsageExitCode) {
  process_ = testing::Spawn({"node-facts", "--once", "--host-root", host_}, dir_);
  EXPECT_EQ(process_->Wait(10s), 2);
  EXPECT_NE(process_->Log().find("--node-name is required"), std::string::npos) << process_->Log();
}

TEST_F(NodeFactsBinaryTest, KeepsRunningUntilSigterm) {
  RunAgent({"--interval", "1s"});
  // A second pass sees a changed fact without a restart.
  ASSERT_TRUE(testing::WaitUntil([&] { return Patches().size() == 1; }));
  HostFile("/proc/cgpu_km/version", "1.5.19\n");
  ASSERT_TRUE(testing::WaitUntil([&] { return Patches().size() == 2; }, 5s)) << process_->Log();
  EXPECT_EQ(Labels()[kCgpu], "1.5.19");
  kill(process_->pid, SIGTERM);
  EXPECT_EQ(process_->Wait(5s), 0) << process_->Log();
}

// Liveness: the heartbeat shows the loop turning, whether its passes succeed or not. Each step
// holds the agent inside a pass (a held API answer) to know which beats can have happened.
TEST_F(NodeFactsBinaryTest, HeartbeatAtStartAndAfterEveryPassFailedOrNot) {
  api_.FailNext(1, 500, RequestKind::kGet);
  api_.HoldNextAnswer([](const auto& r) { return r.kind == RequestKind::kGet; });
  RunAgent({"--interval", "1h", "--heartbeat-period", "1h", "--retry-backoff", "10ms"});
  ASSERT_TRUE(testing::WaitUntil([&] { return api_.held_answer_waiting(); })) << process_->Log();
  struct stat info {};
  EXPECT_EQ(stat(heartbeat_.c_str(), &info), 0) << "written at start, before the first pass ends";

  // The first pass fails (500); the second is held once it starts.
  AgeHeartbeat();
  api_.HoldNextAnswer([](const auto& r) { return r.kind == RequestKind::kGet; });
  api_.ReleaseHeldAnswer();
  ASSERT_TRUE(testing::WaitUntil([&] {
    return api_.CountRequests(RequestKind::kGet) == 1 && api_.held_answer_waiting();
  })) << process_->Log();
  EXPECT_TRUE(HeartbeatRefreshed()) << "a failed pass is the loop turning too";

  // The second pass succeeds; then the agent waits an hour, with no beat due for an hour.
  AgeHeartbeat();
  api_.ReleaseHeldAnswer();
  ASSERT_TRUE(testing::WaitUntil([&] { return HeartbeatRefreshed(); })) << process_->Log();
  EXPECT_EQ(Patches().size(), 1u);
  kill(process_->pid, SIGTERM);
  EXPECT_EQ(process_->Wait(5s), 0) << process_->Log();
}

TEST_F(NodeFactsBinaryTest, HeartbeatWhileWaitingOutALongIntervalAndTheProbeSeesIt) {
  RunAgent({"--interval", "1h", "--heartbeat-period", "20ms"});
  ASSERT_TRUE(testing::WaitUntil([&] { return Patches().size() == 1; })) << process_->Log();
  for (int beat = 0; beat < 3; ++beat) {
    AgeHeartbeat();
    ASSERT_TRUE(testing::WaitUntil([&] { return HeartbeatRefreshed(); })) << process_->Log();
  }
  EXPECT_EQ(api_.CountRequests(RequestKind::kGet), 1) << "refreshed by the wait, not by passes";
  EXPECT_EQ(Alive("1h"), 0) << prober_->Log();
  kill(process_->pid, SIGTERM);
  EXPECT_EQ(process_->Wait(5s), 0) << process_->Log();
}

TEST_F(NodeFactsBinaryTest, AliveFailsForAMissingOrOldHeartbeatAndPassesForAFreshOne) {
  EXPECT_EQ(Alive("3m"), 1);
  EXPECT_NE(prober_->Log().find("not alive: no heartbeat file " + heartbeat_), std::string::npos)
      << prober_->Log();

  testing::WriteFile(heartbeat_, "");
  AgeHeartbeat();
  EXPECT_EQ(Alive("3m"), 1);
  EXPECT_NE(prober_->Log().find("was last written"), std::string::npos) << prober_->Log();
  EXPECT_NE(prober_->Log().find("more than --max-age 180.0s"), std::string::npos) << prober_->Log();

  testing::WriteFile(heartbeat_, "fresh");  // written now
  EXPECT_EQ(Alive("1h"), 0) << prober_->Log();
  EXPECT_NE(prober_->Log().find("alive: " + heartbeat_), std::string::npos) << prober_->Log();

  // A probe with nothing to check is a mistake in the pod spec, not a dead agent.
  prober_ = testing::Spawn({"node-facts", "--alive", "--heartbeat-file="}, dir_);
  EXPECT_EQ(prober_->Wait(20s), 2);
  EXPECT_NE(prober_->Log().find("--alive needs a --heartbeat-file"), std::string::npos)
      << prober_->Log();
}

}  // namespace
}  // namespace cgpu
