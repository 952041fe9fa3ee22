#include "shell/ops_server.h"

#include <chrono>

namespace cgpu {
namespace {

constexpr char kText[] = "text/plain";
constexpr char kMetricsType[] = "text/plain; version=0.0.4; charset=utf-8";

HttpLimits OpsLimits() {
  HttpLimits limits;
  limits.threads = 1;
  limits.blocking_threads = 1;  // nothing here blocks
  limits.methods = {"GET", "HEAD"};
  limits.max_body_bytes = 4 * 1024;
  limits.max_header_bytes = 8 * 1024;
  // A probe, a scrape or two: a few connections. The cap bounds what idle ones can hold (a
  // read buffer each); the NetworkPolicy keeps strangers off the port altogether.
  limits.max_connections = 512;
  limits.max_buffered_bytes = 512 * limits.max_body_bytes;
  limits.idle_timeout = std::chrono::seconds(2);
  limits.read_timeout = std::chrono::seconds(2);
  limits.write_timeout = std::chrono::seconds(5);
  return limits;
}

HttpAnswer OpsRefusal(HttpRefusal refusal) {
  switch (refusal) {
    case HttpRefusal::kMethodNotAllowed:
      return HttpAnswer{405, kText, "only GET and HEAD are served on this port\n", "GET, HEAD"};
    case HttpRefusal::kBodyTooLarge:
    case HttpRefusal::kOverloaded:
      return HttpAnswer{413, kText, "no request body is read on this port\n", ""};
    case HttpRefusal::kHeadersTooLarge:
      return HttpAnswer{431, kText, "request headers are too large\n", ""};
    case HttpRefusal::kMalformed:
    case HttpRefusal::kTooManyConnections:
      break;
  }
  return HttpAnswer{400, kText, "the request is not well-formed HTTP/1.1\n", ""};
}

}  // namespace

OpsServer::OpsServer(HostPort listen, Metrics& metrics,
                     std::function<std::string()> not_ready_reason)
    : server_(
          std::move(listen), OpsLimits(),
          [&metrics, reason = std::move(not_ready_reason)](const HttpCall& call) -> HttpResult {
            if (call.path == "/metrics")
              return HttpAnswer{200, kMetricsType, metrics.Serialize(), ""};
            if (call.path == "/healthz") return HttpAnswer{200, kText, "ok\n", ""};
            if (call.path == "/readyz") {
              std::string why = reason();
              if (why.empty()) return HttpAnswer{200, kText, "ok\n", ""};
              return HttpAnswer{503, kText, "not ready: " + why + "\n", ""};
            }
            return HttpAnswer{404, kText, "no such path; try /metrics, /healthz or /readyz\n", ""};
          },
          OpsRefusal) {}

}  // namespace cgpu
