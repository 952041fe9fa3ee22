#include "shell/webhook_server.h"

#include <chrono>
#include <thread>

#include "adapters/admission_codec.h"
#include "shell/log.h"
#include "shell/review_handler.h"

namespace cgpu {
namespace {

constexpr char kJson[] = "application/json";

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

HttpsLimits LimitsOf(const ServeOptions& options, std::string client_ca_pem) {
  HttpsLimits limits;
  limits.client_ca_pem = std::move(client_ca_pem);
  limits.threads = options.threads;
  limits.blocking_threads = options.live_read_threads;
  limits.max_body_bytes = options.max_body_bytes;
  limits.max_connections = options.max_connections;
  limits.max_buffered_bytes = options.max_buffered_bytes;
  limits.keep_alive_max_requests = options.keep_alive_max_requests;
  limits.idle_timeout = options.idle_timeout;
  limits.read_timeout = options.read_timeout;
  limits.write_timeout = options.write_timeout;
  return limits;
}

}  // namespace

WebhookServer::WebhookServer(const ServeOptions& options, CertificateStore& certificates,
                             Policy policy, Metrics& metrics, FactReader read_facts,
                             std::string client_ca_pem, DecidesOffLoop off_loop)
    : options_(options),
      policy_(std::move(policy)),
      read_facts_(std::move(read_facts)),
      off_loop_(std::move(off_loop)),
      metrics_(metrics),
      server_(
          options.listen, LimitsOf(options, std::move(client_ca_pem)), certificates,
          [this](const HttpCall& call) { return HandleValidate(call); },
          [this](HttpRefusal refusal) { return Refuse(refusal); }) {}

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

HttpResult WebhookServer::HandleValidate(const HttpCall& call) {
  if (call.path != "/validate") {
    const std::string message =
        "no such path " + std::string(call.path) + "; the webhook path is /validate";
    metrics_.RecordBadRequest("not-found");
    LogJson("info", {{"msg", "decision"},
                     {"verdict", "bad-request"},
                     {"reason", "not-found"},
                     {"httpStatus", 404}});
    return HttpAnswer{404, kJson, EncodeStatusError(404, message), ""};
  }
  const auto start = std::chrono::steady_clock::now();
  metrics_.in_flight().Increment();
  PreparedReview prepared =
      PrepareReview(ReviewCall{call.method, call.content_type, call.body}, read_facts_);
  if (prepared.refused) return Finish(std::move(*prepared.refused), start);
  prepared.facts.received = start;
  if (off_loop_ && off_loop_(prepared.facts)) {
    return HttpResult::Blocking([this, start, prepared = std::move(prepared)] {
      return Finish(DecideReview(prepared, policy_), start);
    });
  }
  return Finish(DecideReview(prepared, policy_), start);
}

HttpAnswer WebhookServer::Finish(ReviewOutcome outcome,
                                 std::chrono::steady_clock::time_point start) {
  const auto latency = std::chrono::steady_clock::now() - start;
  metrics_.in_flight().Decrement();
  if (outcome.request) {
    const AdmissionRequest& request = *outcome.request;
    metrics_.RecordDecision(
        FindRoute(request.resource.group, request.resource.resource, request.sub_resource),
        request.operation, outcome.decision.verdict,
        std::chrono::duration<double>(latency).count());
    metrics_.RecordPolicyDecision(outcome.decision);
  } else {
    metrics_.RecordBadRequest(outcome.bad_request_reason);
  }
  LogDecision(outcome, latency);
  return HttpAnswer{outcome.http_status, kJson, std::move(outcome.body),
                    outcome.http_status == 405 ? "POST" : ""};
}

HttpAnswer WebhookServer::Refuse(HttpRefusal refusal) {
  if (refusal == HttpRefusal::kTooManyConnections) {
    // Counted, not logged: under a flood of connections a line each would flood the log too.
    metrics_.RecordShed("connections");
    return HttpAnswer{};
  }
  if (refusal == HttpRefusal::kOverloaded) {
    metrics_.RecordShed("buffered-bytes");
    LogJson("warn", {{"msg", "request shed: too many request bytes held at once"},
                     {"limitBytes", options_.max_buffered_bytes},
                     {"httpStatus", 503}});
    return HttpAnswer{503, kJson,
                      EncodeStatusError(503,
                                        "cgpu-guard is holding too many request bodies at once "
                                        "(--max-buffered-bytes); retry"),
                      ""};
  }
  int status = 400;
  std::string reason = "malformed-http";
  std::string message = "the request is not well-formed HTTP/1.1";
  if (refusal == HttpRefusal::kBodyTooLarge) {
    status = 413;
    reason = "body-too-large";
    message = "request body is larger than " + std::to_string(options_.max_body_bytes) +
              " bytes (--max-body-bytes)";
  } else if (refusal == HttpRefusal::kHeadersTooLarge) {
    status = 431;
    reason = "headers-too-large";
    message = "request headers are too large";
  }
  metrics_.RecordBadRequest(reason);
  LogJson("info", {{"msg", "decision"},
                   {"verdict", "bad-request"},
                   {"reason", reason},
                   {"httpStatus", status}});
  return HttpAnswer{status, kJson, EncodeStatusError(status, message), ""};
}

OpsServer::OpsServer(HostPort listen, Metrics& metrics,
                     std::function<std::string()> not_ready_reason)
    : listen_(std::move(listen)) {
  // Probes and scrapes only: GET and HEAD, no body. Anything else is answered 405 before a byte of
  // its body is read (the pre-routing handler runs before cpp-httplib reads content), a body that
  // comes anyway is refused past a few KiB, and a connection holds its thread at most a couple of
  // seconds between requests, so a few slow or idle clients cannot keep the kubelet's probes out
  // for long.
  server_.new_task_queue = [] { return new httplib::ThreadPool(8); };
  server_.set_keep_alive_timeout(2);
  server_.set_read_timeout(2, 0);
  server_.set_write_timeout(5, 0);
  server_.set_payload_max_length(4 * 1024);
  server_.set_pre_routing_handler([](const httplib::Request& request, httplib::Response& response) {
    if (request.method == "GET" || request.method == "HEAD") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    response.status = 405;
    response.set_header("Allow", "GET, HEAD");
    response.set_header("Connection", "close");  // its body, if any, is never read
    response.set_content("method " + request.method + " is not allowed; use GET\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
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
