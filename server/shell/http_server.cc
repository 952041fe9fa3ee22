#include "shell/http_server.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
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

// After a refusal that closes the connection, how long and how much of what the client is still
// sending is read and dropped before closing (see "lingering close" in the header). A client that
// reads while it writes (Go's net/http, curl) has the answer at once and stops; this only lets
// one that writes everything first still read it, within reason.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::uint64_t kLingerBytes = 16ULL << 20;
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

using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using PlainStream = beast::tcp_stream;
using RequestParser = http::request_parser<http::string_body>;

std::string_view View(beast::string_view text) { return {text.data(), text.size()}; }

Status ConfigureTls(SSL_CTX& context, CertificateStore* certificates,
                    const std::string& client_ca_pem) {
  if (certificates == nullptr) return OkStatus();  // plain HTTP
  if (!ConfigureServerTls(context, *certificates)) {
    return Internal("TLS setup failed: " + TakeOpenSslError());
  }
  if (client_ca_pem.empty()) return OkStatus();
  Status client_ca = RequireClientCertificates(context, client_ca_pem);
  if (!client_ca.ok()) return InvalidArgument("client CA: " + client_ca.message());
  return OkStatus();
}

}  // namespace

class HttpServer::Impl {
 public:
  // `certificates`: null for plain HTTP.
  Impl(HostPort listen, HttpLimits limits, CertificateStore* certificates,
       const std::string& client_ca_pem, Handler handler, RefusalHandler refuse)
      : listen_(std::move(listen)),
        tls_enabled_(certificates != nullptr),
        limits_(limits),
        handler_(std::move(handler)),
        refuse_(std::move(refuse)),
        loops_(MakeLoops(limits.threads)),
        tls_(net::ssl::context::tls_server),
        tls_status_(ConfigureTls(*tls_.native_handle(), certificates, client_ca_pem)),
        acceptor_(loops_.front()->get_executor()),
        accept_retry_(acceptor_.get_executor()),
        blocking_(static_cast<std::size_t>(std::max(1, limits.blocking_threads))) {}

  Status Bind();
  void Run();
  void Stop();

  class Connection;
  template <class Stream>
  class Session;
  void Remember(const std::shared_ptr<Connection>& session);
  void Forget(Connection* session);

  bool MethodAllowed(std::string_view method) const {
    if (limits_.methods.empty()) return true;
    for (const std::string& allowed : limits_.methods) {
      if (allowed == method) return true;
    }
    return false;
  }

  const HostPort listen_;
  const bool tls_enabled_;
  const HttpLimits limits_;
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
  // guarded by sessions_mu_
  std::unordered_map<Connection*, std::weak_ptr<Connection>> sessions_;
};

// What Stop() needs of a session, whatever its stream.
class HttpServer::Impl::Connection {
 public:
  virtual ~Connection() = default;
  virtual void CloseIfIdle() = 0;
};

