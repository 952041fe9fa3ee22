#include "adapters/kube_client.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace cgpu {
namespace {

using namespace std::chrono_literals;

constexpr size_t kMaxErrorBody = 64 * 1024;
// How often a cancelled call re-issues httplib's stop() until the request notices it (see Send).
constexpr auto kStopRetry = 10ms;

bool IsIpAddress(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

std::string BracketIpv6(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string TrimToken(std::string text) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
  text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
  return text;
}

// The first OpenSSL error queued on this thread, as text; clears the queue.
std::string TakeSslError() {
  const unsigned long code = ERR_peek_error();
  ERR_clear_error();
  if (code == 0) return "";
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : "";
}

// Per-call state the certificate verify callback writes into; reached through the SSL_CTX,
// which belongs to one call's SSLClient alone.
struct CallState {
  std::string verify_error;
};

int CallStateIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int RecordVerifyError(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok == 1) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return 0;
  auto* state =
      static_cast<CallState*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), CallStateIndex()));
  if (state != nullptr && state->verify_error.empty()) {
    state->verify_error = X509_verify_cert_error_string(X509_STORE_CTX_get_error(store));
  }
  return 0;
}

std::string DescribeTransportError(httplib::Error error, const CallState& state,
                                   const std::string& host_port) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect to " + host_port + " (refused, unreachable or timed out)";
    case httplib::Error::SSLConnection: {
      if (!state.verify_error.empty()) {
        return "TLS handshake with " + host_port +
               " failed: server certificate rejected: " + state.verify_error;
      }
      const std::string reason = TakeSslError();
      return "TLS handshake with " + host_port + " failed" + (reason.empty() ? "" : ": " + reason);
    }
    case httplib::Error::Read:
      return "connection lost or timed out while reading the response";
    case httplib::Error::Write:
      return "connection lost while sending the request";
    case httplib::Error::ConnectionTimeout:
      return "connecting to " + host_port + " timed out";
    default:
      return httplib::to_string(error);
  }
}

}  // namespace

// ---- StreamCancel ----

void StreamCancel::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

bool StreamCancel::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool StreamCancel::WaitFor(std::chrono::milliseconds duration, const Clock& clock) const {
  std::unique_lock<std::mutex> lock(mu_);
  return clock.WaitUntil(lock, cv_, clock.Now() + duration, [this] { return cancelled_; });
}

// ---- KubeClient ----

struct KubeClient::TlsMaterial {
  std::vector<X509*> ca;            // trust anchors from config.ca_pem
  X509* client_cert = nullptr;      // leaf
  std::vector<X509*> client_chain;  // intermediates after the leaf
  EVP_PKEY* client_key = nullptr;

  TlsMaterial() = default;
  TlsMaterial(const TlsMaterial&) = delete;
  TlsMaterial& operator=(const TlsMaterial&) = delete;
  ~TlsMaterial() {
    for (X509* cert : ca) X509_free(cert);
    for (X509* cert : client_chain) X509_free(cert);
    X509_free(client_cert);
    EVP_PKEY_free(client_key);
  }
};

struct KubeClient::Exchange {
  std::string method;
  std::string path;
  std::string content_type;  // of `body`, when there is one
  std::string body;
  std::chrono::milliseconds read_timeout{0};
  std::function<void(int status)> on_status;         // when the headers arrive
  std::function<bool(const char*, size_t)> on_data;  // false: stop reading, not an error
  StreamCancel* cancel = nullptr;
  // Get and Patch: take a kept-alive connection and keep this one for the next call.
  bool reuse_connection = false;
  // When set (and `cancel` is not): the call is abandoned at this moment.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  int* status_out = nullptr;
};

