// MemoryKubeApi: a KubeApi (adapters/kube_api.h) answered from a FakeApiStore in the calling
// thread: no sockets, no TLS, the same wire semantics as FakeApiServer (which serves the same
// store over HTTPS).
//
// Every call is a request to the store, recorded in its request log with the Authorization and
// User-Agent a KubeClient would send. Get and Write return the store's answer (any status); a Get
// whose answer is larger than its max_bytes is ResourceExhausted, as KubeClient drops it. A Stream
// reports the status, then hands over each line of the watch as the store makes it due (the
// watch cache's lag and pauses apply), until the store ends the stream (OK), cuts it (DropWatches
// or the store stopping: Unavailable "watch dropped"), `on_line` returns false (OK), or `cancel`
// fires (Unavailable "... cancelled", noticed within a few milliseconds). The store's own waits
// (SetDelay, HoldNextAnswer, reads waiting for the watch cache) block the caller as they would a
// client. A deadline (Get, Write) ends the store's waits for SetDelay and the watch cache, as a
// client that hangs up: DeadlineExceeded. A Get's `cancel` is looked at before the request and
// after it, not during it. Thread-safe; `store` must outlive it.
#pragma once

#include <string>

#include "adapters/kube_api.h"
#include "support/fake_api_store.h"

namespace cgpu::testing {

struct MemoryKubeApiOptions {
  std::string token;  // sent as "Authorization: Bearer <token>" when not empty
  std::string user_agent = "cgpu-guard/test";
};

class MemoryKubeApi final : public KubeApi {
 public:
  explicit MemoryKubeApi(FakeApiStore& store, MemoryKubeApiOptions options = {});

  StatusOr<KubeResponse> Get(const std::string& path_and_query) const override;
  StatusOr<KubeResponse> Get(const std::string& path_and_query, StreamCancel* cancel,
                             size_t max_bytes = 0) const override;
  StatusOr<KubeResponse> Get(const std::string& path_and_query,
                             std::chrono::steady_clock::time_point deadline,
                             size_t max_bytes = 0) const override;
  StatusOr<KubeResponse> Patch(const std::string& path, const std::string& content_type,
                               const std::string& body) const override;
  StatusOr<KubeResponse> Write(const std::string& method, const std::string& path,
                               const std::string& json_body,
                               std::chrono::steady_clock::time_point deadline) const override;
  Status Stream(const std::string& path_and_query,
                const std::function<bool(std::string_view line)>& on_line, int* status_out,
                std::string* error_body, StreamCancel* cancel,
                const std::function<void(int status)>& on_response = nullptr) const override;
  std::string Describe() const override { return "memory://fake-api-store"; }
  std::string CredentialSource() const override { return "memory"; }

 private:
  ApiRequest Request(std::string method, const std::string& path_and_query) const;
  StatusOr<KubeResponse> Exchange(const ApiRequest& request, size_t max_bytes) const;

  FakeApiStore& store_;
  const MemoryKubeApiOptions options_;
};

}  // namespace cgpu::testing
