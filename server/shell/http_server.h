// HttpServer: an event-driven HTTP/1.1 server, over TLS (the webhook port, whose one caller is the
// API server) or plain (the ops port: probes and scrapes).
//
// Built on Boost.Beast/Asio so that a keep-alive connection costs a socket and a few buffers, not
// a thread: `threads` event loops, one thread each, take new connections in turn; a connection
// stays on its loop, which reads each request with one speculative read and answers with one
// write, with no lock or thread hand-off on the way. The handler runs on the loop and must not
// block there: a request whose answer waits on something else (a live read from the API server)
// is handed back as blocking work, which runs on a small pool of `blocking_threads` and whose
// answer is then written by the connection's loop. So a slow peer delays only the requests that
// need it, never the other connections of a loop. (Running every request on one shared pool
// would cost a third of the throughput in wake-ups: bench/README.md.)
//
// What it guarantees, whatever the peer does:
// - TLS from a CertificateStore, chosen at each handshake (rotation needs no restart), unless the
//   server was made plain.
// - A handshake, and each request once its first byte arrived, must complete within
//   `read_timeout` (so a client trickling bytes holds its connection no longer than that); a
//   connection idle between requests is closed after `idle_timeout`; writing an answer may not
//   stall longer than `write_timeout`. Headers are bounded (`max_header_bytes`, which bounds
//   their count too).
// - A request whose method is not allowed, or whose Content-Length is over `max_body_bytes`, is
//   refused as soon as its header is read: no byte of its body is read into memory. The refusal
//   handler answers it (405, 413) with "Connection: close", and the connection then reads and
//   drops what the client is still sending, for a bounded time and number of bytes, before it
//   closes: closing with unread bytes would reset the connection and could destroy the answer
//   before the client read it (the "lingering close" of nginx and Apache httpd). A chunked body is
//   cut off the same way once it passes the limit.
// - Malformed HTTP gets the refusal handler's answer (400/431) and the connection is closed.
// - After `keep_alive_max_requests` answers, or once BeginDrain() was called, answers carry
//   "Connection: close".
// - Stop() closes the listener and every keep-alive connection idle between requests; a request
//   in progress, or already arrived, is answered (with "Connection: close") first, and a fresh
//   connection gets half a second to send its first request. Run() returns once all of that is
//   done. Stop() may come before Run() or from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "shell/host_port.h"
#include "shell/tls_certificates.h"

namespace cgpu {

// The bounds of one server. The defaults are the webhook port's, and `serve`'s flags take their
// defaults from here (ServeOptions); the ops port sets its own, smaller ones.
struct HttpLimits {
  int threads = 2;
  int blocking_threads = 8;  // run the handlers' blocking work
  long long max_body_bytes = 3LL << 20;
  // The API server's headers are a few hundred bytes; this leaves room for proxies in between.
  std::size_t max_header_bytes = 16 * 1024;
  // Methods a request may have; others are answered 405 before their body is read. Empty: any
  // (the handler decides).
  std::vector<std::string> methods;
  // Connections open at once; one more is closed as soon as it is accepted.
  long max_connections = 4096;
  // Request bodies held at once, over all connections (a body counts for its Content-Length, or
  // max_body_bytes when chunked, from its header until it is answered). A request that would go
  // past it is answered 503 at once and its connection closed, so that slow clients each holding
  // a large body cannot add up to the memory limit.
  long long max_buffered_bytes = 64LL << 20;
  int keep_alive_max_requests = 10'000;
  std::chrono::milliseconds idle_timeout{10'000};
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
};

// One request as the handler sees it; the views live until the handler returns.
struct HttpCall {
  std::string_view method;
  std::string_view path;  // the target without its query ("?timeout=10s" from the API server)
  std::string_view content_type;
  std::string_view body;
};

struct HttpAnswer {
  int status = 200;
  std::string_view content_type = "application/json";  // a literal: no copy per answer
  std::string body;
  std::string allow;  // the Allow header, for 405
};

// What a handler gives back: an answer now, or work that may block whose answer is written once
// it is done. The work runs on another thread after the handler returned: it must own
// everything it uses (the HttpCall's views are gone by then).
struct HttpResult {
  HttpResult() = default;
  HttpResult(HttpAnswer now) : answer(std::move(now)) {}  // NOLINT: an answer is a result
  static HttpResult Blocking(std::function<HttpAnswer()> work) {
    HttpResult result;
    result.blocking = std::move(work);
    return result;
  }
  HttpAnswer answer;
  std::function<HttpAnswer()> blocking;  // when set, `answer` is not used
};

// Why a request was answered without reaching the handler.
enum class HttpRefusal {
  kBodyTooLarge,        // 413
  kMethodNotAllowed,    // 405
  kHeadersTooLarge,     // 431
  kMalformed,           // 400
  kOverloaded,          // 503: max_buffered_bytes would be passed
  kTooManyConnections,  // no answer: the connection is closed on accept (the handler's answer is
                        // not sent; the call is for counting)
};

class HttpServer {
 public:
  using Handler = std::function<HttpResult(const HttpCall&)>;
  using RefusalHandler = std::function<HttpAnswer(HttpRefusal)>;

  // Over TLS with the store's certificates. `client_ca_pem`: PEM CA certificates; when set,
  // clients must present a certificate they signed.
  HttpServer(HostPort listen, HttpLimits limits, CertificateStore& certificates,
             std::string client_ca_pem, Handler handler, RefusalHandler refuse);
  // Plain HTTP.
  HttpServer(HostPort listen, HttpLimits limits, Handler handler, RefusalHandler refuse);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  Status Bind();
  int port() const;
  // Serves on `threads` threads (this one included) until Stop() and the last request are done.
  void Run();
  void BeginDrain();
  void Stop();
  // TLS handshakes completed since start (0 when plain): with keep-alive working, far fewer than
  // requests.
  long completed_handshakes() const;
  // Connections open right now.
  long open_connections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cgpu
