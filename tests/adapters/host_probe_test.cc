// ProbeHost over fake host roots: real file contents and stub tools printing the real tools'
// output (tests/fixtures/host-facts/README.md says where each text comes from).
#include "adapters/host_probe.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "core/host_facts.h"
#include "support/fake_api_server.h"  // WaitUntil
#include "support/fixtures.h"
#include "support/test_certificates.h"  // MakeTempDir, WriteFile

namespace cgpu {
namespace {

using namespace std::chrono_literals;

std::string Fixture(const std::string& name) { return testing::ReadFixture("host-facts/" + name); }

class FakeHost {
 public:
  FakeHost() : root_(testing::MakeTempDir() + "/host") {
    std::filesystem::create_directories(root_);
  }

  const std::string& root() const { return root_; }

  void File(const std::string& path, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(root_ + path).parent_path());
    testing::WriteFile(root_ + path, content);
  }

  // An executable at `path` under the root that prints `output` (or runs `script`).
  void Tool(const std::string& path, const std::string& output, int exit_code = 0) {
    File(path + ".out", output);
    Script(path, "cat '" + root_ + path + ".out'\nexit " + std::to_string(exit_code) + "\n");
  }

  void Script(const std::string& path, const std::string& body) {
    File(path, "#!/bin/sh\n" + body);
    chmod((root_ + path).c_str(), 0755);
  }

  HostProbeOptions Options() const {
    HostProbeOptions options;
    options.host_root = root_;
    options.rpm_command = "";  // the machine's own rpm, if any, must not be read
    options.command_timeout = 2s;
    return options;
  }

