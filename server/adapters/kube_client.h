// KubeClient: HTTPS requests to the Kubernetes API server.
//
// Get and Patch reuse kept-alive connections (one call on a connection at a time, at most
// max_idle_connections kept idle); a stream always has a connection of its own. A KubeClient may
// be used from any number of threads at once. TLS: the
// server certificate chain is verified inside the handshake against the KubeConfig's CA bundle
// alone (an X509_STORE built from memory; the system store only when no CA is given), and its
// SAN must match the host (DNS name or IP address); insecure_skip_tls_verify turns all of that
// off. Authentication: `Authorization: Bearer` with the token file re-read on every call (a
// projected service account token rotates under us), and/or a client certificate. Requests say
// `Accept: application/json` and `User-Agent: cgpu-guard/<version>`.
//
// Errors are values: a transport failure (connect, TLS, a dropped connection, a timeout) is
// Unavailable with a message naming the request and the server; any HTTP answer, 4xx and 5xx
// included, is returned for the caller to interpret. A configuration that fails
// CheckKubeConfig() makes every call return that error. Writing to a peer that has closed the
// connection can raise SIGPIPE inside OpenSSL: the process must ignore SIGPIPE (the shell does).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/kube_api.h"
#include "adapters/kube_config.h"
#include "core/status.h"

namespace httplib {
class SSLClient;
}

namespace cgpu {

struct KubeClientOptions {
  // TCP connect and TLS handshake, each. Also bounds how long a Cancel() can take to land when
  // it arrives mid-handshake.
  std::chrono::milliseconds connect_timeout{5'000};
  // Get/Patch: the longest wait for the next bytes of the answer (not the whole answer).
  std::chrono::milliseconds read_timeout{30'000};
  // Stream: the longest silence before the stream counts as dead. Keep it above the watch's
  // timeoutSeconds, after which the API server ends the stream itself.
  std::chrono::milliseconds stream_idle_timeout{330'000};
  std::chrono::milliseconds write_timeout{30'000};
  // Bodies larger than this (Get, Patch, error bodies of Stream excepted) fail as Unavailable
  // rather than exhaust memory. A list of 100k pods is a few hundred MiB.
  size_t max_response_bytes = size_t{1} << 30;
  // A single watch event larger than this fails the stream. etcd caps objects at 1.5 MiB.
  size_t max_line_bytes = size_t{64} << 20;
  std::string version = "dev";  // sent as User-Agent: cgpu-guard/<version>
  // Idle kept-alive connections kept for the next Get or Patch.
  size_t max_idle_connections = 8;
};

class KubeClient final : public KubeApi {
 public:
  explicit KubeClient(KubeConfig config, KubeClientOptions options = {});
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  // Plain GET (path includes the query, already escaped). Transport failure ->
  // Unavailable("GET /api/v1/pods: cannot connect to ..."). Any HTTP status is returned.
  StatusOr<KubeResponse> Get(const std::string& path_and_query) const override;
  // The same, abandoned promptly when `cancel` fires (then Unavailable "... cancelled"). An
  // answer larger than `max_bytes` (0: max_response_bytes) is dropped as it arrives:
  // ResourceExhausted, with nothing kept.
  StatusOr<KubeResponse> Get(const std::string& path_and_query, StreamCancel* cancel,
                             size_t max_bytes = 0) const override;
  // The same, given up at `deadline`: connecting, the TLS handshake and reading the answer all
  // count against it (then DeadlineExceeded "GET ...: no answer within the deadline"). For reads
  // on the admission path, where the API server itself is waiting for the answer.
  StatusOr<KubeResponse> Get(const std::string& path_and_query,
                             std::chrono::steady_clock::time_point deadline,
                             size_t max_bytes = 0) const override;

  // PATCH with a content type, e.g. application/merge-patch+json.
  StatusOr<KubeResponse> Patch(const std::string& path, const std::string& content_type,
                               const std::string& body) const override;
  // POST (create) or PUT (replace) of a JSON object, given up at `deadline` like the Get above.
  // Any HTTP status is returned: 409 is the caller's to read (AlreadyExists, Conflict).
  StatusOr<KubeResponse> Write(const std::string& method, const std::string& path,
                               const std::string& json_body,
                               std::chrono::steady_clock::time_point deadline) const override;

  // Streaming GET for watches. Calls `on_line` for each complete '\n'-terminated, non-empty line
  // of the body (without the '\n') as it arrives, on the calling thread; a partial last line of
  // a dropped stream is discarded. `*status_out` gets the HTTP status; when it is not 200 no
  // line is delivered and the body (up to 64 KiB) goes to `*error_body`. Returns OK when the
  // exchange completed (the server ended the stream, or answered non-200) or `on_line` returned
  // false; Unavailable on transport errors, a line over max_line_bytes, a throwing on_line, or
  // when `cancel` (may be null) fired: cancelled() tells those apart. Cancellation lands within
  // ~10 ms even while the server sends nothing (see kube_client.cc). `on_response`, when given,
  // is called once with the status as soon as the response headers arrive.
  Status Stream(const std::string& path_and_query,
                const std::function<bool(std::string_view line)>& on_line, int* status_out,
                std::string* error_body, StreamCancel* cancel,
                const std::function<void(int status)>& on_response = nullptr) const override;

  const KubeConfig& config() const { return config_; }
  // "https://host:port (source)", for messages.
  std::string Describe() const override;
  std::string CredentialSource() const override { return config_.source; }

 private:
  struct Exchange;
  struct TlsMaterial;

  Status Send(const Exchange& exchange) const;
  // One attempt of `exchange` on `client`; `answered` is set once the status line arrived.
  Status SendOn(httplib::SSLClient& client, const Exchange& exchange, const std::string& token,
                const std::string& what, bool& answered) const;
  std::unique_ptr<httplib::SSLClient> NewConnection(std::string& error) const;
  std::unique_ptr<httplib::SSLClient> TakeIdleConnection() const;
  void ReturnIdleConnection(std::unique_ptr<httplib::SSLClient> client) const;
  // Send with the answer's body collected (up to max_response_bytes): Get and Patch.
  StatusOr<KubeResponse> Collect(Exchange exchange, size_t max_bytes = 0) const;
  StatusOr<std::string> CurrentToken() const;

  const KubeConfig config_;
  const KubeClientOptions options_;
  std::shared_ptr<const TlsMaterial> tls_;  // parsed once; immutable
  Status setup_error_;                      // constant after construction

  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<httplib::SSLClient>> idle_;  // guarded by pool_mu_

  mutable std::mutex token_mu_;
  mutable std::string last_token_;  // guarded by token_mu_: the last token read successfully
};

// "HTTP 403: pods is forbidden: User ... cannot list ..." from a metav1.Status body, or the
// start of the body when it is not one.
std::string DescribeHttpError(int status, const std::string& body);

// Percent-encodes everything but RFC 3986 unreserved characters, for query values such as
// continue tokens and field selectors.
std::string EscapeQueryValue(std::string_view value);

}  // namespace cgpu
