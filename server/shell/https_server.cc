#include "shell/https_server.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "shell/log.h"

namespace cgpu {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using ErrorCode = beast::error_code;

// The API server's headers are a few hundred bytes; this leaves room for proxies in between.
constexpr std::size_t kHeaderLimit = 16 * 1024;
// A body over the limit is read and thrown away up to this size, so the client gets its 413;
// beyond it, the connection is closed at once (nobody sends such a thing by mistake).
constexpr std::uint64_t kMaxDiscardBytes = 256ULL << 20;
// How much one read asks for while waiting for a request to begin.
constexpr std::size_t kReadChunk = 16 * 1024;
// After a large request, a connection keeps at most this much read buffer while it waits.
constexpr std::size_t kKeptBufferBytes = 64 * 1024;
// A closing connection waits this long for the peer's TLS close_notify.
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(1);
// On Stop(), how long a connection that has not yet sent its first request may take to send it.
// A client sends its request right after the handshake; this only bounds one that never does.
constexpr auto kFreshConnectionGrace = std::chrono::milliseconds(500);
// After a failed accept (out of file descriptors, say), wait before trying again.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(50);

// A body that is counted and dropped: reading it costs no memory.
struct DiscardBody {
  struct value_type {};
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type&) {}
    void init(const boost::optional<std::uint64_t>&, ErrorCode& ec) { ec = {}; }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, ErrorCode& ec) {
      ec = {};
      return net::buffer_size(buffers);
    }
    void finish(ErrorCode& ec) { ec = {}; }
  };
};

using Stream = beast::ssl_stream<beast::tcp_stream>;
using RequestParser = http::request_parser<http::string_body>;

std::string_view View(beast::string_view text) { return {text.data(), text.size()}; }

Status ConfigureTls(SSL_CTX& context, CertificateStore& certificates,
                    const std::string& client_ca_pem) {
  if (!ConfigureServerTls(context, certificates)) {
    return Internal("TLS setup failed: " + TakeOpenSslError());
  }
  if (client_ca_pem.empty()) return OkStatus();
  Status client_ca = RequireClientCertificates(context, client_ca_pem);
  if (!client_ca.ok()) return InvalidArgument("client CA: " + client_ca.message());
  return OkStatus();
}

}  // namespace

class HttpsServer::Impl {
 public:
  Impl(HostPort listen, HttpsLimits limits, CertificateStore& certificates, Handler handler,
       RefusalHandler refuse)
      : listen_(std::move(listen)),
        limits_(limits),
        handler_(std::move(handler)),
        refuse_(std::move(refuse)),
        loops_(MakeLoops(limits.threads)),
        tls_(net::ssl::context::tls_server),
        tls_status_(ConfigureTls(*tls_.native_handle(), certificates, limits.client_ca_pem)),
        acceptor_(loops_.front()->get_executor()),
        accept_retry_(acceptor_.get_executor()),
        blocking_(static_cast<std::size_t>(std::max(1, limits.blocking_threads))) {}

  Status Bind();
  void Run();
  void Stop();

  class Session;
  void Remember(const std::shared_ptr<Session>& session);
  void Forget(Session* session);

  const HostPort listen_;
  const HttpsLimits limits_;
  const Handler handler_;
  const RefusalHandler refuse_;
  // One event loop per thread, each run by exactly one thread: a connection lives on one loop,
  // so its steps never race and no loop takes a lock to hand work to another thread.
  std::vector<std::unique_ptr<net::io_context>> loops_;
  net::ssl::context tls_;
  const Status tls_status_;
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;
  net::thread_pool blocking_;  // the handlers' blocking work
  int port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<long> open_connections_{0};
  std::atomic<long long> buffered_bytes_{0};  // reserved by requests being read or served

  // Takes `bytes` of the body budget; false (nothing taken) when that would pass the limit.
  bool ReserveBody(long long bytes) {
    long long held = buffered_bytes_.load();
    do {
      if (held + bytes > limits_.max_buffered_bytes) return false;
    } while (!buffered_bytes_.compare_exchange_weak(held, held + bytes));
    return true;
  }

 private:
  static std::vector<std::unique_ptr<net::io_context>> MakeLoops(int threads) {
    std::vector<std::unique_ptr<net::io_context>> loops;
    for (int i = 0; i < std::max(1, threads); ++i) {
      loops.push_back(std::make_unique<net::io_context>(1));  // 1: run by one thread, no locks
    }
    return loops;
  }
  void Accept();

