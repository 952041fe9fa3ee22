#include "shell/serve_options.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace cgpu {
namespace {

// A namespace's name: an RFC 1123 label (lower-case alphanumerics and '-', 1 to 63 characters,
// starting and ending alphanumeric).
bool IsDnsLabel(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

}  // namespace

std::vector<FlagSpec> ServeFlagSpecs(ServeOptions& o) {
  std::vector<FlagSpec> specs = {
      Flag("listen", "HOST:PORT", "webhook address, HTTPS", SetHostPort(o.listen)),
      Flag("tls-cert", "FILE", "serving certificate, PEM (required; re-read when it changes)",
           SetString(o.tls_cert_file)),
      Flag("tls-key", "FILE", "private key of the certificate, PEM (required)",
           SetString(o.tls_key_file)),
      Flag("client-ca", "FILE",
           "PEM CA bundle: only clients with a certificate it signed (the API server, given a "
           "client certificate for this webhook) may connect (default: no client certificate)",
           SetString(o.client_ca_file)),
      Flag("tls-reload-interval", "DURATION", "how often certificate files are checked for changes",
           SetDuration(o.tls_reload_interval)),
      Flag("metrics-listen", "HOST:PORT", "plain HTTP address for /metrics, /healthz, /readyz",
           SetHostPort(o.metrics_listen)),
      Flag("max-body-bytes", "SIZE", "largest accepted request body",
           SetByteSize(o.max_body_bytes)),
      Flag("max-buffered-bytes", "SIZE",
           "request bodies held at once over all connections; past it a request gets 503",
           SetByteSize(o.max_buffered_bytes)),
      Flag("max-connections", "N", "connections open at once; more are closed on accept",
           SetLong(o.max_connections, 1, 1'000'000)),
      Flag("threads", "N", "event loops, one thread each", SetInt(o.threads, 1, 4096)),
      Flag("keep-alive-max-requests", "N", "requests served on one connection before closing it",
           SetInt(o.keep_alive_max_requests, 1, 1'000'000'000)),
      Flag("idle-timeout", "DURATION", "close a connection idle this long",
           SetDuration(o.idle_timeout)),
      Flag("read-timeout", "DURATION", "longest stall while reading a request",
           SetDuration(o.read_timeout)),
      Flag("write-timeout", "DURATION", "longest stall while writing a response",
           SetDuration(o.write_timeout)),
      Flag("shutdown-delay", "DURATION",
           "after SIGTERM, keep serving with /readyz failing this long before closing",
           SetDuration(o.shutdown_delay)),
  };
  specs.push_back(Flag("mode", "MODE",
                       "enforce (deny), warn (allow with a warning) or dry-run (allow, log and "
                       "count)",
                       SetChoice(o.policy.mode, {{"enforce", EnforcementMode::kEnforce},
                                                 {"warn", EnforcementMode::kWarn},
                                                 {"dry-run", EnforcementMode::kDryRun}})));
  specs.push_back(Flag("unknown-policy", "POLICY",
                       "what an unknown compatibility or GPU leads to: allow, warn (allow with a "
                       "warning) or deny",
                       SetChoice(o.policy.unknown, {{"allow", UnknownPolicy::kAllow},
                                                    {"warn", UnknownPolicy::kWarn},
                                                    {"deny", UnknownPolicy::kDeny}})));
  specs.push_back(Flag("stale-policy", "POLICY",
                       "what a placement gets while the cluster state is stale (a watch down "
                       "longer than --stale-after): fail-closed (deny, retry later) or fail-open "
                       "(allow with a warning)",
                       SetChoice(o.policy.stale, {{"fail-closed", StalePolicy::kFailClosed},
                                                  {"fail-open", StalePolicy::kFailOpen}})));
  specs.push_back(Flag("stale-after", "DURATION",
                       "a watch of pods or nodes down this long makes the cluster state stale: "
                       "/readyz fails and --stale-policy answers placements",
                       SetDuration(o.stale_after)));
  specs.push_back(Flag("max-pods-per-gpu", "N",
                       "pods per GPU, to go below the rules' limit of 20 (default: the rules')",
                       SetInt(o.policy.max_pods_per_gpu, 1, 1000).ShowingDefault("")));
  specs.push_back(Flag("reservation-ttl", "DURATION",
                       "how long an allowed binding counts before the watch shows its pod",
                       SetDuration(o.reservation_ttl)));
  specs.push_back(Flag("live-read-deadline", "DURATION",
                       "the time all the API server reads of one review share (the bound pod, a "
                       "last-slot recount); past it --unknown-policy answers",
                       SetDuration(o.live_read_deadline)));
  specs.push_back(Flag("live-read-threads", "N",
                       "threads deciding the reviews that wait on the API server, off the event "
                       "loops",
                       SetInt(o.live_read_threads, 1, 256)));
  specs.push_back(Flag("arbiter", "MODE",
                       "how replicas count each other's placements: none (exact with one "
                       "replica) or claims (each placement recorded in a Lease per node first: "
                       "exact at any replica count)",
                       SetChoice(o.arbiter, {{"none", ServeOptions::Arbiter::kNone},
                                             {"claims", ServeOptions::Arbiter::kClaims}})));
  specs.push_back(Flag("arbiter-namespace", "NAMESPACE",
                       "where the claim Leases live (default $POD_NAMESPACE)",
                       SetString(o.arbiter_namespace)));
  specs.push_back(Flag("replica-name", "NAME",
                       "this replica's name on its claims (default $POD_NAME, else the host name)",
                       SetString(o.replica_name)));
  specs.push_back(Flag("claim-ttl", "DURATION",
                       "how long a claim counts; longer than --stale-after",
                       SetDuration(o.claim_ttl)));
  specs.push_back(
      Flag("events", "MODE",
           "on or off: record Kubernetes Events on pods (denials, warnings, would-deny) and on "
           "nodes (verdict changes); needs the API server",
           SetChoice(o.events, {{"on", true}, {"off", false}})));
  specs.push_back(Flag("event-queue-size", "N",
                       "Events waiting to be written; past it they are dropped and counted",
                       SetInt(o.event_queue_size, 1, 100000)));
  specs.push_back(Flag("event-series-interval", "DURATION",
                       "the shortest time between two writes of one Event series' count",
                       SetDuration(o.event_series_interval)));
  specs.push_back(
      Flag("cluster-state", "FILE",
           "read nodes and pods once from this file (kubectl get nodes,pods -A -o json) "
           "instead of watching the API server",
           SetString(o.cluster_state_file)));
  specs.push_back(Flag("kubeconfig", "FILE",
                       "watch the API server named in this kubeconfig (default: in-cluster "
                       "service account)",
                       SetString(o.kubeconfig_file)));
  specs.push_back(Flag("context", "NAME", "kubeconfig context (default: its current-context)",
                       SetString(o.kubeconfig_context)));
  for (FlagSpec& spec : FactFlagSpecs(o.facts)) specs.push_back(std::move(spec));
  return specs;
}

StatusOr<ServeCommandLine> ParseServeOptions(const std::vector<std::string>& args) {
  ServeCommandLine command_line;
  ServeOptions& options = command_line.options;
  // Identity from the downward API, as the chart sets it; the flags override.
  if (const char* name = std::getenv("POD_NAMESPACE")) options.arbiter_namespace = name;
  if (const char* name = std::getenv("POD_NAME")) {
    options.replica_name = name;
  } else if (char host[256] = {}; gethostname(host, sizeof(host) - 1) == 0) {
    options.replica_name = host;
  }
  StatusOr<ParsedArgs> parsed = ParseFlags(args, ServeFlagSpecs(options));
  if (!parsed.ok()) return parsed.status();
  command_line.help_requested = parsed->help_requested;
  if (command_line.help_requested) return command_line;
  if (!parsed->positional.empty()) {
    return InvalidArgument("serve takes no arguments, got \"" + parsed->positional.front() + "\"");
  }
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return InvalidArgument(
        "--tls-cert and --tls-key are required (scripts/dev-certs.sh makes a local pair)");
  }
  if (options.idle_timeout < std::chrono::seconds(1) ||
      options.read_timeout < std::chrono::seconds(1) ||
      options.write_timeout < std::chrono::seconds(1)) {
    return InvalidArgument("--idle-timeout, --read-timeout and --write-timeout must be >= 1s");
  }
  if (!options.cluster_state_file.empty() && !options.kubeconfig_file.empty()) {
    return InvalidArgument("--cluster-state and --kubeconfig exclude each other");
  }
  if (options.stale_after < std::chrono::seconds(1)) {
    return InvalidArgument("--stale-after must be >= 1s (a watch is reopened within moments)");
  }
  if (options.reservation_ttl < std::chrono::seconds(1)) {
    return InvalidArgument("--reservation-ttl must be >= 1s");
  }
  if (options.max_buffered_bytes < options.max_body_bytes) {
    return InvalidArgument("--max-buffered-bytes must be at least --max-body-bytes (" +
                           std::to_string(options.max_body_bytes) + " bytes)");
  }
  if (options.live_read_deadline < std::chrono::milliseconds(10) ||
      options.live_read_deadline > std::chrono::seconds(25)) {
    return InvalidArgument(
        "--live-read-deadline must be between 10ms and 25s (under the webhook's timeoutSeconds, "
        "at most 30s)");
  }
  if (options.tls_reload_interval < std::chrono::milliseconds(100)) {
    return InvalidArgument("--tls-reload-interval must be >= 100ms");
  }
  if (options.arbiter == ServeOptions::Arbiter::kClaims) {
    if (!options.cluster_state_file.empty()) {
      return InvalidArgument(
          "--arbiter=claims needs the API server; --cluster-state has no other replicas to count");
    }
    if (!IsDnsLabel(options.arbiter_namespace)) {
      return InvalidArgument("--arbiter=claims needs --arbiter-namespace (or $POD_NAMESPACE): \"" +
                             options.arbiter_namespace + "\" is not a namespace name");
    }
    if (options.replica_name.empty() || options.replica_name.size() > 253) {
      return InvalidArgument("--replica-name must be 1 to 253 characters");
    }
    if (options.claim_ttl <= options.stale_after) {
      return InvalidArgument(
          "--claim-ttl must be longer than --stale-after: a replica whose watch trails must stop "
          "placing before the claims of the pods it has not seen lapse");
    }
  }
  return command_line;
}

}  // namespace cgpu
