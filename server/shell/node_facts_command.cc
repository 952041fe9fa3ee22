#include "shell/node_facts_command.h"

#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "adapters/kube_client.h"
#include "adapters/kube_config.h"
#include "adapters/node_label_sync.h"
#include "core/backoff.h"
#include "core/host_facts.h"
#include "shell/exit_codes.h"
#include "shell/fact_flags.h"
#include "shell/flags.h"
#include "shell/heartbeat.h"
#include "shell/log.h"
#include "shell/version.h"

namespace cgpu {
namespace {

std::vector<FlagSpec> NodeFactsFlagSpecs(NodeFactsOptions& o) {
  const auto on = [](bool& target) {
    return [&target](std::string_view) -> Status {
      target = true;
      return OkStatus();
    };
  };
  std::vector<FlagSpec> specs = {
      Flag("node-name", "NAME", "the node this agent runs on (default $NODE_NAME)",
           SetString(o.node_name)),
      Flag("host-root", "DIR", "where the host's / is mounted", SetString(o.probe.host_root)),
      FlagSpec{"once", "", "", "one pass, then exit", on(o.once)},
      FlagSpec{"dry-run", "", "", "read the host and print the labels; write nothing",
               on(o.dry_run)},
      Flag("interval", "DURATION", "time between passes", SetDuration(o.interval)),
      Flag("retry-backoff", "DURATION", "first wait after a failed pass, doubling up to --interval",
           SetDuration(o.retry_backoff)),
      Flag("cgpu-proc-file", "PATH", "the cGPU module's version entry under the host root",
           SetString(o.probe.cgpu_proc_file)),
      Flag("cgpu-module", "NAME", "the cGPU kernel module, for /sys/module/NAME/version",
           SetString(o.probe.cgpu_module)),
      Flag("rpm", "COMMAND", "rpm used to read the host's RPM database (default rpm; \"\" skips)",
           [&o](std::string_view value) -> Status {
             o.probe.rpm_command = std::string(value);
             return OkStatus();
           }),
      Flag("command-timeout", "DURATION", "longest a host tool may run",
           SetDuration(o.probe.command_timeout)),
      Flag("kubeconfig", "FILE", "kubeconfig to use instead of the pod's service account",
           SetString(o.kubeconfig_file)),
      Flag("context", "NAME", "kubeconfig context (default: its current-context)",
           SetString(o.kubeconfig_context)),
      Flag("heartbeat-file", "PATH",
           "file touched while the loop turns, for --alive (default "
           "/tmp/cgpu-guard-node-facts.heartbeat; \"\" turns it off)",
           [&o](std::string_view value) -> Status {
             o.heartbeat_file = std::string(value);
             return OkStatus();
           }),
      Flag("heartbeat-period", "DURATION", "longest wait between two touches of the heartbeat file",
           SetDuration(o.heartbeat_period)),
      Flag("set-max-pod-label", "N",
           "also set ack.node.gpu.max-pod=N on the node when that label is missing, unreadable "
           "or above N (the GPU-sharing scheduler counts pods per GPU only where it is set); "
           "a lower value stays (default 0: leave it alone)",
           SetInt(o.max_pod_label, 0, 1000).ShowingDefault("")),
      FlagSpec{"alive", "", "",
               "check the heartbeat file instead of running: exit 0 when younger than --max-age",
               on(o.alive)},
      Flag("max-age", "DURATION", "with --alive: oldest heartbeat that counts as alive",
           SetDuration(o.max_age)),
  };
  // After --context, where they always were in the help.
  std::vector<FlagSpec> labels = FactLabelFlagSpecs(o.labels);
  const auto context = std::find_if(specs.begin(), specs.end(),
                                    [](const FlagSpec& spec) { return spec.name == "context"; });
  specs.insert(context + 1, labels.begin(), labels.end());
  return specs;
}

struct FactLabel {
  const std::string& key;
  const ProbedFact& fact;
};

std::vector<FactLabel> Pair(const NodeFactsOptions& options, const HostFacts& facts) {
  return {{options.labels.cgpu_version, facts.cgpu_version},
          {options.labels.driver_version, facts.driver_version},
          {options.labels.toolkit_version, facts.toolkit_version}};
}

LabelChange DesiredLabels(const NodeFactsOptions& options, const HostFacts& facts) {
  LabelChange desired;
  for (const FactLabel& pair : Pair(options, facts)) desired[pair.key] = pair.fact.value;
  return desired;
}

// Says why a fact is absent (or where it now comes from) when that changed since the last pass,
// so a node without cGPU does not log the same three lines every five minutes.
class FactReporter {
 public:
  void Report(const NodeFactsOptions& options, const HostFacts& facts) {
    for (const FactLabel& pair : Pair(options, facts)) {
      const std::string explanation = pair.fact.Explain();
      std::string& last = last_[pair.key];
      if (explanation == last) continue;
      last = explanation;
      if (pair.fact.value) {
        LogInfo("fact read",
                {{"label", pair.key}, {"value", *pair.fact.value}, {"source", pair.fact.source}});
      } else {
        LogInfo("fact absent: its label is removed",
                {{"label", pair.key}, {"reason", explanation}});
      }
    }
  }

