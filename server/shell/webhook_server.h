// WebhookServer: HTTPS on the webhook port, POST /validate, keep-alive, drain and stop.
//
// Wraps cpp-httplib's SSLServer: TLS comes from a CertificateStore (hot-reloaded), each request
// goes through HandleReview, and every answer is counted and logged once. Lifecycle:
//   Bind() -> Run() (blocks, on its own thread) -> BeginDrain() -> Stop() -> Run() returns.
// While draining, answers carry "Connection: close" so clients (the API server reuses idle
// connections) move to other replicas; Stop() closes the listener and Run() returns once every
// connection has finished its request or its idle time. Bind/Run/Stop may be called from
// different threads; BeginDrain and Stop are safe to call at any time.
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>

#include "core/policy.h"
#include "shell/metrics.h"
#include "shell/review_handler.h"
#include "shell/serve_options.h"
#include "shell/tls_certificates.h"

namespace cgpu {

// cpp-httplib's stop() does nothing until the accept loop runs, so a Stop() that comes before
// Run() has started would be lost and Run() would never return. This pairs them safely: Run()
// skips the loop when a stop came first, and Stop() waits for a loop that is starting.
class RunGuard {
 public:
  void Run(httplib::Server& server);
  void Stop(httplib::Server& server);

 private:
  std::atomic<bool> entered_{false};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> done_{false};
};

class WebhookServer {
 public:
  WebhookServer(const ServeOptions& options, CertificateStore& certificates, Policy policy,
                Metrics& metrics, FactReader read_facts = RequestOnly);

  Status Bind();
  int port() const { return port_; }
  void Run();
  void BeginDrain() { draining_ = true; }
  void Stop() { guard_.Stop(*server_); }
  // TLS handshakes completed since start: with keep-alive working, far fewer than requests.
  long completed_handshakes() const { return SSL_CTX_sess_accept_good(server_->ssl_context()); }

 private:
  void HandleValidate(const httplib::Request& request, httplib::Response& response);
  void CloseWhenDraining(httplib::Response& response) const;

  const ServeOptions options_;
  const Policy policy_;
  const FactReader read_facts_;
  Metrics& metrics_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::atomic<bool> draining_{false};
  int port_ = 0;
  RunGuard guard_;
};

// /metrics, /healthz and /readyz over plain HTTP, on their own port so that probes and scrapes
// never queue behind admission traffic.
class OpsServer {
 public:
  // `not_ready_reason` returns "" when this replica should receive admission traffic, else why not.
  OpsServer(HostPort listen, Metrics& metrics, std::function<std::string()> not_ready_reason);

  Status Bind();
  int port() const { return port_; }
  void Run() { guard_.Run(server_); }
  void Stop() { guard_.Stop(server_); }

 private:
  const HostPort listen_;
  httplib::Server server_;
  int port_ = 0;
  RunGuard guard_;
};

}  // namespace cgpu
