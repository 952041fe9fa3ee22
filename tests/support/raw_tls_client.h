// RawTlsClient: a TLS connection to 127.0.0.1 that sends exactly the bytes a test gives it.
//
// HTTP clients refuse to send broken requests, stall halfway or dribble bytes; attackers and
// broken proxies do all three. Certificates are not verified: these tests are about bytes.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>

namespace cgpu::testing {

class RawTlsClient {
 public:
  // Connects and completes the handshake; nullptr when either fails.
  static std::unique_ptr<RawTlsClient> Connect(int port);
  ~RawTlsClient();
  RawTlsClient(const RawTlsClient&) = delete;
  RawTlsClient& operator=(const RawTlsClient&) = delete;

  // false once the server has closed the connection (or reset it).
  bool Send(const std::string& bytes);
  // Everything the server sends until it closes the connection or `limit` passes.
  std::string ReadUntilClosed(std::chrono::milliseconds limit = std::chrono::seconds(10));
  // Whether the last ReadUntilClosed ended because the server closed (or reset) the connection,
  // rather than because `limit` passed.
  bool closed_by_server() const { return closed_by_server_; }

 private:
  RawTlsClient(int fd, SSL_CTX* context, SSL* ssl) : fd_(fd), context_(context), ssl_(ssl) {}
  bool closed_by_server_ = false;
  void SetReceiveTimeout(std::chrono::milliseconds limit);

  int fd_;
  SSL_CTX* context_;
  SSL* ssl_;
};

}  // namespace cgpu::testing
