// ServeOptions: everything `cgpu-guard serve` can be told, with its default. The webhook port's
// HTTP bounds take theirs from HttpLimits, so that the server and its flags cannot disagree.
//
// A plain struct; ParseServeOptions fills it from the command line and checks each value, so
// start-up fails fast with a message that names the flag. Defaults follow the API server's own
// bounds (3 MiB bodies, 30 s maximum webhook timeout) and keep-alive reuse by the API server.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/placement_policy.h"
#include "core/status.h"
#include "shell/fact_flags.h"
#include "shell/flags.h"
#include "shell/http_server.h"  // HttpLimits: the webhook port's defaults

namespace cgpu {

struct ServeOptions {
  // Webhook endpoint (HTTPS, POST /validate).
  HostPort listen{"0.0.0.0", 8443};
  std::string tls_cert_file;  // PEM: the serving certificate, then any intermediates
  std::string tls_key_file;   // PEM private key matching the certificate
  // PEM CA bundle: when set, only clients presenting a certificate it signed (the API server,
  // configured with a client certificate for this webhook) complete the TLS handshake.
  std::string client_ca_file;
  // How often the certificate files are checked for replacement (Secrets rotate in place).
  std::chrono::milliseconds tls_reload_interval{10'000};

  // Plain HTTP: /metrics, /healthz, /readyz.
  HostPort metrics_listen{"0.0.0.0", 9090};

  // The API server never sends more than 3 MiB; anything larger is refused with 413.
  long long max_body_bytes = HttpLimits{}.max_body_bytes;
  // Connections open at once; more are closed on accept (the API servers keep a few dozen).
  long max_connections = HttpLimits{}.max_connections;
  // Request bodies held at once over all connections; a request past it is answered 503. Bounds
  // what slow clients holding large bodies can cost (the chart's memory limit is 256 Mi).
  long long max_buffered_bytes = HttpLimits{}.max_buffered_bytes;
  // Event loops, one thread each, sharing out the connections. A connection holds no thread (an
  // idle keep-alive connection costs a socket and a few KiB). More loops than CPUs lengthen the
  // tail under overload (threads wait for a CPU). Reviews that wait on a live read from the API
  // server are decided on live_read_threads instead, off the loops.
  int threads = HttpLimits{}.threads;
  // Requests served on one connection before it is closed; high, because the API server reuses
  // connections and a fresh TLS handshake per few requests would dominate latency.
  int keep_alive_max_requests = HttpLimits{}.keep_alive_max_requests;
  // An idle connection is closed after this long. Bounds how long a shutdown waits for idle peers.
  std::chrono::milliseconds idle_timeout = HttpLimits{}.idle_timeout;
  // Reading or writing one request may not stall longer than this (slow clients).
  std::chrono::milliseconds read_timeout = HttpLimits{}.read_timeout;
  std::chrono::milliseconds write_timeout = HttpLimits{}.write_timeout;

  // On SIGTERM: /readyz fails at once, requests keep being served (with Connection: close) for
  // this long so endpoints and load balancers move away, then the listener closes.
  std::chrono::milliseconds shutdown_delay{5'000};

  // The rules file and where node facts come from (shared with `check`).
  FactOptions facts;

  // What denials do (enforce, warn, dry-run), what `unknown` leads to, and a lower pod limit.
  PolicyOptions policy;
  // A watch (pods or nodes) down longer than this makes the cluster state stale: /readyz fails
  // and placements are answered by policy.stale. A watch the API server ends is reopened within
  // milliseconds and a dropped one after back-off, so this only trips on a real outage.
  std::chrono::milliseconds stale_after{30'000};
  // How long an allowed binding counts before the watch shows its pod.
  std::chrono::milliseconds reservation_ttl{30'000};
  // All the live reads of one review (the bound pod, a last-slot recount) share this much time,
  // counted from the review's arrival; past it the unknown policy answers. Well under the
  // webhook's timeoutSeconds (the chart's is 3 s), so an answer always reaches the API server.
  std::chrono::milliseconds live_read_deadline{1'000};
  // Threads that decide the reviews that wait on a live read, so that a slow API server never
  // holds an event loop (and the other connections on it).
  int live_read_threads = HttpLimits{}.blocking_threads;

  // How the replicas count each other's placements. none: each replica counts its own watch
  // and its own placements, exact with one replica. claims: every cGPU placement is recorded in
  // a Lease per node (in arbiter_namespace, with a compare-and-swap) before it is allowed, and
  // every decision counts all replicas' open claims: exact at any replica count
  // (core/gpu_claims.h, README "Running more than one replica").
  enum class Arbiter { kNone, kClaims };
  Arbiter arbiter = Arbiter::kNone;
  std::string arbiter_namespace;  // default: $POD_NAMESPACE (the chart sets it)
  std::string replica_name;       // default: $POD_NAME, else the host name
  // How long a claim counts: longer than --stale-after, so that a replica whose watch trails by
  // more stops placing before the claims of pods it has not seen yet lapse.
  std::chrono::milliseconds claim_ttl{60'000};

  // Kubernetes Events on pods (denials, warnings, would-deny) and nodes (verdict changes), in
  // live mode (adapters/event_recorder.h). Written off the request path from a bounded queue.
  bool events = true;
  int event_queue_size = 1000;
  std::chrono::milliseconds event_series_interval{10'000};

  // Where cluster state comes from: a file (`kubectl get nodes,pods -A -o json`), a kubeconfig,
  // or, with neither, the pod's service account (in-cluster).
  std::string cluster_state_file;
  std::string kubeconfig_file;
  std::string kubeconfig_context;
};

struct ServeCommandLine {
  ServeOptions options;
  bool help_requested = false;
};

std::vector<FlagSpec> ServeFlagSpecs(ServeOptions& options);

// Parses `serve`'s arguments (without the command name) and checks them as a whole.
StatusOr<ServeCommandLine> ParseServeOptions(const std::vector<std::string>& args);

}  // namespace cgpu
