// Informer: list-then-watch of one resource collection on its own thread, like client-go's
// reflector.
//
// It lists the collection page by page (limit/continue), hands every item to a WatchHandler,
// then watches from the list's resourceVersion and hands over every event; bookmarks only move
// the resourceVersion on. When a watch ends (the server's timeoutSeconds) or drops, it watches
// again from the last resourceVersion, without a new list. It lists again from scratch only when
// it has to: the server says 410 Gone (an expired watch resourceVersion, as an ERROR event or an
// HTTP 410, or an expired continue token part-way through a paged list), or an event could not be
// understood, or the handler threw. Every retry waits an exponential back-off with full jitter
// (min_backoff * 2^n capped at max_backoff, times a random factor in [0,1)); n resets once a
// watch has proved healthy (it delivered an event or stayed open for a second). Each request goes
// through a KubeApi; KubeClient re-reads a rotated token file, so a 401 heals on the next attempt.
// Back-off waits and the time a watch stayed open are read from InformerOptions::clock.
//
// Nothing escapes the thread: errors are counted in InformerStats, never thrown. Start() once;
// Stop() cancels the open request (within ~10 ms even when the server is silent; a TCP connect
// or TLS handshake under way is waited for, up to KubeClientOptions::connect_timeout) and joins,
// so it must not be called from a WatchHandler callback. synced(), watching(), stats() and
// resource_version() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "adapters/kube_api.h"
#include "adapters/simdjson_view.h"

namespace cgpu {

// Receives the collection's state. Called from the informer's thread only, never concurrently.
// A list is OnListStart, OnObject per item, OnListEnd. A list that fails part-way is simply
// started again: OnListStart may come twice without an OnListEnd between; the handler restarts
// its sweep. Objects in list pages carry no kind/apiVersion (the API server omits them).
//
// Objects come as SimdjsonView (a JsonView, see object_view_reader.h): read them with the
// one-traversal readers (ReadPodObject, ReadNodeObject) or Member()/String(). A view, and every
// string_view read from it, is valid only during the call: the informer parses the next page or
// event into the same buffers. Copy what must outlive the call. A view is always a JSON object.
class WatchHandler {
 public:
  virtual ~WatchHandler() = default;
  virtual void OnListStart() = 0;                         // a full (re)list begins
  virtual void OnObject(const SimdjsonView& object) = 0;  // a list item, or ADDED/MODIFIED
  virtual void OnDelete(const SimdjsonView& object) = 0;  // DELETED (last known state)
  // List done: objects not delivered since the last OnListStart are gone.
  virtual void OnListEnd() = 0;
};

struct InformerOptions {
  // The collection; may carry a query of its own, already escaped, e.g.
  // "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1".
  std::string collection_path = "/api/v1/pods";
  // List with limit= and continue=. 500 is client-go's default: a page is then ~1 MB of pods,
  // parsed in about a millisecond; bigger pages save little and hold the API server's memory
  // (and ours: the parser keeps ~15 bytes per page byte while listing) for longer.
  int page_size = 500;
  // The most one page may hold. An answer past it is dropped as it arrives and the same page is
  // asked for again with half the limit (a continue token holds for any limit), down to one
  // object: 500 pods near etcd's 1.5 MiB object limit would otherwise be buffered whole (and
  // parsed at ~15 bytes a byte) past any container memory limit.
  size_t max_page_bytes = size_t{4} << 20;
  std::chrono::milliseconds min_backoff{200};
  std::chrono::milliseconds max_backoff{30'000};
  // Sent as timeoutSeconds= on each watch: the server ends the stream then and we re-watch from
  // the last resourceVersion. Keep below KubeClientOptions::stream_idle_timeout.
  int watch_timeout_seconds = 300;
  std::function<double()> random;  // [0,1) for jitter; default: std::random_device-seeded
  // Back-off waits, the healthy-watch second and time_without_watch() read this clock; it must
  // outlive the Informer.
  const Clock* clock = &SystemClock();
};

// Counters readable from any thread.
struct InformerStats {
  std::atomic<int64_t> lists{0};           // full lists completed
  std::atomic<int64_t> relists{0};         // lists started again because of a 410 Gone
  std::atomic<int64_t> watch_starts{0};    // watch streams opened (HTTP 200)
  std::atomic<int64_t> watch_restarts{0};  // watch streams that ended or dropped
  std::atomic<int64_t> events{0};          // ADDED, MODIFIED and DELETED delivered
  std::atomic<int64_t> bookmarks{0};
  // List pages asked for again with a smaller limit, the answer being past max_page_bytes.
  std::atomic<int64_t> smaller_pages{0};
  // Failed requests (transport, 4xx/5xx), dropped streams, malformed events, ERROR events other
  // than 410, handler exceptions. A 410 or a stream ended by the server is not an error.
  std::atomic<int64_t> errors{0};

