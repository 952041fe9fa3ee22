#include "support/raw_tls_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

namespace cgpu::testing {

std::unique_ptr<RawTlsClient> RawTlsClient::Connect(int port) {
  // Writing on a connection the server has closed is the point of some tests; without this the
  // kernel's SIGPIPE would end the test binary instead of Send() returning false.
  std::signal(SIGPIPE, SIG_IGN);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return nullptr;
  }
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(context);
  SSL_set_fd(ssl, fd);
  std::unique_ptr<RawTlsClient> client(new RawTlsClient(fd, context, ssl));
  client->SetReceiveTimeout(std::chrono::seconds(10));
  if (SSL_connect(ssl) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return client;
}

RawTlsClient::~RawTlsClient() {
  SSL_free(ssl_);
  SSL_CTX_free(context_);
  close(fd_);
  ERR_clear_error();
}

void RawTlsClient::SetReceiveTimeout(std::chrono::milliseconds limit) {
  timeval timeout{static_cast<time_t>(limit.count() / 1000),
                  static_cast<suseconds_t>((limit.count() % 1000) * 1000)};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
}

bool RawTlsClient::Send(const std::string& bytes) {
  if (bytes.empty()) return true;
  const int written = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
  ERR_clear_error();
  return written == static_cast<int>(bytes.size());
}

std::string RawTlsClient::ReadUntilClosed(std::chrono::milliseconds limit) {
  SetReceiveTimeout(limit);
  std::string received;
  char buffer[16384];
  const auto deadline = std::chrono::steady_clock::now() + limit;
  closed_by_server_ = false;
  while (std::chrono::steady_clock::now() < deadline) {
    errno = 0;
    const int n = SSL_read(ssl_, buffer, sizeof(buffer));
    if (n <= 0) {
      // A receive timeout is SSL_ERROR_SYSCALL with EAGAIN; a close is a close_notify, an EOF
      // (errno 0) or a reset.
      const int error = SSL_get_error(ssl_, n);
      closed_by_server_ = error == SSL_ERROR_ZERO_RETURN ||
                          (error == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK) ||
                          error == SSL_ERROR_SSL;
      break;
    }
    received.append(buffer, static_cast<size_t>(n));
  }
  ERR_clear_error();
  return received;
}

}  // namespace cgpu::testing
