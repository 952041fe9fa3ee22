// KubeApi: the calls the adapters make to the Kubernetes API server, and nothing else.
//
// KubeClient (kube_client.h) answers them over HTTPS; tests answer them in memory. The informer,
// ListCollection, the Event recorder, the Lease claim store, the live cluster reads and the node
// label patch take a `const KubeApi&`, so that they can be tested without sockets or TLS.
//
// Errors are values, as KubeClient documents them: a failure to reach the server is a non-ok
// Status (Unavailable, DeadlineExceeded when a deadline passed, ResourceExhausted for an answer
// past the caller's bound); any HTTP answer, 4xx and 5xx included, is returned for the caller to
// interpret. Implementations are thread-safe: any number of calls may run at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace cgpu {

struct KubeResponse {
  int status = 0;
  std::string body;
};

// A request to abort a Stream (or a cancellable Get) that may be running on another thread.
// Cancel() is sticky: once cancelled, every later Stream/Get with this object returns at once.
// All methods are thread-safe. Must outlive the calls it is passed to.
class StreamCancel {
 public:
  void Cancel();
  bool cancelled() const;
  // Sleeps for `duration` of `clock`'s time or until Cancel(), whichever comes first; returns
  // cancelled(). For back-off waits that must not delay a shutdown.
  bool WaitFor(std::chrono::milliseconds duration, const Clock& clock = SystemClock()) const;

 private:
  friend class KubeClient;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;  // signalled on Cancel() and when a call finishes
  bool cancelled_ = false;              // guarded by mu_
};

class KubeApi {
 public:
  virtual ~KubeApi() = default;

  // GET of `path_and_query` (the query already escaped).
  virtual StatusOr<KubeResponse> Get(const std::string& path_and_query) const = 0;
  // The same, abandoned promptly when `cancel` fires (then Unavailable "... cancelled"). An
  // answer larger than `max_bytes` (0: the implementation's own bound) is ResourceExhausted.
  virtual StatusOr<KubeResponse> Get(const std::string& path_and_query, StreamCancel* cancel,
                                     size_t max_bytes = 0) const = 0;
  // The same, given up at `deadline` (then DeadlineExceeded).
  virtual StatusOr<KubeResponse> Get(const std::string& path_and_query,
                                     std::chrono::steady_clock::time_point deadline,
                                     size_t max_bytes = 0) const = 0;
  // PATCH with a content type, e.g. application/merge-patch+json.
  virtual StatusOr<KubeResponse> Patch(const std::string& path, const std::string& content_type,
                                       const std::string& body) const = 0;
  // POST (create) or PUT (replace) of a JSON object, given up at `deadline`.
  virtual StatusOr<KubeResponse> Write(const std::string& method, const std::string& path,
                                       const std::string& json_body,
                                       std::chrono::steady_clock::time_point deadline) const = 0;
  // A watch: `on_line` gets each non-empty line of the body as it arrives, on the calling thread;
  // `*status_out` the HTTP status, and when it is not 200 no line is delivered and the body goes
  // to `*error_body`. OK when the server ended the stream, answered non-200, or `on_line`
  // returned false; Unavailable when the stream dropped or `cancel` (may be null) fired.
  // `on_response`, when given, is called once with the status before the first line.
  virtual Status Stream(const std::string& path_and_query,
                        const std::function<bool(std::string_view line)>& on_line, int* status_out,
                        std::string* error_body, StreamCancel* cancel,
                        const std::function<void(int status)>& on_response = nullptr) const = 0;
  // Where the server is, for messages: "https://host:port (source)".
  virtual std::string Describe() const = 0;
  // Where the credentials come from (a kubeconfig path, "in-cluster"), for messages that tell
  // the operator which credentials the server refused.
  virtual std::string CredentialSource() const = 0;
};

}  // namespace cgpu