  size_t next_loop_ = 0;  // touched only by the accepting loop
  std::vector<net::executor_work_guard<net::io_context::executor_type>> keep_running_;

  std::mutex sessions_mu_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;  // guarded by sessions_mu_
};

// One connection. Every step runs on the connection's loop, so a session never races itself;
// sessions never share anything but the (thread-safe) handlers and counters.
class HttpsServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket&& socket)
      : server_(server),
        stream_(std::move(socket), server.tls_),
        grace_timer_(stream_.get_executor()) {
    ++server_.open_connections_;
  }
  ~Session() {
    ReleaseBody();
    --server_.open_connections_;
    server_.Forget(this);
  }

  void Start() {
    server_.Remember(shared_from_this());
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Handshake(); });
  }

  // On Stop(). A connection inside a request finishes it first and then ends (answers carry
  // "Connection: close" and WaitForRequest() sees `stopping_`). A keep-alive connection idle
  // between requests ends now, unless bytes of a next request have already arrived: that request
  // is read and answered. A fresh connection (handshaking, or waiting for its first request) was
  // made to send one, and its client will do so within moments: it gets kFreshConnectionGrace to
  // do it instead of a reset.
  void CloseIfIdle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->phase_ == Phase::kBusy || self->HasPendingBytes()) return;
      if (self->served_ > 0) return self->Socket().cancel();
      // A timer of its own: changing the stream's deadline under a pending read is not reliable.
      self->grace_timer_.expires_after(kFreshConnectionGrace);
      self->grace_timer_.async_wait([self](ErrorCode error) {
        if (!error && self->served_ == 0 && self->phase_ != Phase::kBusy) self->Socket().cancel();
      });
    });
  }

 private:
  enum class Phase { kHandshake, kIdle, kBusy };

  beast::tcp_stream& Socket() { return beast::get_lowest_layer(stream_); }

  void Handshake() {
    phase_ = Phase::kHandshake;
    Socket().expires_after(server_.limits_.read_timeout);
    stream_.async_handshake(net::ssl::stream_base::server,
                            [self = shared_from_this()](ErrorCode error) {
                              if (!error) self->WaitForRequest();
                            });
  }

  // Bytes of a request already here: in our buffer, in OpenSSL's, or in the socket's.
  bool HasPendingBytes() {
    ErrorCode ignored;
    return buffer_.size() > 0 || SSL_pending(stream_.native_handle()) > 0 ||
           Socket().socket().available(ignored) > 0;
  }

  // Between requests the idle timeout applies; once a byte arrived, the read timeout does.
  void WaitForRequest() {
    // Stopping: the session ends, closing the connection, unless its client has already sent
    // (or, fresh, is about to send) a request; see CloseIfIdle().
    ReleaseBody();  // the last request is answered: its body is gone
    if (server_.stopping_ && served_ > 0 && !HasPendingBytes()) return;
    if (buffer_.size() > 0) return ReadHeader();
    if (buffer_.capacity() > kKeptBufferBytes) buffer_.shrink_to_fit();
    phase_ = Phase::kIdle;
    Socket().expires_after(server_.stopping_ ? kFreshConnectionGrace
                                             : server_.limits_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = shared_from_this()](ErrorCode error, std::size_t bytes) {
                              if (error) return;  // closed, idle too long, or stopping
                              self->buffer_.commit(bytes);
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    phase_ = Phase::kBusy;
    if (server_.stopping_) grace_timer_.cancel();  // its request came: shutdown need not wait
    Socket().expires_after(server_.limits_.read_timeout);
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    // The real limit is applied once the header says how long the body is; until then, only
    // bodies too large even to throw away are refused (with the connection closed).
    parser_->body_limit(kMaxDiscardBytes);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](ErrorCode error, std::size_t) { self->OnHeader(error); });
  }

  void OnHeader(ErrorCode error) {
    if (error) return OnReadError(error);
    const auto length = parser_->content_length();
    const auto limit = static_cast<std::uint64_t>(server_.limits_.max_body_bytes);
    if (length && *length > limit) return DiscardBodyThenRefuse();
    const long long body = length ? static_cast<long long>(*length)
                                  : server_.limits_.max_body_bytes;  // chunked: at most this
    if (!server_.ReserveBody(body)) return Refuse(HttpRefusal::kOverloaded);
    reserved_ = body;
    parser_->body_limit(limit);  // bounds a chunked body
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](ErrorCode read_error, std::size_t) {
                       if (read_error) return self->OnReadError(read_error);
                       self->Serve();
                     });
  }

  // Reads the oversized body into nothing, then answers 413 on a connection still in step.
  void DiscardBodyThenRefuse() {
    auto discarding = std::make_shared<http::request_parser<DiscardBody>>(std::move(*parser_));
    discarding->body_limit(kMaxDiscardBytes);
    http::async_read(stream_, buffer_, *discarding,
                     [self = shared_from_this(), discarding](ErrorCode error, std::size_t) {
                       if (error) return;  // the peer gave up or stalled: nothing to answer
                       self->Answer(self->server_.refuse_(HttpRefusal::kBodyTooLarge),
                                    self->CountAndKeepAlive(discarding->get()));
                     });
  }

  void OnReadError(ErrorCode error) {
    const auto& http_errors = make_error_code(http::error::end_of_stream).category();
    if (error == http::error::end_of_stream || error == http::error::partial_message ||
        error.category() != http_errors) {
      return;  // the peer left, stalled, or we are stopping: no one to answer
    }
    if (error == http::error::body_limit) return Refuse(HttpRefusal::kBodyTooLarge);
    if (error == http::error::header_limit) return Refuse(HttpRefusal::kHeadersTooLarge);
    Refuse(HttpRefusal::kMalformed);
  }

  // An answer after which the connection cannot be trusted to be in step: always closes.
  void Refuse(HttpRefusal refusal) { Answer(server_.refuse_(refusal), false); }

  void ReleaseBody() {
    if (reserved_ == 0) return;
    server_.buffered_bytes_ -= reserved_;
    reserved_ = 0;
  }

  void Serve() {
    const auto& request = parser_->get();
    std::string_view target = View(request.target());
    HttpCall call{View(request.method_string()), target.substr(0, target.find('?')),
                  View(request[http::field::content_type]), request.body()};
    HttpResult result = Guarded([&] { return server_.handler_(call); });
    const bool keep_alive = CountAndKeepAlive(request);
    if (!result.blocking) return Answer(std::move(result.answer), keep_alive);
    // Off the loop; the work guard keeps the loop running until the answer is posted back (a
    // Stop() meanwhile waits for it like for any request in progress).
    net::post(server_.blocking_,
              [self = shared_from_this(), work = std::move(result.blocking), keep_alive,
               running = net::make_work_guard(stream_.get_executor())]() mutable {
                HttpAnswer answer = Guarded([&] { return HttpResult(work()); }).answer;
                net::post(self->stream_.get_executor(),
                          [self, answer = std::move(answer), keep_alive]() mutable {
                            self->Answer(std::move(answer), keep_alive);
                          });
                running.reset();
              });
  }

  // A handler that throws costs its request a 500, never the process.
  template <class F>
  static HttpResult Guarded(F&& handle) {
    try {
      return handle();
    } catch (const std::exception& e) {
      LogJson("error", {{"msg", "handler threw"}, {"error", e.what()}});
    } catch (...) {
      LogJson("error", {{"msg", "handler threw"}});
    }
    HttpAnswer answer;
    answer.status = 500;
    answer.body = std::string(R"({"kind":"Status","apiVersion":"v1","status":"Failure",)") +
                  R"("message":"internal error","code":500})";
    return answer;
  }

  template <class Header>
  // Counts the request being answered, then says whether the connection may serve another.
  bool CountAndKeepAlive(const Header& request) {
    ++served_;
    return request.keep_alive() && served_ < server_.limits_.keep_alive_max_requests &&
           !server_.draining_ && !server_.stopping_;
  }

  void Answer(HttpAnswer answer, bool keep_alive) {
    phase_ = Phase::kBusy;
    response_.emplace(static_cast<http::status>(answer.status), 11);
    response_->set(http::field::content_type,
                   beast::string_view(answer.content_type.data(), answer.content_type.size()));
    if (!answer.allow.empty()) response_->set(http::field::allow, answer.allow);
    response_->body() = std::move(answer.body);
    response_->keep_alive(keep_alive);
    response_->prepare_payload();
    Socket().expires_after(server_.limits_.write_timeout);
    http::async_write(stream_, *response_,
                      [self = shared_from_this(), keep_alive](ErrorCode error, std::size_t) {
                        self->response_.reset();
                        if (error) return;
                        if (keep_alive) return self->WaitForRequest();
                        self->ShutDown();
                      });
  }

  // "Connection: close" was sent: say goodbye at the TLS level too, briefly.
  void ShutDown() {
    Socket().expires_after(kTlsShutdownTimeout);
    stream_.async_shutdown([self = shared_from_this()](ErrorCode) {});
  }

  Impl& server_;
  Stream stream_;
  net::steady_timer grace_timer_;  // CloseIfIdle(): the end of a fresh connection's grace
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::optional<http::response<http::string_body>> response_;
  Phase phase_ = Phase::kHandshake;
  int served_ = 0;
  long long reserved_ = 0;  // of the server's body budget, for the request in progress
};

