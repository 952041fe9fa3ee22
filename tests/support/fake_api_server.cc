#include "support/fake_api_server.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <csignal>
#include <stdexcept>

namespace cgpu::testing {
namespace {

using namespace std::chrono_literals;

// How often an idle watch stream looks at the clock, the stop flag and its peer.
constexpr auto kWatchPoll = 20ms;

bool PeerClosed(int fd) {
  if (fd < 0) return false;
  pollfd poll_fd{fd, POLLIN | POLLRDHUP, 0};
  // The client sends nothing after its GET: anything readable is EOF or a close_notify.
  return ::poll(&poll_fd, 1, 0) > 0 && (poll_fd.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR));
}

}  // namespace

FakeApiServer::FakeApiServer(FakeApiServerOptions options)
    : ca_(MakeTestCa("fake kube-apiserver CA")) {
  std::signal(SIGPIPE, SIG_IGN);
  const ServingPair serving = MakeServingPair(ca_, "kube-apiserver");
  server_ = std::make_unique<httplib::SSLServer>([&](SSL_CTX& context) {
    X509* cert = ParseCert(serving.cert_pem);
    EVP_PKEY* key = ParseKey(serving.key_pem);
    const bool ok =
        SSL_CTX_use_certificate(&context, cert) == 1 && SSL_CTX_use_PrivateKey(&context, key) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    SSL_CTX_set_min_proto_version(&context, TLS1_2_VERSION);
    if (!options.client_ca_pem.empty()) {
      X509_STORE* store = X509_STORE_new();
      X509* client_ca = ParseCert(options.client_ca_pem);
      X509_STORE_add_cert(store, client_ca);
      X509_free(client_ca);
      SSL_CTX_set_cert_store(&context, store);
      SSL_CTX_set_verify(&context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return ok;
  });
  if (!server_->is_valid()) throw std::runtime_error("fake API server: TLS setup failed");
  // Every open watch holds a worker for its whole life, and so does an idle kept-alive
  // connection until it times out. The real API server (Go's net/http) serves each connection on
  // a goroutine of its own, with no pool to wait for: plenty of workers, so that a burst of
  // clients (several replicas, each with its request pool) is never left waiting to connect.
  server_->new_task_queue = [] { return new httplib::ThreadPool(256); };
  // As the real API server: Go's net/http keeps HTTP/1.1 connections alive for the next request,
  // and Go's net sets TCP_NODELAY on every TCP connection (without it, an answer written in
  // several pieces waits on the client's delayed ACKs: milliseconds a request on loopback).
  server_->set_keep_alive_max_count(1000);
  server_->set_keep_alive_timeout(2);
  server_->set_tcp_nodelay(true);
  const auto handle = [this](const httplib::Request& request, httplib::Response& response) {
    Handle(request, response);
  };
  server_->Get(".*", handle);
  server_->Patch(".*", handle);
  server_->Post(".*", handle);
  server_->Put(".*", handle);
  server_->Delete(".*", handle);
  port_ = server_->bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("fake API server: cannot bind 127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() before the accept loop runs would be lost and the join below would hang.
  if (!WaitUntil([this] { return server_->is_running(); })) {
    throw std::runtime_error("fake API server: did not start");
  }
}

FakeApiServer::~FakeApiServer() { Stop(); }

void FakeApiServer::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  StopServing();
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

void FakeApiServer::Handle(const httplib::Request& request, httplib::Response& response) {
  ApiRequest api;
  api.method = request.method;
  api.path = request.path;
  for (const auto& [key, value] : request.params) api.params.emplace(key, value);
  api.authorization = request.get_header_value("Authorization");
  api.user_agent = request.get_header_value("User-Agent");
  api.content_type = request.get_header_value("Content-Type");
  api.body = request.body;
  if (request.ssl != nullptr) {
    if (X509* peer = SSL_get1_peer_certificate(request.ssl)) {
      char name[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof(name));
      api.client_cert_cn = name;
      X509_free(peer);
    }
  }
  ApiAnswer answer = Serve(api);
  response.status = answer.status;
  if (answer.retry_after_seconds > 0) {
    response.set_header("Retry-After", std::to_string(answer.retry_after_seconds));
  }
  if (!answer.watch) {
    response.set_content(std::move(answer.body), "application/json");
    return;
  }
  const int fd = request.ssl != nullptr ? SSL_get_fd(request.ssl) : -1;
  response.set_chunked_content_provider(
      "application/json",
      [this, watch = answer.watch, fd](size_t, httplib::DataSink& sink) {
        std::vector<std::string> lines;
        const WatchStep step =
            NextWatchLines(watch, lines, std::chrono::steady_clock::now() + kWatchPoll);
        if (step == WatchStep::kCut) return false;  // cut without the final chunk
        for (const std::string& line : lines) {
          if (!sink.write(line.data(), line.size())) return false;
        }
        if (step == WatchStep::kEnd) {
          sink.done();
          return true;
        }
        return !PeerClosed(fd);
      },
      [this, watch = answer.watch](bool) { CloseWatch(watch); });
}

}  // namespace cgpu::testing
