#include "support/memory_kube_api.h"

#include <vector>

namespace cgpu::testing {
namespace {

using namespace std::chrono_literals;

// How often an idle watch looks at its StreamCancel (a StreamCancel has no callback to wake it).
constexpr auto kCancelPoll = 5ms;

}  // namespace

MemoryKubeApi::MemoryKubeApi(FakeApiStore& store, MemoryKubeApiOptions options)
    : store_(store), options_(std::move(options)) {}

ApiRequest MemoryKubeApi::Request(std::string method, const std::string& path_and_query) const {
  ApiRequest request = ApiRequest::Parse(std::move(method), path_and_query);
  if (!options_.token.empty()) request.authorization = "Bearer " + options_.token;
  request.user_agent = options_.user_agent;
  return request;
}

StatusOr<KubeResponse> MemoryKubeApi::Exchange(const ApiRequest& request, size_t max_bytes) const {
  ApiAnswer answer = store_.Serve(request);
  if (answer.watch) store_.CloseWatch(answer.watch);  // a watch asked for without Stream
  if (max_bytes > 0 && answer.body.size() > max_bytes) {
    return ResourceExhausted(request.method + " " + request.path + ": the answer is larger than " +
                             std::to_string(max_bytes) + " bytes");
  }
  return KubeResponse{answer.status, std::move(answer.body)};
}

StatusOr<KubeResponse> MemoryKubeApi::Get(const std::string& path_and_query) const {
  return Exchange(Request("GET", path_and_query), 0);
}

StatusOr<KubeResponse> MemoryKubeApi::Get(const std::string& path_and_query, StreamCancel* cancel,
                                          size_t max_bytes) const {
  const auto cancelled = [&] { return cancel != nullptr && cancel->cancelled(); };
  if (cancelled()) return Unavailable("GET " + path_and_query + ": cancelled");
  StatusOr<KubeResponse> response = Exchange(Request("GET", path_and_query), max_bytes);
  if (cancelled()) return Unavailable("GET " + path_and_query + ": cancelled");
  return response;
}

StatusOr<KubeResponse> MemoryKubeApi::Get(const std::string& path_and_query,
                                          std::chrono::steady_clock::time_point deadline,
                                          size_t max_bytes) const {
  const auto late = [&] { return std::chrono::steady_clock::now() >= deadline; };
  const auto exceeded = [&] {
    return DeadlineExceeded("GET " + path_and_query + ": no answer within the deadline");
  };
  if (late()) return exceeded();
  ApiRequest request = Request("GET", path_and_query);
  request.gives_up_at = deadline;
  StatusOr<KubeResponse> response = Exchange(request, max_bytes);
  if (late() || (response.ok() && response->status == 0)) return exceeded();
  return response;
}

StatusOr<KubeResponse> MemoryKubeApi::Patch(const std::string& path,
                                            const std::string& content_type,
                                            const std::string& body) const {
  ApiRequest request = Request("PATCH", path);
  request.content_type = content_type;
  request.body = body;
  return Exchange(request, 0);
}

StatusOr<KubeResponse> MemoryKubeApi::Write(const std::string& method, const std::string& path,
                                            const std::string& json_body,
                                            std::chrono::steady_clock::time_point deadline) const {
  if (std::chrono::steady_clock::now() >= deadline) {
    return DeadlineExceeded(method + " " + path + ": no answer within the deadline");
  }
  ApiRequest request = Request(method, path);
  request.content_type = "application/json";
  request.body = json_body;
  request.gives_up_at = deadline;
  StatusOr<KubeResponse> response = Exchange(request, 0);
  if (response.ok() && response->status == 0) {
    return DeadlineExceeded(method + " " + path + ": no answer within the deadline");
  }
  return response;
}

Status MemoryKubeApi::Stream(const std::string& path_and_query,
                             const std::function<bool(std::string_view line)>& on_line,
                             int* status_out, std::string* error_body, StreamCancel* cancel,
                             const std::function<void(int status)>& on_response) const {
  const auto cancelled = [&] { return cancel != nullptr && cancel->cancelled(); };
  const std::string what = "GET " + path_and_query;
  if (status_out != nullptr) *status_out = 0;
  if (cancelled()) return Unavailable(what + ": cancelled");
  ApiAnswer answer = store_.Serve(Request("GET", path_and_query));
  if (status_out != nullptr) *status_out = answer.status;
  if (on_response) on_response(answer.status);
  if (!answer.watch) {
    if (answer.status != 200) {
      if (error_body != nullptr) *error_body = std::move(answer.body);
      return OkStatus();
    }
    // A 200 that is not a watch (the path lacked watch=1): its body, line by line.
    size_t start = 0;
    while (start < answer.body.size()) {
      const size_t end = std::min(answer.body.find('\n', start), answer.body.size());
      if (end > start && !on_line(std::string_view(answer.body).substr(start, end - start))) break;
      start = end + 1;
    }
    return OkStatus();
  }
  const std::shared_ptr<ApiWatch> watch = answer.watch;
  struct Closer {
    FakeApiStore& store;
    const std::shared_ptr<ApiWatch>& watch;
    ~Closer() { store.CloseWatch(watch); }
  } closer{store_, watch};
  std::vector<std::string> lines;
  while (true) {
    if (cancelled()) return Unavailable(what + ": cancelled");
    lines.clear();
    const FakeApiStore::WatchStep step =
        store_.NextWatchLines(watch, lines, std::chrono::steady_clock::now() + kCancelPoll);
    if (step == FakeApiStore::WatchStep::kCut) {
      return Unavailable(what + ": the stream was cut (" + Describe() + ")");
    }
    for (std::string& line : lines) {
      if (cancelled()) return Unavailable(what + ": cancelled");
      if (!line.empty() && line.back() == '\n') line.pop_back();
      if (line.empty()) continue;
      try {
        if (!on_line(line)) return OkStatus();
      } catch (const std::exception& error) {
        return Unavailable(what + ": the line handler threw: " + error.what());
      }
    }
    if (step == FakeApiStore::WatchStep::kEnd) return OkStatus();
  }
}

}  // namespace cgpu::testing