 private:
  std::string root_;
};

TEST(HostProbeTest, ReadsRealFormatsOfEveryDriverFile) {
  const std::pair<const char*, const char*> cases[] = {
      {"proc-driver-version-proprietary.txt", "535.161.08"},
      {"proc-driver-version-open.txt", "555.42.06"},
      {"proc-driver-version-aarch64.txt", "540.4.0"},
      {"proc-driver-version-384.txt", "384.81"},
  };
  for (const auto& [file, version] : cases) {
    EXPECT_EQ(DriverVersionFromProc(Fixture(file)), version) << file;
  }
  EXPECT_EQ(DriverVersionFromNvidiaSmi(Fixture("nvidia-smi-driver-version-4gpus.txt")),
            "535.161.08");
  EXPECT_EQ(ToolkitVersionFromCli(Fixture("nvidia-container-cli-1.16.1.txt")), "1.16.1");
  EXPECT_EQ(ToolkitVersionFromCli(Fixture("nvidia-container-cli-1.14.6-rhel.txt")), "1.14.6");
  EXPECT_EQ(ToolkitVersionFromCtk(Fixture("nvidia-ctk-1.14.6.txt")), "1.14.6");
  EXPECT_EQ(ToolkitVersionFromCtk(Fixture("nvidia-ctk-1.17.8.txt")), "1.17.8");
  EXPECT_EQ(ToolkitVersionFromDpkgStatus(Fixture("dpkg-status.txt")), "1.17.3");
}

TEST(HostProbeTest, AFullyEquippedNodeGivesEveryFactFromItsFirstSource) {
  FakeHost host;
  host.File("/proc/driver/nvidia/version", Fixture("proc-driver-version-proprietary.txt"));
  host.File("/proc/cgpu_km/version", "1.5.10\n");
  host.Tool("/usr/bin/nvidia-ctk", Fixture("nvidia-ctk-1.14.6.txt"));
  host.File("/var/lib/dpkg/status", Fixture("dpkg-status.txt"));  // not needed: ctk answered
  const HostFacts facts = ProbeHost(host.Options());
  EXPECT_EQ(facts.driver_version.value, "535.161.08");
  EXPECT_EQ(facts.driver_version.source, host.root() + "/proc/driver/nvidia/version");
  EXPECT_EQ(facts.cgpu_version.value, "1.5.10");
  EXPECT_EQ(facts.toolkit_version.value, "1.14.6");
  EXPECT_EQ(facts.toolkit_version.source, host.root() + "/usr/bin/nvidia-ctk --version");
}

TEST(HostProbeTest, FallsBackSourceBySource) {
  FakeHost host;
  // No /proc/driver/nvidia/version: nvidia-smi answers.
  host.Tool("/usr/bin/nvidia-smi", Fixture("nvidia-smi-driver-version-4gpus.txt"));
  // No proc entry: the module's sysfs version.
  host.File("/sys/module/cgpu_km/version", "1.5.19\n");
  // No nvidia-ctk: the dpkg database.
  host.File("/var/lib/dpkg/status", Fixture("dpkg-status.txt"));
  HostFacts facts = ProbeHost(host.Options());
  EXPECT_EQ(facts.driver_version.value, "535.161.08");
  EXPECT_EQ(facts.cgpu_version.value, "1.5.19");
  EXPECT_EQ(facts.toolkit_version.value, "1.17.3");
  EXPECT_EQ(facts.toolkit_version.source, host.root() + "/var/lib/dpkg/status");
  EXPECT_NE(facts.driver_version.misses.front().find("/proc/driver/nvidia/version"),
            std::string::npos);

  // Neither package database: nvidia-container-cli, last.
  FakeHost bare;
  bare.Tool("/usr/local/bin/nvidia-container-cli", Fixture("nvidia-container-cli-1.16.1.txt"));
  facts = ProbeHost(bare.Options());
  EXPECT_EQ(facts.toolkit_version.value, "1.16.1");
}

TEST(HostProbeTest, HostToolsRunThroughTheHostsLoaderAndLibraries) {
  FakeHost host;
  host.File("/usr/lib64/libnvidia-container.so.1", "");
  // A stand-in for the host's ld.so: checks it was given the host's library directory, then
  // runs the program as the real loader would.
  host.Script("/usr/lib64/ld-linux-x86-64.so.2",
              "[ \"$1\" = --library-path ] && [ \"$2\" = '" + host.root() +
                  "/usr/lib64' ] || exit 9\n"
                  "shift 2\nHOST_LIBRARIES=loaded exec \"$@\"\n");
  // Without the host's libraries the tool cannot start, as the real one could not.
  host.File("/usr/bin/nvidia-container-cli.out", Fixture("nvidia-container-cli-1.14.6-rhel.txt"));
  host.Script("/usr/bin/nvidia-container-cli",
              "[ \"$HOST_LIBRARIES\" = loaded ] || exit 127\n"
              "cat '" +
                  host.root() + "/usr/bin/nvidia-container-cli.out'\n");
  const HostFacts facts = ProbeHost(host.Options());
  EXPECT_EQ(facts.toolkit_version.value, "1.14.6") << facts.toolkit_version.Explain();
}

TEST(HostProbeTest, ReadsTheRpmDatabaseThroughTheRpmCommand) {
  FakeHost host;
  host.File("/var/lib/rpm/rpmdb.sqlite", "not really sqlite");
  // A stand-in for rpm that answers like rpm for the database it is pointed at.
  host.Script("/agent/rpm", "[ \"$1\" = --dbpath ] && [ \"$2\" = '" + host.root() +
                                "/var/lib/rpm' ] || exit 9\n"
                                "case \"$6\" in nvidia-container-toolkit) echo 1.14.6 ;;\n"
                                "*) echo \"package $6 is not installed\"; exit 1 ;; esac\n");
  HostProbeOptions options = host.Options();
  options.rpm_command = host.root() + "/agent/rpm";
  const HostFacts facts = ProbeHost(options);
  EXPECT_EQ(facts.toolkit_version.value, "1.14.6");
  EXPECT_NE(facts.toolkit_version.source.find("RPM package nvidia-container-toolkit"),
            std::string::npos);
}

TEST(HostProbeTest, MissingAndGarbledSourcesGiveAbsentFactsWithReasons) {
  FakeHost host;
  host.File("/proc/driver/nvidia/version", "NVRM version: garbage\n");
  host.File("/proc/cgpu_km/version", "\x7f\x45\x4c\x46 binary");
  host.Tool("/usr/bin/nvidia-smi", "NVIDIA-SMI has failed because it couldn't communicate\n", 9);
  host.Tool("/usr/bin/nvidia-ctk", "NVIDIA Container Toolkit CLI version 1.14.6\n", 127);
  const HostFacts facts = ProbeHost(host.Options());
  EXPECT_EQ(facts.driver_version.value, std::nullopt);
  EXPECT_EQ(facts.cgpu_version.value, std::nullopt);
  EXPECT_EQ(facts.toolkit_version.value, std::nullopt);  // exit 127: output not trusted
  const std::string driver = facts.driver_version.Explain();
  EXPECT_NE(driver.find("no version in what it says"), std::string::npos) << driver;
  EXPECT_NE(driver.find("exited with status 9"), std::string::npos) << driver;
  const std::string toolkit = facts.toolkit_version.Explain();
  EXPECT_NE(toolkit.find("a library or interpreter is missing"), std::string::npos) << toolkit;
  EXPECT_NE(toolkit.find("nvidia-container-cli: not installed"), std::string::npos) << toolkit;
  EXPECT_NE(facts.cgpu_version.Explain().find("/sys/module/cgpu_km/version"), std::string::npos);
}

TEST(HostProbeTest, AToolThatHangsIsKilledAtTheTimeout) {
  FakeHost host;
  // An hour: a probe that waited for the tool would run into the test's timeout.
  host.Script("/usr/bin/nvidia-ctk", "sleep 3600\n");
  HostProbeOptions options = host.Options();
  options.command_timeout = 300ms;
  const HostFacts facts = ProbeHost(options);
  EXPECT_EQ(facts.toolkit_version.value, std::nullopt);
  EXPECT_NE(facts.toolkit_version.Explain().find("no answer within 300 ms"), std::string::npos);
}

// On a timeout the tool's whole process group goes: nothing it started lives on.
TEST(HostProbeTest, ATimeoutKillsEverythingTheToolStarted) {
  const std::string dir = testing::MakeTempDir();
  const std::string pid_file = dir + "/child.pid";
  StatusOr<std::string> output =
      RunTool({"/bin/sh", "-c", "sleep 1000 & echo $! > " + pid_file + "; exec sleep 1000"}, 300ms);
  EXPECT_FALSE(output.ok());
  std::ifstream in(pid_file);
  pid_t child = 0;
  ASSERT_TRUE(in >> child) << "the tool wrote no pid";
  // Gone, or a zombie waiting for its new parent to reap it: either way not running.
  EXPECT_TRUE(testing::WaitUntil([&] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    return !(stat >> pid >> comm >> state) || state == "Z";
  })) << "the tool's own child survived the timeout";
  EXPECT_EQ(UnreapedTools(), 0u);
}