KubeClient::KubeClient(KubeConfig config, KubeClientOptions options)
    : config_(std::move(config)), options_(std::move(options)), last_token_(config_.token) {
  setup_error_ = CheckKubeConfig(config_);
  if (!setup_error_.ok()) return;
  auto tls = std::make_shared<TlsMaterial>();
  tls->ca = ParsePemCertificates(config_.ca_pem);
  if (!config_.client_cert_pem.empty()) {
    std::vector<X509*> chain = ParsePemCertificates(config_.client_cert_pem);
    tls->client_cert = chain.front();  // CheckKubeConfig saw at least one
    tls->client_chain.assign(chain.begin() + 1, chain.end());
    BIO* bio = BIO_new_mem_buf(config_.client_key_pem.data(),
                               static_cast<int>(config_.client_key_pem.size()));
    tls->client_key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ERR_clear_error();
  }
  tls_ = std::move(tls);
}

KubeClient::~KubeClient() = default;

std::string KubeClient::Describe() const {
  return "https://" + BracketIpv6(config_.host) + ":" + std::to_string(config_.port) +
         (config_.source.empty() ? "" : " (" + config_.source + ")");
}

StatusOr<std::string> KubeClient::CurrentToken() const {
  std::lock_guard<std::mutex> lock(token_mu_);
  if (config_.token_file.empty()) return last_token_;
  std::ifstream in(config_.token_file, std::ios::binary);
  std::ostringstream content;
  if (in) content << in.rdbuf();
  std::string token = TrimToken(content.str());
  if (!token.empty()) {
    last_token_ = std::move(token);
  } else if (last_token_.empty()) {
    // A token being swapped is never empty for long, and the last good one is still valid for a
    // while (projected tokens live an hour at least): only fail when there never was one.
    return Unavailable("cannot read the bearer token from " + config_.token_file);
  }
  return last_token_;
}

// A configured client for one connection to the API server: TLS trust, host check and client
// certificate set up once; the connection is made on first use and, with keep-alive, kept.
std::unique_ptr<httplib::SSLClient> KubeClient::NewConnection(std::string& error) const {
  std::unique_ptr<httplib::SSLClient> client;
  if (tls_->client_cert != nullptr) {
    // This constructor installs the certificate and key on the client's own SSL_CTX.
    client = std::make_unique<httplib::SSLClient>(config_.host, config_.port, tls_->client_cert,
                                                  tls_->client_key);
  } else {
    client = std::make_unique<httplib::SSLClient>(config_.host, config_.port);
  }
  if (!client->is_valid()) {
    error = "cannot set up TLS: " + TakeSslError();
    return nullptr;
  }
  SSL_CTX* context = client->ssl_context();
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  for (X509* intermediate : tls_->client_chain) SSL_CTX_add1_chain_cert(context, intermediate);

  // Verification happens inside the handshake, done by OpenSSL with our store and host check;
  // httplib's own check is off because its load_certs() would add the system default paths to
  // whatever store the context has, widening trust beyond the configured CA.
  client->enable_server_certificate_verification(false);
  if (config_.insecure_skip_tls_verify) {
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
  } else {
    if (tls_->ca.empty()) {
      SSL_CTX_set_default_verify_paths(context);
    } else {
      X509_STORE* store = X509_STORE_new();
      for (X509* cert : tls_->ca) X509_STORE_add_cert(store, cert);
      SSL_CTX_set_cert_store(context, store);  // takes ownership
    }
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(context);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (IsIpAddress(config_.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, config_.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, config_.host.c_str(), config_.host.size());
    }
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, RecordVerifyError);
  }
  client->set_follow_location(false);
  client->set_url_encode(false);  // paths arrive escaped; httplib would re-escape '+' and ','
  client->set_tcp_nodelay(true);  // a request is one small write; never hold it for an ACK
  return client;
}

// Connection reuse. Get and Patch keep their connection open afterwards and put it back here for
// the next call (a TLS handshake per read would cost more than the read: reads on the admission
// path are many and small); streams always use a connection of their own. A connection the
// server closed while idle is noticed by httplib before reuse, or fails the first read of the
// answer: a call on a reused connection that fails before any answer arrived is sent once more on
// a fresh one (GET and PATCH of our own are safe to repeat: nothing was answered, and a merge
// patch of labels is idempotent).
std::unique_ptr<httplib::SSLClient> KubeClient::TakeIdleConnection() const {
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (idle_.empty()) return nullptr;
  std::unique_ptr<httplib::SSLClient> client = std::move(idle_.back());
  idle_.pop_back();
  return client;
}