Status HttpsServer::Impl::Bind() {
  if (!tls_status_.ok()) return tls_status_;
  const auto cannot = [this](const ErrorCode& error) {
    return Unavailable("cannot listen on " + listen_.host + ":" + std::to_string(listen_.port) +
                       ": " + error.message());
  };
  ErrorCode error;
  tcp::resolver resolver(*loops_.front());
  auto endpoints = resolver.resolve(listen_.host, std::to_string(listen_.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, error);
  if (error || endpoints.empty()) return cannot(error);
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), error);
  if (!error) acceptor_.set_option(net::socket_base::reuse_address(true), error);
  if (!error) acceptor_.bind(endpoint, error);
  if (!error) acceptor_.listen(net::socket_base::max_listen_connections, error);
  if (error) return cannot(error);
  port_ = acceptor_.local_endpoint().port();
  return OkStatus();
}

void HttpsServer::Impl::Accept() {
  net::io_context& loop = *loops_[next_loop_++ % loops_.size()];
  acceptor_.async_accept(loop, [this](ErrorCode error, tcp::socket socket) {
    if (!acceptor_.is_open()) return;  // stopped
    if (error) {
      LogJson("warn", {{"msg", "accept failed; retrying"}, {"error", error.message()}});
      accept_retry_.expires_after(kAcceptRetryDelay);
      accept_retry_.async_wait([this](ErrorCode wait_error) {
        if (!wait_error) Accept();
      });
      return;
    }
    ErrorCode ignored;
    if (open_connections_ >= limits_.max_connections) {
      socket.close(ignored);  // over the cap: no handshake, no buffers
      refuse_(HttpRefusal::kTooManyConnections);
      return Accept();
    }
    socket.set_option(tcp::no_delay(true), ignored);  // answers are one small write
    std::make_shared<Session>(*this, std::move(socket))->Start();
    Accept();
  });
}

