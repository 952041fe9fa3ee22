// The KubeConfig that reaches the tests' API server: its address and CA, no credentials (set a
// token or token file on it when the server requires one). Header-only: the tests that use it
// link the Kubernetes client already; the API server's own library does not.
#pragma once

#include "adapters/kube_config.h"
#include "support/fake_api_server.h"

namespace cgpu::testing {

inline KubeConfig ConfigFor(const FakeApiServer& server) {
  KubeConfig config;
  config.host = "127.0.0.1";
  config.port = server.port();
  config.ca_pem = server.ca_pem();
  config.source = "test";
  return config;
}

}  // namespace cgpu::testing