 private:
  std::map<std::string, std::string> last_;
};

int PrintDryRun(const NodeFactsOptions& options, const HostFacts& facts) {
  nlohmann::ordered_json labels = nlohmann::ordered_json::object();
  nlohmann::ordered_json sources = nlohmann::ordered_json::object();
  for (const FactLabel& pair : Pair(options, facts)) {
    labels[pair.key] = pair.fact.value ? nlohmann::ordered_json(*pair.fact.value) : nullptr;
    sources[pair.key] = pair.fact.Explain();
  }
  nlohmann::ordered_json out = {{"node", options.node_name},
                                {"hostRoot", options.probe.host_root},
                                {"labels", labels},
                                {"sources", sources}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

StatusOr<NodeFactsOptions> ParseNodeFactsOptions(const std::vector<std::string>& args, bool& help) {
  NodeFactsOptions options;
  if (const char* node = std::getenv("NODE_NAME"); node != nullptr) options.node_name = node;
  StatusOr<ParsedArgs> parsed = ParseFlags(args, NodeFactsFlagSpecs(options));
  if (!parsed.ok()) return parsed.status();
  help = parsed->help_requested;
  if (help) return options;
  if (!parsed->positional.empty()) {
    return InvalidArgument("node-facts takes no arguments, got \"" + parsed->positional.front() +
                           "\"");
  }
  if (options.alive) {
    if (options.heartbeat_file.empty()) return InvalidArgument("--alive needs a --heartbeat-file");
    if (options.max_age <= std::chrono::milliseconds(0)) {
      return InvalidArgument("--max-age must be more than 0");
    }
    return options;  // checks a file: no node, API server or host needed
  }
  if (options.node_name.empty() && !options.dry_run) {
    return InvalidArgument("--node-name is required (or NODE_NAME in the environment)");
  }
  if (options.interval < std::chrono::seconds(1)) {
    return InvalidArgument("--interval must be >= 1s");
  }
  if (options.retry_backoff < std::chrono::milliseconds(10)) {
    return InvalidArgument("--retry-backoff must be >= 10ms");
  }
  if (options.heartbeat_period < std::chrono::milliseconds(10)) {
    return InvalidArgument("--heartbeat-period must be >= 10ms");
  }
  return options;
}

// SIGTERM/SIGINT cancel `stop`, which ends every wait at once.
void StopOnSignals(StreamCancel& stop) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals, &stop] {
    int number = 0;
    sigwait(&signals, &number);
    LogInfo("stopping", {{"signal", number == SIGTERM ? "SIGTERM" : "SIGINT"}});
    stop.Cancel();
  }).detach();
}

// Waits `duration` or until stopped, touching the heartbeat at every wake-up, which comes at
// least every `period`: waiting out a long interval is the loop turning too.
void WaitBeating(const StreamCancel& stop, std::chrono::milliseconds duration,
                 std::chrono::milliseconds period, Heartbeat& heartbeat) {
  const auto end = std::chrono::steady_clock::now() + duration;
  for (auto left = duration; left > std::chrono::milliseconds(0);
       left = std::chrono::duration_cast<std::chrono::milliseconds>(
           end - std::chrono::steady_clock::now())) {
    if (stop.WaitFor(std::min(left, period))) return;
    heartbeat.Beat();
  }
}

// --alive, as the kubelet's exec probe runs it: the kubelet shows what is printed when it fails.
int CheckAlive(const NodeFactsOptions& options) {
  const StatusOr<std::chrono::milliseconds> age =
      CheckHeartbeat(options.heartbeat_file, options.max_age, std::chrono::system_clock::now());
  if (!age.ok()) {
    std::cerr << "cgpu-guard node-facts: not alive: " << age.status().message() << "\n";
    return kExitFailed;
  }
  std::cout << "alive: " << options.heartbeat_file << " written " << age->count() << "ms ago\n";
  return 0;
}

}  // namespace