void KubeClient::ReturnIdleConnection(std::unique_ptr<httplib::SSLClient> client) const {
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(client));
}

// Cancellation. httplib 0.11 has one thread-safe way to abort a request from another thread:
// ClientImpl::stop(), which shuts the socket down so the blocked read fails at once. It only
// works while the request holds the socket, though: called before send() has connected, it finds
// no socket, does nothing, and the request would then proceed and wait out its read timeout. So
// while a call runs, a watcher thread waits for Cancel() (or the deadline) and then calls stop()
// every 10 ms until the call has returned: whichever stop() lands after the connection is up
// ends it. stop() waits for a TCP connect or TLS handshake in progress (bounded by
// connect_timeout). Between the moment the call finishes and the watcher is joined, stop() finds
// a closed socket: harmless.
Status KubeClient::Send(const Exchange& exchange) const {
  std::string what = exchange.method + " " + exchange.path;
  if (what.size() > 300) what = what.substr(0, 300) + "...";
  if (!setup_error_.ok()) return Status(setup_error_.code(), what + ": " + setup_error_.message());
  if (exchange.cancel != nullptr && exchange.cancel->cancelled()) {
    return Unavailable(what + ": cancelled");
  }
  if (exchange.deadline && std::chrono::steady_clock::now() >= *exchange.deadline) {
    return DeadlineExceeded(what + ": no time left before the deadline");
  }
  StatusOr<std::string> token = CurrentToken();
  if (!token.ok()) return Unavailable(what + ": " + token.status().message());

  std::unique_ptr<httplib::SSLClient> client;
  if (exchange.reuse_connection) client = TakeIdleConnection();
  const bool reused = client != nullptr;
  if (!reused) {
    std::string error;
    client = NewConnection(error);
    if (!client) return Internal(what + ": " + error);
  }
  bool answered = false;  // the server's answer (its status line) arrived
  Status status = SendOn(*client, exchange, *token, what, answered);
  if (reused && !status.ok() && !answered && status.code() == StatusCode::kUnavailable &&
      !(exchange.cancel != nullptr && exchange.cancel->cancelled())) {
    // The server closed the idle connection under us: once more on a fresh one.
    std::string error;
    client = NewConnection(error);
    if (!client) return Internal(what + ": " + error);
    status = SendOn(*client, exchange, *token, what, answered);
  }
  if (status.ok() && exchange.reuse_connection && client->is_socket_open()) {
    ReturnIdleConnection(std::move(client));
  }
  return status;
}

