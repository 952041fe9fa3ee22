#include "shell/webhook_server.h"

#include <chrono>
#include <thread>

#include "adapters/admission_codec.h"
#include "shell/log.h"
#include "shell/review_handler.h"

namespace cgpu {
namespace {

constexpr char kJson[] = "application/json";

time_t WholeSeconds(std::chrono::milliseconds duration) {
  return static_cast<time_t>(std::chrono::duration_cast<std::chrono::seconds>(duration).count());
}

Status BindServer(httplib::Server& server, const HostPort& listen, int& port) {
  if (listen.port == 0) {
    port = server.bind_to_any_port(listen.host);
    if (port > 0) return OkStatus();
  } else if (server.bind_to_port(listen.host, listen.port)) {
    port = listen.port;
    return OkStatus();
  }
  return Unavailable("cannot listen on " + listen.host + ":" + std::to_string(listen.port) +
                     " (address in use, not local, or not permitted)");
}

// Labels for refusals that cpp-httplib makes before any handler runs.
std::string ServerRefusalReason(int status) {
  switch (status) {
    case 413:
      return "body-too-large";
    case 404:
      return "not-found";
    case 400:
      return "malformed-http";
    default:
      return "http-" + std::to_string(status);
  }
}

}  // namespace

WebhookServer::WebhookServer(const ServeOptions& options, CertificateStore& certificates,
                             Policy policy, Metrics& metrics, FactReader read_facts)
    : options_(options),
      policy_(std::move(policy)),
      read_facts_(std::move(read_facts)),
      metrics_(metrics),
      server_(std::make_unique<httplib::SSLServer>([&certificates](SSL_CTX& context) {
        return ConfigureServerTls(context, certificates);
      })) {
  const int threads = options_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_keep_alive_max_count(static_cast<size_t>(options_.keep_alive_max_requests));
  server_->set_keep_alive_timeout(WholeSeconds(options_.idle_timeout));
  server_->set_read_timeout(options_.read_timeout);
  server_->set_write_timeout(options_.write_timeout);
  server_->set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  server_->set_tcp_nodelay(true);

  auto validate = [this](const httplib::Request& request, httplib::Response& response) {
    HandleValidate(request, response);
  };
  // Every method reaches HandleReview, which answers all but POST with 405.
  server_->Post("/validate", validate);
  server_->Get("/validate", validate);
  server_->Put("/validate", validate);
  server_->Patch("/validate", validate);
  server_->Delete("/validate", validate);
  server_->Options("/validate", validate);

  // Refusals cpp-httplib makes itself (413, 404, 400) get a metav1.Status body like ours.
  server_->set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& request, httplib::Response& response) {
        if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        if (response.status == 413) {
          message = "request body is larger than " + std::to_string(options_.max_body_bytes) +
                    " bytes (--max-body-bytes)";
        } else if (response.status == 404) {
          message = "no such path " + request.path + "; the webhook path is /validate";
        } else {
          message = "request refused with HTTP " + std::to_string(response.status);
        }
        const std::string reason = ServerRefusalReason(response.status);
        metrics_.RecordBadRequest(reason);
        LogJson("info", {{"msg", "decision"},
                         {"verdict", "bad-request"},
                         {"reason", reason},
                         {"httpStatus", response.status}});
        response.set_content(EncodeStatusError(response.status, message), kJson);
        CloseWhenDraining(response);
        return httplib::Server::HandlerResponse::Handled;
      }));
}

Status WebhookServer::Bind() {
  if (!server_->is_valid()) {
    return Internal("TLS setup failed: " + TakeOpenSslError());
  }
  return BindServer(*server_, options_.listen, port_);
}

void RunGuard::Run(httplib::Server& server) {
  entered_ = true;
  if (!stop_requested_) server.listen_after_bind();
  done_ = true;
}

void RunGuard::Stop(httplib::Server& server) {
  stop_requested_ = true;
  // Run() may be between its check and its accept loop: wait until the loop runs (stop() then
  // ends it) or Run() has returned. If Run() has not been entered, it will see the request.
  while (entered_ && !done_ && !server.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server.stop();
}

void WebhookServer::Run() { guard_.Run(*server_); }

void WebhookServer::HandleValidate(const httplib::Request& request, httplib::Response& response) {
  const auto start = std::chrono::steady_clock::now();
  metrics_.in_flight().Increment();
  ReviewOutcome outcome = HandleReview(
      ReviewCall{request.method, request.get_header_value("Content-Type"), request.body}, policy_,
      read_facts_);
  const auto latency = std::chrono::steady_clock::now() - start;
  metrics_.in_flight().Decrement();

  if (outcome.request) {
    metrics_.RecordDecision(outcome.request->ResourcePath(), outcome.request->operation,
                            outcome.decision.verdict,
                            std::chrono::duration<double>(latency).count());
    metrics_.RecordPolicyDecision(outcome.decision);
  } else {
    metrics_.RecordBadRequest(outcome.bad_request_reason);
  }
  LogDecision(outcome, latency);

  response.status = outcome.http_status;
  if (outcome.http_status == 405) response.set_header("Allow", "POST");
  response.set_content(std::move(outcome.body), kJson);
  CloseWhenDraining(response);
}

void WebhookServer::CloseWhenDraining(httplib::Response& response) const {
  if (draining_) response.set_header("Connection", "close");
}

OpsServer::OpsServer(HostPort listen, Metrics& metrics,
                     std::function<std::string()> not_ready_reason)
    : listen_(std::move(listen)) {
  server_.new_task_queue = [] { return new httplib::ThreadPool(4); };
  server_.set_keep_alive_timeout(5);
  server_.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics.Serialize(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });
  server_.Get("/readyz", [reason = std::move(not_ready_reason)](const httplib::Request&,
                                                                httplib::Response& response) {
    std::string why = reason();
    if (why.empty()) {
      response.set_content("ok\n", "text/plain");
    } else {
      response.status = 503;
      response.set_content("not ready: " + why + "\n", "text/plain");
    }
  });
}

Status OpsServer::Bind() { return BindServer(server_, listen_, port_); }

}  // namespace cgpu
