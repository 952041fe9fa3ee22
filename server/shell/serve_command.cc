#include "shell/serve_command.h"

#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "adapters/admission_controller.h"
#include "adapters/claim_lease.h"
#include "adapters/cluster_cache.h"
#include "adapters/event_recorder.h"
#include "adapters/node_facts_reader.h"
#include "adapters/review_facts_reader.h"
#include "core/policy.h"
#include "shell/cluster_source.h"
#include "shell/fact_flags.h"
#include "shell/log.h"
#include "shell/metrics.h"
#include "shell/ops_server.h"
#include "shell/serve_options.h"
#include "shell/tls_certificates.h"
#include "shell/version.h"
#include "shell/webhook_server.h"

namespace cgpu {
namespace {

// Runs `tick` every interval on its own thread until destroyed.
class Periodic {
 public:
  Periodic(std::chrono::milliseconds interval, std::function<void()> tick)
      : interval_(interval), tick_(std::move(tick)), thread_([this] { Loop(); }) {}
  ~Periodic() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!wake_.wait_for(lock, interval_, [this] { return stopped_; })) {
      lock.unlock();
      tick_();
      lock.lock();
    }
  }

  const std::chrono::milliseconds interval_;
  const std::function<void()> tick_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopped_ = false;  // guarded by mu_
  std::thread thread_;    // last: starts after the members it uses exist
};

// Re-reads the certificate files when they changed (Kubernetes rotates Secrets in place).
void ReloadCertificates(CertificateStore& store, Metrics& metrics) {
  StatusOr<bool> reloaded = store.ReloadIfChanged();
  if (!reloaded.ok()) {
    metrics.RecordCertificateReload(false);
    LogError("certificate files changed but cannot be used; keeping the current certificate",
             {{"error", reloaded.status().message()}});
  } else if (*reloaded) {
    auto bundle = store.Current();
    metrics.RecordCertificateReload(true);
    metrics.SetCertificateExpiry(bundle->not_after());
    LogInfo("serving a new certificate",
            {{"subject", bundle->subject()}, {"notAfter", bundle->not_after()}});
  }
}

// Expires reservations the watch never settled and refreshes the cluster metrics.
void TickClusterState(ClusterCache& cache, const ClusterSource& source, const PolicyOptions& policy,
                      Metrics& metrics, bool& was_fresh) {
  if (size_t expired = cache.ExpireReservations(); expired > 0) {
    LogInfo("reservations expired before the watch showed their pods",
            {{"count", static_cast<int64_t>(expired)}});
  }
  const ClusterStats stats = cache.Stats(policy);
  metrics.SetClusterState(cache.synced(), stats);
  const std::string stale = source.StaleReason();
  for (const char* collection : {"pods", "nodes"}) {
    const WatchCounters counters = source.Counters(collection);
    metrics.SetWatchTotals(collection, counters.relists, counters.watch_restarts, counters.errors);
    metrics.SetStaleness(!stale.empty(), collection,
                         static_cast<double>(counters.without_watch.count()) / 1000.0);
  }
  if (stale.empty() != was_fresh) {
    was_fresh = stale.empty();
    if (was_fresh) {
      LogInfo("cluster state current again: watches are open");
    } else {
      LogError("cluster state is stale: placements are answered by --stale-policy",
               {{"reason", stale}, {"stalePolicy", ToString(policy.stale)}});
    }
  }
}

// Each connection is a descriptor, and an idle keep-alive connection costs little else: let the
// process have as many as its hard limit allows (container runtimes often set a soft limit of
// 1024 under a far higher hard one).
void RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string Address(const HostPort& listen, int port) {
  return listen.host + ":" + std::to_string(port);
}

}  // namespace