int RunNodeFactsCommand(const std::vector<std::string>& args) {
  bool help = false;
  StatusOr<NodeFactsOptions> parsed = ParseNodeFactsOptions(args, help);
  if (!parsed.ok()) {
    std::cerr << "cgpu-guard node-facts: " << parsed.status().message() << "\n";
    return kExitUsage;
  }
  if (help) {
    NodeFactsOptions defaults;
    std::cout << FlagUsage(
        "Usage: cgpu-guard node-facts --node-name NAME [flags]\n"
        "       cgpu-guard node-facts --alive [--heartbeat-file PATH] [--max-age DURATION]\n\n"
        "Reads this node's cGPU, NVIDIA driver and nvidia-container-toolkit versions from the\n"
        "host and keeps the node's labels for them true (removing a label whose fact cannot\n"
        "be read). Exit codes: 0 done, 1 failed, 2 bad flags, 3 not allowed to get/patch nodes.\n"
        "--alive, for a liveness probe, exits 0 while the running agent's heartbeat file is\n"
        "younger than --max-age, else 1 saying why.",
        NodeFactsFlagSpecs(defaults));
    return 0;
  }
  const NodeFactsOptions& options = *parsed;
  if (options.alive) return CheckAlive(options);
  std::signal(SIGPIPE, SIG_IGN);

  if (options.dry_run) return PrintDryRun(options, ProbeHost(options.probe));
  Heartbeat heartbeat(options.once ? "" : options.heartbeat_file);
  heartbeat.Beat();  // before anything that could stall, so a fresh container starts alive

  StatusOr<KubeConfig> config =
      options.kubeconfig_file.empty()
          ? InClusterConfig()
          : LoadKubeconfig(options.kubeconfig_file, options.kubeconfig_context);
  if (!config.ok()) {
    LogError(
        "no API server to write to",
        {{"error", config.status().message()},
         {"hint", "run in a pod with a service account, give --kubeconfig, or use --dry-run"}});
    return kExitFailed;
  }
  KubeClientOptions client_options;
  client_options.version = kVersion;
  client_options.read_timeout = std::chrono::seconds(15);
  client_options.write_timeout = std::chrono::seconds(15);
  client_options.max_response_bytes = 16 << 20;  // one Node
  const KubeClient client(*config, client_options);

  // The signal thread outlives this function (it waits for a signal that may never come), so
  // what it touches must live as long as the process.
  static StreamCancel& stop = *new StreamCancel;
  StopOnSignals(stop);
  FactReporter reporter;
  std::mt19937 jitter(std::random_device{}());
  bool first_pass = true;
  int failures = 0;
  LogInfo("node-facts running", {{"node", options.node_name},
                                 {"apiServer", client.Describe()},
                                 {"hostRoot", options.probe.host_root},
                                 {"once", options.once}});
  while (!stop.cancelled()) {
    const HostFacts facts = ProbeHost(options.probe);
    reporter.Report(options, facts);
    const LabelSyncOutcome outcome = SyncNodeLabels(
        client, options.node_name, DesiredLabels(options, facts), options.max_pod_label);
    switch (outcome.result) {
      case LabelSyncResult::kForbidden:
        LogError("cannot write node labels",
                 {{"node", options.node_name}, {"error", outcome.message}});
        return kExitForbidden;
      case LabelSyncResult::kFailed: {
        ++failures;
        if (options.once && failures >= options.once_attempts) {
          LogError(
              "giving up",
              {{"node", options.node_name}, {"attempts", failures}, {"error", outcome.message}});
          return kExitFailed;
        }
        // Exponential back-off with jitter, so a fleet of agents does not retry in step.
        const auto wait = BackoffDelay(options.retry_backoff, options.interval, failures - 1,
                                       std::uniform_real_distribution<double>(0.0, 1.0)(jitter));
        LogError("pass failed; retrying",
                 {{"node", options.node_name},
                  {"error", outcome.message},
                  {"retryInMillis", static_cast<long long>(wait.count())}});
        // A handled failure is the loop turning: still alive.
        heartbeat.Beat();
        WaitBeating(stop, wait, options.heartbeat_period, heartbeat);
        continue;
      }
      case LabelSyncResult::kPatched:
        LogInfo("labels updated", {{"node", options.node_name},
                                   {"patch", nlohmann::ordered_json::parse(outcome.message)}});
        break;
      case LabelSyncResult::kUpToDate:
        if (first_pass || failures > 0) LogInfo("labels up to date", {{"node", options.node_name}});
        break;
    }
    failures = 0;
    first_pass = false;
    if (options.once) break;
    heartbeat.Beat();
    WaitBeating(stop, options.interval, options.heartbeat_period, heartbeat);
  }
  FlushLogs();
  return 0;
}

}  // namespace cgpu
