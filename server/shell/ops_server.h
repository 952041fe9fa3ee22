// OpsServer: the ops port of `serve` (--metrics-listen).
#pragma once

#include <functional>
#include <string>

#include "shell/host_port.h"
#include "shell/http_server.h"
#include "shell/metrics.h"

namespace cgpu {

// /metrics, /healthz and /readyz over plain HTTP, on their own port so that probes and scrapes
// never queue behind admission traffic. The same event-driven core as the webhook port, with
// limits for what comes here: GET and HEAD without a body, small headers, a couple of seconds per
// request, so neither a large upload nor a few slow or idle clients can take memory or keep the
// kubelet's probes out.
class OpsServer {
 public:
  // `not_ready_reason` returns "" when this replica should receive admission traffic, else why not.
  OpsServer(HostPort listen, Metrics& metrics, std::function<std::string()> not_ready_reason);

  Status Bind() { return server_.Bind(); }
  int port() const { return server_.port(); }
  void Run() { server_.Run(); }
  void Stop() { server_.Stop(); }
  long open_connections() const { return server_.open_connections(); }

 private:
  HttpServer server_;
};

}  // namespace cgpu