// Tools start as from a shell: nothing blocked or ignored because the agent blocks SIGTERM and
// SIGINT (to take them synchronously) and ignores SIGPIPE. A bare name is found on PATH.
TEST(HostProbeTest, ToolsStartWithDefaultSignalsAndAreFoundOnPath) {
  sigset_t block;
  sigset_t before;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &before);
  const auto old_pipe = std::signal(SIGPIPE, SIG_IGN);
  StatusOr<std::string> status =
      RunTool({"sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"}, 5s);
  std::signal(SIGPIPE, old_pipe);
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  ASSERT_TRUE(status.ok()) << status.status().message();
  // Standard signals 1-31 only: glibc keeps its internal real-time ones to itself.
  const auto mask = [&](const std::string& field) {
    const size_t at = status->find(field + ":\t");
    return at == std::string::npos
               ? ~0ULL
               : std::stoull(status->substr(at + field.size() + 2, 16), nullptr, 16) &
                     0x7fffffffULL;
  };
  EXPECT_EQ(mask("SigBlk"), 0u) << *status;
  EXPECT_EQ(mask("SigIgn"), 0u) << *status;
}

// The host's absolute symlinks point into the host, not into this container: its loader is
// found (and run) under the host root, never paired with this container's files.
TEST(HostProbeTest, AbsoluteSymlinksUnderTheHostRootStayInsideIt) {
  FakeHost host;
  host.File("/usr/lib64/libnvidia-container.so.1", "");
  host.Script(
      "/usr/lib64/ld-2.28.so",
      "[ \"$1\" = --library-path ] || exit 9\nshift 2\nHOST_LIBRARIES=loaded exec \"$@\"\n");
  // As on an RPM host: the loader's usual name is an absolute link to the versioned file, which
  // this container does not have at that path.
  ASSERT_EQ(
      symlink("/usr/lib64/ld-2.28.so", (host.root() + "/usr/lib64/ld-linux-x86-64.so.2").c_str()),
      0);
  host.Script("/usr/bin/nvidia-ctk",
              "[ \"$HOST_LIBRARIES\" = loaded ] || exit 127\n"
              "echo 'NVIDIA Container Toolkit CLI version 1.17.3'\n");
  const HostFacts facts = ProbeHost(host.Options());
  EXPECT_EQ(facts.toolkit_version.value, "1.17.3") << facts.toolkit_version.Explain();
}

TEST(HostProbeTest, ToolOutputIsBounded) {
  StatusOr<std::string> output =
      RunTool({"/bin/sh", "-c", "yes 1.2.3 | head -c 1000000"}, 5s, 1000);
  ASSERT_TRUE(output.ok()) << output.status().message();
  EXPECT_EQ(output->size(), 1000u);
  EXPECT_FALSE(RunTool({"/nonexistent/tool"}, 1s).ok());
}

}  // namespace
}  // namespace cgpu