namespace {

// --arbiter=claims: the node Leases in --arbiter-namespace, over the request-path client.
ClaimStore MakeClaimStore(const ServeOptions& options, const ClusterSource& cluster,
                          Metrics& metrics) {
  if (options.arbiter != ServeOptions::Arbiter::kClaims || cluster.request_client() == nullptr) {
    return {};
  }
  const auto now_unix_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  ClaimStore store = LeaseClaimStore(*cluster.request_client(), options.arbiter_namespace,
                                     options.replica_name, options.claim_ttl, now_unix_ms);
  store.unconfirmed_ttl = std::min(store.unconfirmed_ttl, options.claim_ttl);
  store.random = [] {
    thread_local std::mt19937_64 engine(std::random_device{}());
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
  };
  store.observe = [&metrics](const ClaimReport& report) {
    metrics.RecordClaim(report.outcome, report.conflicts, report.expired, report.took.count());
    if (report.outcome == "deadline" || report.outcome == "error" ||
        report.outcome == "conflict-exhausted") {
      LogError("a placement's claim could not be recorded; the stale policy decides",
               {{"node", report.node},
                {"outcome", std::string(report.outcome)},
                {"conflicts", report.conflicts},
                {"error", report.error}});
    }
  };
  return store;
}

// Events on pods and nodes, written over the background client. A pod's uid, when the review did
// not carry it (a binding from the legacy endpoint), comes from the cache, else from a read.
std::unique_ptr<EventRecorder> MakeEventRecorder(const ServeOptions& options, const KubeApi& client,
                                                 const ClusterCache& cache, Metrics& metrics) {
  EventRecorderOptions recorder;
  recorder.reporting_instance = options.replica_name;
  recorder.queue_capacity = static_cast<size_t>(options.event_queue_size);
  recorder.series_interval = options.event_series_interval;
  // A refusing API server (RBAC, say) fails every write: log the 1st, 2nd, 4th, 8th... failure.
  recorder.observe = [&metrics, failures = std::make_shared<std::atomic<int64_t>>(0)](
                         std::string_view outcome) {
    metrics.RecordEvent(outcome);
    if (outcome != "failed") return;
    const int64_t count = ++*failures;
    if ((count & (count - 1)) == 0) {
      LogError("Events could not be written: the API server refused them or could not be reached",
               {{"failuresSoFar", count}});
    }
  };
  recorder.resolve_uid = [&cache, &client](const ObjectRef& ref) -> std::string {
    if (ref.kind != "Pod") return "";
    if (auto pod = cache.FindPod(ref.namespace_name + "/" + ref.name); pod && !pod->uid.empty()) {
      return pod->uid;
    }
    StatusOr<KubeResponse> read =
        client.Get("/api/v1/namespaces/" + ref.namespace_name + "/pods/" + ref.name,
                   std::chrono::steady_clock::now() + std::chrono::seconds(5));
    if (!read.ok() || read->status != 200) return "";
    const nlohmann::json pod = nlohmann::json::parse(read->body, nullptr, false);
    if (!pod.is_object()) return "";
    const auto uid = pod["metadata"]["uid"];
    return uid.is_string() ? uid.get<std::string>() : "";
  };
  return std::make_unique<EventRecorder>(client, std::move(recorder));
}

}  // namespace

