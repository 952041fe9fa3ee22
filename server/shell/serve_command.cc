#include "shell/serve_command.h"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "adapters/node_facts_reader.h"
#include "core/policy.h"
#include "shell/fact_flags.h"
#include "shell/log.h"
#include "shell/metrics.h"
#include "shell/serve_options.h"
#include "shell/tls_certificates.h"
#include "shell/version.h"
#include "shell/webhook_server.h"

namespace cgpu {
namespace {

// Re-checks the certificate files every interval until stopped.
class CertificateReloader {
 public:
  CertificateReloader(CertificateStore& store, Metrics& metrics, std::chrono::milliseconds interval)
      : store_(store), metrics_(metrics), interval_(interval), thread_([this] { Loop(); }) {}
  ~CertificateReloader() {
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
      StatusOr<bool> reloaded = store_.ReloadIfChanged();
      if (!reloaded.ok()) {
        metrics_.RecordCertificateReload(false);
        LogError("certificate files changed but cannot be used; keeping the current certificate",
                 {{"error", reloaded.status().message()}});
      } else if (*reloaded) {
        auto bundle = store_.Current();
        metrics_.RecordCertificateReload(true);
        metrics_.SetCertificateExpiry(bundle->not_after());
        LogInfo("serving a new certificate",
                {{"subject", bundle->subject()}, {"notAfter", bundle->not_after()}});
      }
    }
  }

  CertificateStore& store_;
  Metrics& metrics_;
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopped_ = false;  // guarded by mu_
  std::thread thread_;    // last: starts after the members it uses exist
};

std::string Address(const HostPort& listen, int port) {
  return listen.host + ":" + std::to_string(port);
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

  auto certificates = CertificateStore::Load(options.tls_cert_file, options.tls_key_file);
  if (!certificates.ok()) {
    LogError("cannot load the serving certificate", {{"error", certificates.status().message()}});
    return 1;
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
  Metrics metrics(kVersion);
  metrics.SetCertificateExpiry((*certificates)->Current()->not_after());

  std::atomic<bool> shutting_down{false};
  WebhookServer webhook(options, **certificates, AllowEverything, metrics);
  OpsServer ops(options.metrics_listen, metrics,
                [&shutting_down]() -> std::string { return shutting_down ? "shutting down" : ""; });
  for (Status status : {webhook.Bind(), ops.Bind()}) {
    if (!status.ok()) {
      LogError("cannot start", {{"error", status.message()}});
      return 1;
    }
  }

  std::thread webhook_thread([&] { webhook.Run(); });
  std::thread ops_thread([&] { ops.Run(); });
  std::optional<CertificateReloader> reloader;
  reloader.emplace(**certificates, metrics, options.tls_reload_interval);
  LogInfo("serving",
          {{"version", kVersion},
           {"webhook", "https://" + Address(options.listen, webhook.port()) + "/validate"},
           {"metrics", "http://" + Address(options.metrics_listen, ops.port()) + "/metrics"},
           {"certificate", (*certificates)->Current()->subject()}});

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
  ops.Stop();
  ops_thread.join();
  LogInfo("stopped");
  return 0;
}

}  // namespace cgpu