// One connection, over TLS or plain. Every step runs on the connection's loop, so a session never
// races itself; sessions never share anything but the (thread-safe) handlers and counters.
template <class Stream>
class HttpServer::Impl::Session : public Connection,
                                  public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, PlainStream>;

 public:
  Session(Impl& server, tcp::socket&& socket)
      : Session(server, std::move(socket), std::bool_constant<kTls>{}) {}
  ~Session() override {
    ReleaseBody();
    --server_.open_connections_;
    server_.Forget(this);
  }

  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

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
  void CloseIfIdle() override {
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

  Session(Impl& server, tcp::socket&& socket, std::true_type /*tls*/)
      : server_(server),
        stream_(std::move(socket), server.tls_),
        grace_timer_(stream_.get_executor()) {
    ++server_.open_connections_;
  }
  Session(Impl& server, tcp::socket&& socket, std::false_type /*tls*/)
      : server_(server), stream_(std::move(socket)), grace_timer_(stream_.get_executor()) {
    ++server_.open_connections_;
  }

  beast::tcp_stream& Socket() { return beast::get_lowest_layer(stream_); }

  void Handshake() {
    if constexpr (kTls) {
      phase_ = Phase::kHandshake;
      Socket().expires_after(server_.limits_.read_timeout);
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = shared_from_this()](ErrorCode error) {
                                if (!error) self->WaitForRequest();
                              });
    } else {
      WaitForRequest();
    }
  }

  // Bytes of a request already here: in our buffer, in OpenSSL's, or in the socket's.
  bool HasPendingBytes() {
    ErrorCode ignored;
    if constexpr (kTls) {
      if (SSL_pending(stream_.native_handle()) > 0) return true;
    }
    return buffer_.size() > 0 || Socket().socket().available(ignored) > 0;
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
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits_.max_header_bytes));
    // No limit while the header is read: Beast would refuse a long Content-Length there, before
    // the method is known. OnHeader() judges both and then applies the limit to chunked bodies.
    // (Not boost::none: Beast 1.74 compares the length against it as an optional, and every
    // length is greater than none.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](ErrorCode error, std::size_t) { self->OnHeader(error); });
  }

  void OnHeader(ErrorCode error) {
    if (error) return OnReadError(error);
    if (!server_.MethodAllowed(View(parser_->get().method_string()))) {
      return Refuse(HttpRefusal::kMethodNotAllowed);
    }
    const auto length = parser_->content_length();
    if (length && *length > static_cast<std::uint64_t>(server_.limits_.max_body_bytes)) {
      return Refuse(HttpRefusal::kBodyTooLarge);
    }
    const long long body = length ? static_cast<long long>(*length)
                                  : server_.limits_.max_body_bytes;  // chunked: at most this
    if (!server_.ReserveBody(body)) return Refuse(HttpRefusal::kOverloaded);
    reserved_ = body;
    parser_->body_limit(static_cast<std::uint64_t>(server_.limits_.max_body_bytes));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](ErrorCode read_error, std::size_t) {
                       if (read_error) return self->OnReadError(read_error);
                       self->Serve();
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

  // An answer after which the connection cannot be trusted to be in step: always closes, after a
  // lingering read of what the client may still be sending.
  void Refuse(HttpRefusal refusal) {
    linger_ = true;
    Answer(server_.refuse_(refusal), false);
  }

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
    head_only_ = request.method() == http::verb::head;
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
    response_->keep_alive(keep_alive);
    if (head_only_) {  // the length of what GET would send, and no body
      response_->content_length(answer.body.size());
      head_only_ = false;
    } else {
      response_->body() = std::move(answer.body);
      response_->prepare_payload();
    }
    Socket().expires_after(server_.limits_.write_timeout);
    http::async_write(stream_, *response_,
                      [self = shared_from_this(), keep_alive](ErrorCode error, std::size_t) {
                        self->response_.reset();
                        if (error) return;
                        if (keep_alive) return self->WaitForRequest();
                        if (self->linger_) return self->Linger(kLingerBytes);
                        self->ShutDown();
                      });
  }

  // After a refusal: reads and drops what the client is still sending until it stops (it read the
  // answer), kLingerTime passes or `left` bytes went by, then closes. The read buffer is reused:
  // this costs no memory, whatever the client sends.
  void Linger(std::uint64_t left) {
    if (left == 0 || server_.stopping_) return ShutDown();
    if (left == kLingerBytes) Socket().expires_after(kLingerTime);  // once, for the whole linger
    buffer_.clear();
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(left, kReadChunk));
    stream_.async_read_some(buffer_.prepare(chunk),
                            [self = shared_from_this(), left](ErrorCode error, std::size_t bytes) {
                              if (error) return;  // the client closed, or the time is up
                              self->Linger(left - std::min<std::uint64_t>(left, bytes));
                            });
  }

  // "Connection: close" was sent: say goodbye (at the TLS level too), briefly.
  void ShutDown() {
    if constexpr (kTls) {
      Socket().expires_after(kTlsShutdownTimeout);
      stream_.async_shutdown([self = shared_from_this()](ErrorCode) {});
    } else {
      ErrorCode ignored;
      Socket().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  Impl& server_;
  Stream stream_;
  net::steady_timer grace_timer_;  // CloseIfIdle(): the end of a fresh connection's grace
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::optional<http::response<http::string_body>> response_;
  Phase phase_ = Phase::kHandshake;
  int served_ = 0;
  bool head_only_ = false;  // the request being answered is a HEAD
  bool linger_ = false;     // the answer being written is a refusal: linger before closing
  long long reserved_ = 0;  // of the server's body budget, for the request in progress
};

Status HttpServer::Impl::Bind() {
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

void HttpServer::Impl::Accept() {
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
    if (tls_enabled_) {
      std::make_shared<Session<TlsStream>>(*this, std::move(socket))->Start();
    } else {
      std::make_shared<Session<PlainStream>>(*this, std::move(socket))->Start();
    }
    Accept();
  });
}

void HttpServer::Impl::Run() {
  // If Bind() failed or Stop() came first, the accept fails at once and the loop runs dry.
  // Loops without connections have no work yet; these keep them running until Stop().
  for (auto& loop : loops_) keep_running_.push_back(net::make_work_guard(*loop));
  net::post(acceptor_.get_executor(), [this] { Accept(); });
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < loops_.size(); ++i) helpers.emplace_back([this, i] { loops_[i]->run(); });
  loops_.front()->run();
  for (auto& helper : helpers) helper.join();
}

void HttpServer::Impl::Stop() {
  stopping_ = true;
  // On the accepting loop: no accept completes after the listener is closed, so the list of
  // sessions below is final.
  net::post(acceptor_.get_executor(), [this] {
    ErrorCode ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    for (auto& guard : keep_running_) guard.reset();  // each loop ends when its last session does
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard<std::mutex> lock(sessions_mu_);
      for (auto& [raw, weak] : sessions_) {
        if (auto session = weak.lock()) open.push_back(std::move(session));
      }
    }
    for (auto& session : open) session->CloseIfIdle();
  });
}

void HttpServer::Impl::Remember(const std::shared_ptr<Connection>& session) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  sessions_.emplace(session.get(), session);
}

void HttpServer::Impl::Forget(Connection* session) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  sessions_.erase(session);
}

HttpServer::HttpServer(HostPort listen, HttpLimits limits, CertificateStore& certificates,
                       std::string client_ca_pem, Handler handler, RefusalHandler refuse)
    : impl_(std::make_unique<Impl>(std::move(listen), std::move(limits), &certificates,
                                   client_ca_pem, std::move(handler), std::move(refuse))) {}

HttpServer::HttpServer(HostPort listen, HttpLimits limits, Handler handler, RefusalHandler refuse)
    : impl_(std::make_unique<Impl>(std::move(listen), std::move(limits), nullptr, "",
                                   std::move(handler), std::move(refuse))) {}

HttpServer::~HttpServer() = default;

Status HttpServer::Bind() { return impl_->Bind(); }
int HttpServer::port() const { return impl_->port_; }
void HttpServer::Run() { impl_->Run(); }
void HttpServer::BeginDrain() { impl_->draining_ = true; }
void HttpServer::Stop() { impl_->Stop(); }
long HttpServer::completed_handshakes() const {
  return impl_->tls_enabled_ ? SSL_CTX_sess_accept_good(impl_->tls_.native_handle()) : 0;
}
long HttpServer::open_connections() const { return impl_->open_connections_; }

}  // namespace cgpu