int RunServeCommand(const std::vector<std::string>& args) {
  StatusOr<ServeCommandLine> command_line = ParseServeOptions(args);
  if (!command_line.ok()) {
    std::cerr << "cgpu-guard serve: " << command_line.status().message() << "\n";
    return 2;
  }
  if (command_line->help_requested) {
    ServeOptions defaults;
    std::cout << FlagUsage(
        "Usage: cgpu-guard serve --tls-cert FILE --tls-key FILE [flags]\n\n"
        "Serves the admission webhook (POST /validate) over HTTPS.",
        ServeFlagSpecs(defaults));
    return 0;
  }
  const ServeOptions& options = command_line->options;

  // Signals are taken synchronously by this thread; every thread started below inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write must not kill the process
  RaiseDescriptorLimit();

  auto certificates = CertificateStore::Load(options.tls_cert_file, options.tls_key_file);
  if (!certificates.ok()) {
    LogError("cannot load the serving certificate", {{"error", certificates.status().message()}});
    return 1;
  }
  std::string client_ca_pem;
  if (!options.client_ca_file.empty()) {
    StatusOr<std::string> read = ReadPemFile(options.client_ca_file);
    if (!read.ok()) {
      LogError("cannot read --client-ca", {{"error", read.status().message()}});
      return 1;
    }
    client_ca_pem = std::move(read).value();
  }
  StatusOr<RuleTable> rules = LoadConfiguredRules(options.facts);
  if (!rules.ok()) {
    LogError("cannot load the rules", {{"error", rules.status().message()}});
    return 1;
  }
  StatusOr<NodeFactsReader> fact_reader = NodeFactsReader::Create(options.facts.sources, *rules);
  if (!fact_reader.ok()) {
    LogError("bad node fact settings", {{"error", fact_reader.status().message()}});
    return 1;
  }
  // Events about nodes: the cache tells each judged node to the tracker (on the node informer's
  // thread), which says when its verdict is news. The recorder exists before the informers start.
  std::unique_ptr<EventRecorder> events;
  NodeVerdictTracker node_verdicts;
  ClusterCacheOptions cache_options;
  cache_options.node_judged = [&](const NodeFacts& node, const NodeEvaluation& evaluation) {
    if (!events) return;
    if (std::optional<EventIntent> event = node_verdicts.Observe(node, evaluation)) {
      events->Record(std::move(*event));
    }
  };
  cache_options.node_gone = [&](const std::string& name) { node_verdicts.Forget(name); };
  cache_options.reservation_ttl = options.reservation_ttl;
  cache_options.unconfirmed_reservation_ttl =
      std::min(cache_options.unconfirmed_reservation_ttl, options.reservation_ttl);
  ClusterCache cache(*rules, *fact_reader, cache_options);
  StatusOr<std::unique_ptr<ClusterSource>> source = ClusterSource::Create(options, cache);
  if (!source.ok()) {
    LogError("cannot read cluster state", {{"error", source.status().message()}});
    return 1;
  }
  const ReviewFactsReader review_reader(*fact_reader);
  const ClusterSource& cluster = **source;
  Metrics metrics(kVersion);
  LiveReadOptions live_reads;
  live_reads.deadline = options.live_read_deadline;
  live_reads.observe = [&metrics](const LiveReadReport& report) {
    metrics.RecordLiveRead(ToString(report.read), report.outcome, report.took.count());
    if (report.outcome == "deadline" || report.outcome == "error") {
      LogError("a live read of the API server failed; the unknown policy decides",
               {{"read", std::string(ToString(report.read))},
                {"target", report.target},
                {"outcome", std::string(report.outcome)},
                {"error", report.error}});
    }
  };
  const AdmissionController controller(
      cache, options.policy, cluster.reads(), [&cluster] { return cluster.StaleReason(); },
      live_reads, MakeClaimStore(options, cluster, metrics));

  metrics.SetCertificateExpiry((*certificates)->Current()->not_after());
  if (options.events && cluster.background_client() != nullptr) {
    events = MakeEventRecorder(options, *cluster.background_client(), cache, metrics);
    events->Start();
  }

  std::atomic<bool> shutting_down{false};
  WebhookServer webhook(
      options, **certificates,
      [&controller](const ReviewFacts& facts) { return controller.Admit(facts); }, metrics,
      [&review_reader](const DecodedReview& review) { return review_reader.Read(review); },
      std::move(client_ca_pem),
      [&controller](const ReviewFacts& facts) { return controller.MayReadLive(facts); },
      [&events](EventIntent event) {
        if (events) events->Record(std::move(event));
      });
  OpsServer ops(options.metrics_listen, metrics, [&]() -> std::string {
    if (shutting_down) return "shutting down";
    return (*source)->NotReadyReason();
  });
  for (Status status : {webhook.Bind(), ops.Bind()}) {
    if (!status.ok()) {
      LogError("cannot start", {{"error", status.message()}});
      return 1;
    }
  }

  std::thread webhook_thread([&] { webhook.Run(); });
  std::thread ops_thread([&] { ops.Run(); });
  (*source)->Start();
  std::optional<Periodic> reloader;
  reloader.emplace(options.tls_reload_interval,
                   [&] { ReloadCertificates(**certificates, metrics); });
  std::optional<Periodic> cluster_ticker;
  bool cluster_state_fresh = true;  // the ticker's thread only
  cluster_ticker.emplace(std::chrono::seconds(1), [&] {
    TickClusterState(cache, **source, options.policy, metrics, cluster_state_fresh);
  });
  LogInfo("serving",
          {{"version", kVersion},
           {"clusterState", (*source)->description()},
           {"mode", ToString(options.policy.mode)},
           {"unknownPolicy", ToString(options.policy.unknown)},
           {"stalePolicy", ToString(options.policy.stale)},
           {"liveReadDeadlineMillis", options.live_read_deadline.count()},
           {"events", events ? "on" : "off"},
           {"arbiter",
            options.arbiter == ServeOptions::Arbiter::kClaims
                ? "claims in namespace " + options.arbiter_namespace + " as " + options.replica_name
                : std::string("none")},
           {"webhook", "https://" + Address(options.listen, webhook.port()) + "/validate"},
           {"metrics", "http://" + Address(options.metrics_listen, ops.port()) + "/metrics"},
           {"certificate", (*certificates)->Current()->subject()},
           {"clientCertificates", options.client_ca_file.empty()
                                      ? "not required"
                                      : "required, CA " + options.client_ca_file}});

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LogInfo("shutting down: readiness off, draining",
          {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"},
           {"delayMillis", options.shutdown_delay.count()}});
  shutting_down = true;
  webhook.BeginDrain();
  std::this_thread::sleep_for(options.shutdown_delay);
  webhook.Stop();
  webhook_thread.join();  // in-flight requests finish; idle connections end within --idle-timeout
  reloader.reset();
  cluster_ticker.reset();
  (*source)->Stop();
  if (events) events->Stop();
  ops.Stop();
  ops_thread.join();
  LogInfo("stopped");
  return 0;
}

}  // namespace cgpu