Status KubeClient::SendOn(httplib::SSLClient& client, const Exchange& exchange,
                          const std::string& token, const std::string& what, bool& answered) const {
  CallState state;  // outlives the call; the SSL_CTX points at it only while it runs
  SSL_CTX* context = client.ssl_context();
  SSL_CTX_set_ex_data(context, CallStateIndex(), &state);

  // Each phase's own timeout is cut to what is left of the deadline, and the watcher below stops
  // the call at the deadline whatever phase it is in.
  auto within_deadline = [&](std::chrono::milliseconds timeout) {
    if (!exchange.deadline) return timeout;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        *exchange.deadline - std::chrono::steady_clock::now());
    return std::clamp(left, std::chrono::milliseconds(1), timeout);
  };
  client.set_connection_timeout(within_deadline(options_.connect_timeout));
  client.set_read_timeout(within_deadline(exchange.read_timeout));
  client.set_write_timeout(within_deadline(options_.write_timeout));
  client.set_keep_alive(exchange.reuse_connection);

  httplib::Request request;
  request.method = exchange.method;
  request.path = exchange.path;
  request.headers = {{"Accept", "application/json"},
                     {"User-Agent", "cgpu-guard/" + options_.version}};
  if (!token.empty()) request.headers.emplace("Authorization", "Bearer " + token);
  if (!exchange.body.empty() || !exchange.content_type.empty()) {
    request.headers.emplace("Content-Type", exchange.content_type);
    request.body = exchange.body;
  }
  StreamCancel deadline_cancel;  // fired by the watcher at the deadline
  StreamCancel* const cancel =
      exchange.cancel == nullptr && exchange.deadline ? &deadline_cancel : exchange.cancel;
  bool deadline_passed = false;  // guarded by cancel->mu_
  bool stopped_by_caller = false;
  request.response_handler = [&](const httplib::Response& response) {
    answered = true;
    if (exchange.status_out != nullptr) *exchange.status_out = response.status;
    if (exchange.on_status) exchange.on_status(response.status);
    return cancel == nullptr || !cancel->cancelled();
  };
  request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    if (cancel != nullptr && cancel->cancelled()) return false;
    if (!exchange.on_data(data, length)) {
      stopped_by_caller = true;
      return false;
    }
    return true;
  };

  bool done = false;  // guarded by cancel->mu_
  std::thread watcher;
  if (cancel != nullptr) {
    try {
      watcher = std::thread([&] {
        std::unique_lock<std::mutex> lock(cancel->mu_);
        while (!done) {
          if (!cancel->cancelled_ && cancel == &deadline_cancel) {
            if (!cancel->cv_.wait_until(lock, *exchange.deadline,
                                        [&] { return done || cancel->cancelled_; })) {
              cancel->cancelled_ = true;
              deadline_passed = true;
            }
            continue;
          }
          if (!cancel->cancelled_) {
            cancel->cv_.wait(lock);
            continue;
          }
          lock.unlock();
          client.stop();
          lock.lock();
          cancel->cv_.wait_for(lock, kStopRetry, [&] { return done; });
        }
      });
    } catch (const std::system_error& error) {
      return Unavailable(what + ": cannot start a thread: " + error.what());
    }
  }

  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  ERR_clear_error();
  const bool sent = client.send(request, response, error);
  const std::string failure =
      sent ? ""
           : DescribeTransportError(error, state,
                                    BracketIpv6(config_.host) + ":" + std::to_string(config_.port));
  if (cancel != nullptr) {
    {
      std::lock_guard<std::mutex> lock(cancel->mu_);
      done = true;
    }
    cancel->cv_.notify_all();
    watcher.join();
  }
  SSL_CTX_set_ex_data(context, CallStateIndex(), nullptr);
  if (exchange.status_out != nullptr && response.status > 0) *exchange.status_out = response.status;

  if (deadline_passed) return DeadlineExceeded(what + ": no answer within the deadline");
  if (cancel != nullptr && cancel->cancelled()) return Unavailable(what + ": cancelled");
  if (exchange.deadline && !sent && error == httplib::Error::Read &&
      std::chrono::steady_clock::now() >= *exchange.deadline) {
    return DeadlineExceeded(what + ": no answer within the deadline");
  }
  if (sent || stopped_by_caller) {
    // The caller stopped reading part-way: the connection is not in step for another request.
    if (stopped_by_caller) client.stop();
    return OkStatus();
  }
  return Unavailable(what + ": " + failure + " (" + Describe() + ")");
}

StatusOr<KubeResponse> KubeClient::Get(const std::string& path_and_query) const {
  return Get(path_and_query, nullptr);
}

StatusOr<KubeResponse> KubeClient::Get(const std::string& path_and_query, StreamCancel* cancel,
                                       size_t max_bytes) const {
  Exchange exchange;
  exchange.method = "GET";
  exchange.path = path_and_query;
  exchange.cancel = cancel;
  return Collect(std::move(exchange), max_bytes);
}

StatusOr<KubeResponse> KubeClient::Get(const std::string& path_and_query,
                                       std::chrono::steady_clock::time_point deadline,
                                       size_t max_bytes) const {
  Exchange exchange;
  exchange.method = "GET";
  exchange.path = path_and_query;
  exchange.deadline = deadline;
  return Collect(std::move(exchange), max_bytes);
}

StatusOr<KubeResponse> KubeClient::Patch(const std::string& path, const std::string& content_type,
                                         const std::string& body) const {
  Exchange exchange;
  exchange.method = "PATCH";
  exchange.path = path;
  exchange.content_type = content_type;
  exchange.body = body;
  return Collect(std::move(exchange));
}

