#include "shell/flags.h"

#include <gtest/gtest.h>

#include "core/label_keys.h"
#include "shell/fact_flags.h"
#include "shell/serve_options.h"

namespace cgpu {
namespace {

TEST(DurationTest, Units) {
  EXPECT_EQ(ParseDuration("250ms")->count(), 250);
  EXPECT_EQ(ParseDuration("10s")->count(), 10'000);
  EXPECT_EQ(ParseDuration("5m")->count(), 300'000);
  EXPECT_EQ(ParseDuration("1h")->count(), 3'600'000);
  EXPECT_EQ(ParseDuration("3")->count(), 3'000);
  EXPECT_FALSE(ParseDuration("-1s").ok());
  EXPECT_FALSE(ParseDuration("s").ok());
  EXPECT_FALSE(ParseDuration("1.5s").ok());
}

TEST(ByteSizeTest, Units) {
  EXPECT_EQ(*ParseByteSize("3Mi"), 3LL << 20);
  EXPECT_EQ(*ParseByteSize("512Ki"), 512LL << 10);
  EXPECT_EQ(*ParseByteSize("100"), 100);
  EXPECT_FALSE(ParseByteSize("0").ok());
  EXPECT_FALSE(ParseByteSize("Mi").ok());
}

TEST(ServeOptionsTest, DefaultsNeedOnlyCertificates) {
  auto parsed = ParseServeOptions({"--tls-cert", "c.pem", "--tls-key=k.pem"});
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const ServeOptions& o = parsed->options;
  EXPECT_EQ(o.listen.host, "0.0.0.0");
  EXPECT_EQ(o.listen.port, 8443);
  EXPECT_EQ(o.metrics_listen.port, 9090);
  EXPECT_EQ(o.max_body_bytes, 3LL << 20);
  EXPECT_EQ(o.tls_cert_file, "c.pem");
  EXPECT_EQ(o.tls_key_file, "k.pem");
}

TEST(ServeOptionsTest, EveryFlagIsApplied) {
  auto parsed = ParseServeOptions({"--listen",
                                   "127.0.0.1:1",
                                   "--metrics-listen",
                                   "127.0.0.1:2",
                                   "--tls-cert",
                                   "c",
                                   "--tls-key",
                                   "k",
                                   "--max-body-bytes",
                                   "1Mi",
                                   "--threads",
                                   "8",
                                   "--keep-alive-max-requests",
                                   "50",
                                   "--idle-timeout",
                                   "3s",
                                   "--read-timeout",
                                   "2s",
                                   "--write-timeout",
                                   "4s",
                                   "--shutdown-delay",
                                   "0s",
                                   "--tls-reload-interval",
                                   "500ms"});
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const ServeOptions& o = parsed->options;
  EXPECT_EQ(o.listen.port, 1);
  EXPECT_EQ(o.metrics_listen.port, 2);
  EXPECT_EQ(o.max_body_bytes, 1LL << 20);
  EXPECT_EQ(o.threads, 8);
  EXPECT_EQ(o.keep_alive_max_requests, 50);
  EXPECT_EQ(o.idle_timeout.count(), 3000);
  EXPECT_EQ(o.read_timeout.count(), 2000);
  EXPECT_EQ(o.write_timeout.count(), 4000);
  EXPECT_EQ(o.shutdown_delay.count(), 0);
  EXPECT_EQ(o.tls_reload_interval.count(), 500);
}

TEST(ServeOptionsTest, ErrorsNameTheFlag) {
  EXPECT_EQ(ParseServeOptions({"--tls-cert", "c", "--tls-key", "k", "--threads", "zero"})
                .status()
                .message(),
            "--threads: expected a whole number, got \"zero\"");
  EXPECT_EQ(ParseServeOptions({"--listne", "x"}).status().message(),
            "unknown flag --listne (see --help)");
  EXPECT_EQ(ParseServeOptions({"--tls-cert"}).status().message(),
            "--tls-cert needs a value (FILE)");
  EXPECT_EQ(ParseServeOptions({}).status().message(),
            "--tls-cert and --tls-key are required (scripts/dev-certs.sh makes a local pair)");
  EXPECT_FALSE(ParseServeOptions({"--tls-cert", "c", "--tls-key", "k", "extra"}).ok());
  EXPECT_FALSE(
      ParseServeOptions({"--tls-cert", "c", "--tls-key", "k", "--idle-timeout", "500ms"}).ok());
}

TEST(ServeOptionsTest, HelpListsEveryFlag) {
  auto parsed = ParseServeOptions({"--help"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->help_requested);
  ServeOptions options;
  std::string usage = FlagUsage("Usage: x", ServeFlagSpecs(options));
  for (const char* flag :
       {"--listen HOST:PORT", "--tls-cert FILE", "--tls-key FILE", "--metrics-listen HOST:PORT",
        "--max-body-bytes SIZE", "--shutdown-delay DURATION", "--help"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
}

// The help's defaults are the values the specs were built over, formatted as each flag takes them.
TEST(FlagUsageTest, DefaultsComeFromTheOptionsStruct) {
  ServeOptions defaults;
  const std::string usage = FlagUsage("Usage: x", ServeFlagSpecs(defaults));
  EXPECT_NE(usage.find("webhook address, HTTPS (default 0.0.0.0:8443)\n"), std::string::npos);
  EXPECT_NE(usage.find("event loops, one thread each (default 2)\n"), std::string::npos);
  EXPECT_NE(usage.find("largest accepted request body (default 3Mi)\n"), std::string::npos);
  EXPECT_NE(usage.find("close a connection idle this long (default 10s)\n"), std::string::npos);
  EXPECT_NE(usage.find("(allow, log and count) (default enforce)\n"), std::string::npos) << usage;

  ServeOptions changed;
  changed.listen = HostPort{"::1", 9443};
  changed.threads = 7;
  changed.max_body_bytes = 512 * 1024;
  changed.idle_timeout = std::chrono::milliseconds(1500);
  changed.policy.mode = EnforcementMode::kDryRun;
  changed.client_ca_file = "ca.pem";
  const std::string changed_usage = FlagUsage("Usage: x", ServeFlagSpecs(changed));
  EXPECT_NE(changed_usage.find("webhook address, HTTPS (default [::1]:9443)\n"), std::string::npos);
  EXPECT_NE(changed_usage.find("event loops, one thread each (default 7)\n"), std::string::npos);
  EXPECT_NE(changed_usage.find("largest accepted request body (default 512Ki)\n"),
            std::string::npos);
  EXPECT_NE(changed_usage.find("close a connection idle this long (default 1500ms)\n"),
            std::string::npos);
  EXPECT_NE(changed_usage.find("(allow, log and count) (default dry-run)\n"), std::string::npos);
  EXPECT_NE(changed_usage.find("(default ca.pem)\n"), std::string::npos);
  EXPECT_EQ(changed_usage.find("(default 2)"), std::string::npos);
}

TEST(FlagUsageTest, AnEmptyStringOrAWordedDefaultShowsNone) {
  std::string empty;
  std::string named = "x";
  int zero = 0;
  const std::string usage = FlagUsage(
      "u", {Flag("empty", "S", "empty one", SetString(empty)),
            Flag("named", "S", "named one", SetString(named)),
            Flag("worded", "N", "worded one (default: the rules')",
                 SetInt(zero, 0, 9).ShowingDefault("")),
            Flag("custom", "N", "custom one", SetInt(zero, 0, 9).ShowingDefault("none"))});
  EXPECT_NE(usage.find("empty one\n"), std::string::npos) << usage;
  EXPECT_NE(usage.find("named one (default x)\n"), std::string::npos) << usage;
  EXPECT_NE(usage.find("worded one (default: the rules')\n"), std::string::npos) << usage;
  EXPECT_NE(usage.find("custom one (default none)\n"), std::string::npos) << usage;
}

TEST(FlagUsageTest, ShownDefaultsParseBack) {
  for (long long ms : {0LL, 1LL, 250LL, 1000LL, 1500LL, 60'000LL, 90'000LL, 3'600'000LL}) {
    const std::string text = FormatDuration(std::chrono::milliseconds(ms));
    EXPECT_EQ(ParseDuration(text)->count(), ms) << text;
  }
  EXPECT_EQ(FormatDuration(std::chrono::minutes(5)), "5m");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(std::chrono::hours(2)), "2h");
  for (long long bytes : {1LL, 1000LL, 1024LL, 3LL << 20, 3LL << 30, (1LL << 20) + 1}) {
    const std::string text = FormatByteSize(bytes);
    EXPECT_EQ(*ParseByteSize(text), bytes) << text;
  }
  EXPECT_EQ(FormatByteSize(64LL << 20), "64Mi");
  EXPECT_EQ(FormatByteSize(1000), "1000");
}

TEST(ServeOptionsTest, PolicyAndClusterFlags) {
  auto parsed = ParseServeOptions({"--tls-cert", "c", "--tls-key", "k", "--mode", "dry-run",
                                   "--unknown-policy", "deny", "--max-pods-per-gpu", "10",
                                   "--reservation-ttl", "5s", "--cluster-state", "state.json"});
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const ServeOptions& options = parsed->options;
  EXPECT_EQ(options.policy.mode, EnforcementMode::kDryRun);
  EXPECT_EQ(options.policy.unknown, UnknownPolicy::kDeny);
  EXPECT_EQ(options.policy.max_pods_per_gpu, 10);
  EXPECT_EQ(options.reservation_ttl, std::chrono::seconds(5));
  EXPECT_EQ(options.cluster_state_file, "state.json");

  ServeOptions defaults;
  EXPECT_EQ(defaults.policy.mode, EnforcementMode::kEnforce);
  EXPECT_EQ(defaults.policy.unknown, UnknownPolicy::kWarn);

  EXPECT_EQ(ParseServeOptions({"--tls-cert", "c", "--tls-key", "k", "--mode", "audit"})
                .status()
                .message(),
            "--mode: expected one of enforce, warn, dry-run, got \"audit\"");
  EXPECT_EQ(ParseServeOptions(
                {"--tls-cert", "c", "--tls-key", "k", "--cluster-state", "s", "--kubeconfig", "k"})
                .status()
                .message(),
            "--cluster-state and --kubeconfig exclude each other");
  EXPECT_FALSE(
      ParseServeOptions({"--tls-cert", "c", "--tls-key", "k", "--max-pods-per-gpu", "0"}).ok());
}

}  // namespace
}  // namespace cgpu

namespace cgpu {
namespace {

// The label keys are the same three flags on serve, check and node-facts: one definition.
TEST(FactLabelFlagsTest, SetTheKeysTheAgentWritesAndTheWebhookReads) {
  FactOptions serve_side;
  ASSERT_TRUE(
      ParseFlags({"--toolkit-version-label", "example.com/toolkit"}, FactFlagSpecs(serve_side))
          .ok());
  EXPECT_EQ(serve_side.sources.labels.toolkit_version, "example.com/toolkit");
  EXPECT_EQ(serve_side.sources.labels.cgpu_version, kCgpuVersionLabel);

  FactLabelKeys agent_side;
  const std::vector<FlagSpec> specs = FactLabelFlagSpecs(agent_side);
  ASSERT_TRUE(ParseFlags({"--cgpu-version-label=example.com/cgpu"}, specs).ok());
  EXPECT_EQ(agent_side.cgpu_version, "example.com/cgpu");
  FactLabelKeys defaults;
  const std::string usage = FlagUsage("Usage: x", FactLabelFlagSpecs(defaults));
  EXPECT_NE(usage.find(std::string("(default ") + kToolkitVersionLabel + ")"), std::string::npos)
      << usage;
  EXPECT_NE(usage.find(kDriverVersionLabel), std::string::npos) << usage;
}

}  // namespace
}  // namespace cgpu
