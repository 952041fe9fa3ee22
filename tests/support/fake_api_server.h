// FakeApiServer: the fake API server of fake_api_store.h over real HTTPS, for tests of the
// binary and of the HTTPS client.
//
// Everything the store models (lists, watches, the watch cache and its lag, faults, the request
// log) is reached through the FakeApiStore it is; this class adds the transport. A watch is a
// chunked response of newline-delimited JSON events; DropWatches cuts it without the terminating
// chunk. Binds 127.0.0.1 on an ephemeral port, serving a certificate for localhost and 127.0.0.1
// from its own test CA; with FakeApiServerOptions::client_ca_pem the handshake requires a client
// certificate (its CN is recorded). All methods are thread-safe; the destructor stops the server
// and ends every open stream. Ignores SIGPIPE for the process (a client may vanish mid-write).
#pragma once

#include <httplib.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "support/fake_api_store.h"
#include "support/test_certificates.h"

namespace cgpu::testing {

struct FakeApiServerOptions {
  // When set, the TLS handshake requires a client certificate signed by this CA.
  std::string client_ca_pem;
};

class FakeApiServer : public FakeApiStore {
 public:
  explicit FakeApiServer(FakeApiServerOptions options = {});
  ~FakeApiServer() override;

  void Stop();  // idempotent
  int port() const { return port_; }
  // The CA that signed the serving certificate (SANs DNS:localhost, IP:127.0.0.1).
  const std::string& ca_pem() const { return ca_.cert_pem; }

 private:
  void Handle(const httplib::Request& request, httplib::Response& response);

  TestCa ca_;
  std::mutex stop_mu_;  // serialises Stop
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace cgpu::testing
