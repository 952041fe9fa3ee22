#include "shell/webhook_server.h"

#include <chrono>

#include "adapters/admission_codec.h"
#include "shell/log.h"
#include "shell/review_handler.h"

namespace cgpu {
namespace {

constexpr char kJson[] = "application/json";

HttpLimits LimitsOf(const ServeOptions& options) {
  HttpLimits limits;
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
                             std::string client_ca_pem, DecidesOffLoop off_loop,
                             EventSink record_event)
    : options_(options),
      policy_(std::move(policy)),
      read_facts_(std::move(read_facts)),
      off_loop_(std::move(off_loop)),
      record_event_(std::move(record_event)),
      metrics_(metrics),
      server_(
          options.listen, LimitsOf(options), certificates, std::move(client_ca_pem),
          [this](const HttpCall& call) { return HandleValidate(call); },
          [this](HttpRefusal refusal) { return Refuse(refusal); }) {}

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
  if (outcome.event && record_event_) record_event_(std::move(*outcome.event));
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
  std::string allow;
  if (refusal == HttpRefusal::kMethodNotAllowed) {
    status = 405;
    reason = "method-not-allowed";
    message = "the webhook takes POST";
    allow = "POST";
  } else if (refusal == HttpRefusal::kBodyTooLarge) {
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
  return HttpAnswer{status, kJson, EncodeStatusError(status, message), allow};
}

}  // namespace cgpu