  std::string last_error() const;  // "" until the first error

 private:
  friend class Informer;
  void SetLastError(std::string message);
  mutable std::mutex mu_;
  std::string last_error_;  // guarded by mu_
};

// One full list of a collection, page by page (limit/continue), as client-go's pager reads it:
// OnListStart before the first item, OnObject for each item, OnListEnd once the last page is in.
// What an Informer does before it watches, and what `check` does once. A page whose answer is
// larger than max_page_bytes is asked for again with half the limit (a continue token holds for
// any limit), down to one object. Nothing is retried here: a 410 (an expired continue token, or a
// compacted resourceVersion) ends the list as kGone, for the caller to list again from the start,
// since the snapshot the pages came from is gone; any other failure ends it as kFailed. A handler
// that throws throws through. Thread-compatible: one call per handler at a time.
struct ListRequest {
  std::string collection_path = "/api/v1/pods";  // may carry a query of its own, escaped
  int page_size = 500;
  size_t max_page_bytes = size_t{4} << 20;
  // When set, the list is abandoned promptly once it fires (kCancelled).
  StreamCancel* cancel = nullptr;
  // When set (and `cancel` is not), every page request is given up at this moment: connecting,
  // the handshake and reading all count against it (then kFailed, code kDeadlineExceeded).
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

struct ListResult {
  enum class Outcome { kListed, kGone, kFailed, kCancelled };
  Outcome outcome = Outcome::kFailed;
  std::string resource_version;  // kListed: the list's metadata.resourceVersion
  // kGone, kFailed: "list: HTTP 403: nodes is forbidden: ...", "list: GET ...: cannot connect".
  std::string error;
  // kGone, kFailed: the HTTP status that ended the list; 0 when no answer came (then `code` says
  // why: kUnavailable for transport failures, kDeadlineExceeded past the deadline).
  int http_status = 0;
  StatusCode code = StatusCode::kOk;
  int pages = 0;          // pages received and handed over
  int objects = 0;        // items handed to OnObject
  int smaller_pages = 0;  // pages asked for again with a smaller limit
};

ListResult ListCollection(const KubeApi& client, const ListRequest& request, WatchHandler& handler);

class Informer {
 public:
  // `client` and `handler` must outlive the Informer.
  Informer(const KubeApi& client, InformerOptions options, WatchHandler& handler);
  ~Informer();  // Stop()
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void Start();  // once; later calls do nothing
  void Stop();   // prompt: cancels the open request, then joins. Idempotent.
  bool synced() const { return synced_; }      // the first full list has completed
  bool watching() const { return watching_; }  // a watch stream is open right now
  // How long the informer has been without an open watch stream, i.e. events may be happening
  // that it has not seen: zero while a watch is open; counted from construction before the first.
  // A watch the server ends (timeoutSeconds) is reopened within milliseconds; a dropped one after
  // back-off; a 410 after a full list.
  std::chrono::milliseconds time_without_watch() const;
  const InformerStats& stats() const { return stats_; }
  std::string resource_version() const;  // where the informer's view is; "" before a list

 private:
  enum class Outcome {
    kListed,         // a full list went through: watch next
    kStreamEnded,    // the server ended the watch: watch again from the last resourceVersion
    kStreamDropped,  // the connection broke mid-watch: likewise
    kGone,           // 410: list again from scratch
    kRetry,          // a failed request: the same step again after back-off
    kRelist,         // our view may be wrong (malformed event, handler threw): list again
    kCancelled,
  };

  void Run();
  Outcome List();
  Outcome Watch();
  bool HandleEvent(std::string_view line, simdjson::dom::parser& parser, Outcome& outcome,
                   int& delivered);
  Outcome Fail(Outcome outcome, const std::string& message);
  std::chrono::milliseconds Backoff(int failures);
  void SetResourceVersion(std::string resource_version);
  std::string WithQuery(const std::string& query) const;

  const KubeApi& client_;
  const InformerOptions options_;
  WatchHandler& handler_;
  std::function<double()> random_;  // informer thread only
  const Clock& clock_;

  StreamCancel cancel_;
  std::mutex lifecycle_mu_;  // serialises Start and Stop
  std::thread thread_;       // guarded by lifecycle_mu_
  std::atomic<bool> synced_{false};
  std::atomic<bool> watching_{false};
  // The clock's nanoseconds since its epoch at which the last watch closed; 0 while one is open.
  std::atomic<int64_t> unwatched_since_ns_;
  InformerStats stats_;

  std::string resource_version_;  // informer thread only
  int failures_ = 0;              // informer thread only: consecutive failures, for back-off
  mutable std::mutex rv_mu_;
  std::string shared_resource_version_;  // guarded by rv_mu_: a copy for other threads
};

}  // namespace cgpu