void HttpsServer::Impl::Run() {
  // If Bind() failed or Stop() came first, the accept fails at once and the loop runs dry.
  // Loops without connections have no work yet; these keep them running until Stop().
  for (auto& loop : loops_) keep_running_.push_back(net::make_work_guard(*loop));
  net::post(acceptor_.get_executor(), [this] { Accept(); });
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < loops_.size(); ++i) helpers.emplace_back([this, i] { loops_[i]->run(); });
  loops_.front()->run();
  for (auto& helper : helpers) helper.join();
}

void HttpsServer::Impl::Stop() {
  stopping_ = true;
  // On the accepting loop: no accept completes after the listener is closed, so the list of
  // sessions below is final.
  net::post(acceptor_.get_executor(), [this] {
    ErrorCode ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    for (auto& guard : keep_running_) guard.reset();  // each loop ends when its last session does
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard<std::mutex> lock(sessions_mu_);
      for (auto& [raw, weak] : sessions_) {
        if (auto session = weak.lock()) open.push_back(std::move(session));
      }
    }
    for (auto& session : open) session->CloseIfIdle();
  });
}

void HttpsServer::Impl::Remember(const std::shared_ptr<Session>& session) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  sessions_.emplace(session.get(), session);
}

void HttpsServer::Impl::Forget(Session* session) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  sessions_.erase(session);
}

HttpsServer::HttpsServer(HostPort listen, HttpsLimits limits, CertificateStore& certificates,
                         Handler handler, RefusalHandler refuse)
    : impl_(std::make_unique<Impl>(std::move(listen), limits, certificates, std::move(handler),
                                   std::move(refuse))) {}

HttpsServer::~HttpsServer() = default;

Status HttpsServer::Bind() { return impl_->Bind(); }
int HttpsServer::port() const { return impl_->port_; }
void HttpsServer::Run() { impl_->Run(); }
void HttpsServer::BeginDrain() { impl_->draining_ = true; }
void HttpsServer::Stop() { impl_->Stop(); }
long HttpsServer::completed_handshakes() const {
  return SSL_CTX_sess_accept_good(impl_->tls_.native_handle());
}
long HttpsServer::open_connections() const { return impl_->open_connections_; }

}  // namespace cgpu