StatusOr<KubeResponse> KubeClient::Write(const std::string& method, const std::string& path,
                                         const std::string& json_body,
                                         std::chrono::steady_clock::time_point deadline) const {
  Exchange exchange;
  exchange.method = method;
  exchange.path = path;
  exchange.content_type = "application/json";
  exchange.body = json_body;
  exchange.deadline = deadline;
  return Collect(std::move(exchange));
}

StatusOr<KubeResponse> KubeClient::Collect(Exchange exchange, size_t max_bytes) const {
  if (max_bytes == 0) max_bytes = options_.max_response_bytes;
  KubeResponse response;
  bool too_large = false;
  exchange.read_timeout = options_.read_timeout;
  exchange.reuse_connection = true;
  exchange.status_out = &response.status;
  exchange.on_data = [&](const char* data, size_t length) {
    if (response.body.size() + length > max_bytes) {
      too_large = true;
      response.body = std::string();  // nothing of it is kept
      return false;
    }
    response.body.append(data, length);
    return true;
  };
  if (Status status = Send(exchange); !status.ok()) return status;
  if (too_large) {
    return ResourceExhausted(exchange.method + " " + exchange.path + ": response larger than " +
                             std::to_string(max_bytes) + " bytes");
  }
  return response;
}

Status KubeClient::Stream(const std::string& path_and_query,
                          const std::function<bool(std::string_view line)>& on_line,
                          int* status_out, std::string* error_body, StreamCancel* cancel,
                          const std::function<void(int status)>& on_response) const {
  int status = 0;
  std::string pending;  // bytes of the line being received
  size_t scanned = 0;   // pending[0, scanned) holds no '\n'
  std::string failure;  // set when we stop the stream for a reason of our own
  if (error_body != nullptr) error_body->clear();

  Exchange exchange;
  exchange.method = "GET";
  exchange.path = path_and_query;
  exchange.read_timeout = options_.stream_idle_timeout;
  exchange.cancel = cancel;
  exchange.status_out = &status;
  exchange.on_status = [&](int code) {
    if (on_response) on_response(code);
  };
  exchange.on_data = [&](const char* data, size_t length) {
    if (status != 200) {
      if (error_body != nullptr && error_body->size() < kMaxErrorBody) {
        error_body->append(data, std::min(length, kMaxErrorBody - error_body->size()));
      }
      return true;
    }
    pending.append(data, length);
    size_t start = 0;
    for (size_t newline = pending.find('\n', scanned); newline != std::string::npos;
         newline = pending.find('\n', start)) {
      std::string_view line(pending.data() + start, newline - start);
      start = newline + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      bool more = false;
      try {
        more = on_line(line);
      } catch (const std::exception& error) {
        failure = std::string("the line handler threw: ") + error.what();
        return false;
      } catch (...) {
        failure = "the line handler threw";
        return false;
      }
      if (!more) return false;
    }
    pending.erase(0, start);
    scanned = pending.size();
    if (pending.size() > options_.max_line_bytes) {
      failure = "an event line exceeds " + std::to_string(options_.max_line_bytes) + " bytes";
      return false;
    }
    return true;
  };

  Status result = Send(exchange);
  if (status_out != nullptr) *status_out = status;
  if (!result.ok()) return result;
  if (!failure.empty()) return Unavailable("GET " + path_and_query + ": " + failure);
  return OkStatus();
}

std::string EscapeQueryValue(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string escaped;
  escaped.reserve(value.size());
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '.' || c == '_' || c == '~') {
      escaped += c;
    } else {
      escaped += '%';
      escaped += kHex[byte >> 4];
      escaped += kHex[byte & 0xF];
    }
  }
  return escaped;
}

std::string DescribeHttpError(int status, const std::string& body) {
  std::string detail = body.substr(0, 200);
  simdjson::dom::parser parser;
  simdjson::dom::element parsed;
  std::string_view message;
  if (parser.parse(body).get(parsed) == simdjson::SUCCESS &&
      parsed["message"].get(message) == simdjson::SUCCESS) {
    detail = std::string(message);
  }
  return "HTTP " + std::to_string(status) + (detail.empty() ? "" : ": " + detail);
}

}  // namespace cgpu
