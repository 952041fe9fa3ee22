// WebhookServer: HTTPS on the webhook port, POST /validate, keep-alive, drain and stop.
//
// Puts the admission review behind HttpServer (the event-driven HTTP core, over TLS): each request
// goes through HandleReview, refusals the core makes itself get a metav1.Status body too, and every
// answer is counted and logged once. Lifecycle:
//   Bind() -> Run() (blocks, on its own thread) -> BeginDrain() -> Stop() -> Run() returns.
// While draining, answers carry "Connection: close" so clients (the API server reuses idle
// connections) move to other replicas; Stop() closes the listener and idle connections, and
// Run() returns once the requests in progress are answered. Bind/Run/Stop may be called from
// different threads; BeginDrain and Stop are safe to call at any time.
#pragma once

#include <atomic>
#include <memory>

#include "core/policy.h"
#include "shell/http_server.h"
#include "shell/metrics.h"
#include "shell/review_handler.h"
#include "shell/serve_options.h"
#include "shell/tls_certificates.h"

namespace cgpu {

// Says whether deciding a review may wait on the API server: such reviews are decided on the
// server's blocking threads, off its event loops.
using DecidesOffLoop = std::function<bool(const ReviewFacts&)>;
// Takes the Event a decision calls for (it must only queue it: it runs before the answer goes).
using EventSink = std::function<void(EventIntent)>;

class WebhookServer {
 public:
  // `client_ca_pem`: the contents of --client-ca; when set, clients must present a certificate
  // it signed.
  WebhookServer(const ServeOptions& options, CertificateStore& certificates, Policy policy,
                Metrics& metrics, FactReader read_facts = RequestOnly,
                std::string client_ca_pem = "", DecidesOffLoop off_loop = {},
                EventSink record_event = {});

  Status Bind() { return server_.Bind(); }
  int port() const { return server_.port(); }
  void Run() { server_.Run(); }
  void BeginDrain() { server_.BeginDrain(); }
  void Stop() { server_.Stop(); }
  // TLS handshakes completed since start: with keep-alive working, far fewer than requests.
  long completed_handshakes() const { return server_.completed_handshakes(); }
  long open_connections() const { return server_.open_connections(); }

 private:
  HttpResult HandleValidate(const HttpCall& call);
  // Counts and logs an outcome, and makes it the HTTP answer.
  HttpAnswer Finish(ReviewOutcome outcome, std::chrono::steady_clock::time_point start);
  HttpAnswer Refuse(HttpRefusal refusal);

  const ServeOptions options_;
  const Policy policy_;
  const FactReader read_facts_;
  const DecidesOffLoop off_loop_;
  const EventSink record_event_;
  Metrics& metrics_;
  HttpServer server_;
};

}  // namespace cgpu
