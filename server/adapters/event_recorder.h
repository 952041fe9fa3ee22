// EventRecorder: writes the Events of core/event_intent.h to the API server (events.k8s.io/v1),
// off the request path.
//
// Record() only queues: it never waits on the API server, and when the bounded queue is full the
// Event is dropped and counted. One thread writes what is queued.
//
// Aggregation, as client-go's events broadcaster does it (k8s.io/client-go tools/events
// event_broadcaster.go): Events with the same regarding object, reason, action and reporting
// controller form one series. The first is created; repeats only count up in memory and are
// written as `series: {count, lastObservedTime}` on the same Event, at most once per
// `series_interval` per series (client-go writes them even less often: a 30-minute heartbeat and
// when the series ends). kubectl describe shows such an Event as "<age> (xN over <span>)"
// (k8s.io/kubectl describe.go DescribeEvents), and finds it by the regarding object's kind,
// namespace, name and uid (searchEvents), so the uid is filled in before writing: from the
// request, else from `resolve_uid`.
//
// Unlike client-go, an Event's name is derived from its series (regarding object, reason,
// action, controller) instead of a timestamp: replicas and restarts then meet on one object. A
// create answered 409 AlreadyExists becomes an update of that object; a state report (a node's
// verdict) whose note is already the stored one is not counted again. Updates carry the
// resourceVersion they read (409 Conflict: read again and re-apply the count) and change only
// `series`: the API server refuses changes to the other fields of an Event
// (pkg/apis/core/validation/events.go ValidateEventUpdate). An update answered 404 (the Event
// expired, by default an hour after its last write) creates it again.
//
// Cluster-scoped objects' Events (Nodes) go to the "default" namespace, as the kubelet's do.
// Writes that fail on transport errors, 429 or 5xx are retried with back-off, up to
// max_attempts; other refusals (403: RBAC; 422: invalid) are not. Both count as failed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <thread>

#include "adapters/kube_client.h"
#include "core/event_intent.h"

namespace cgpu {

struct EventRecorderOptions {
  // events.k8s.io/v1 reportingController (a qualified name) and reportingInstance (the replica).
  std::string reporting_controller = "cgpu-guard.io/webhook";
  std::string reporting_instance = "cgpu-guard";
  size_t queue_capacity = 1000;  // client-go's maxQueuedEvents
  // The shortest time between two writes of one series.
  std::chrono::milliseconds series_interval{10'000};
  // A series with nothing left to write is forgotten after this long without a repeat
  // (client-go's finishTime); the next one starts a new count from the stored Event.
  std::chrono::milliseconds series_memory{6 * 60'000};
  size_t max_series = 10'000;  // series remembered at once; the quietest go first
  std::chrono::milliseconds request_timeout{5'000};
  int max_attempts = 5;
  std::chrono::milliseconds first_backoff{500};  // core/backoff.h, up to 10 s
  std::function<double()> random;                // [0,1) for jitter; default: seeded engine
  // Series intervals, the forgetting of quiet series and back-off waits read this clock; it must
  // outlive the recorder. Request deadlines are the transport's and stay on the real one.
  const Clock* clock = &SystemClock();
  std::function<int64_t()> now_unix_ms;  // default: the system clock
  // The uid of an object whose Event came without one ("" when not known).
  std::function<std::string(const ObjectRef&)> resolve_uid;
  // Called on the writing thread for each outcome: "created", "updated", "dropped" (queue full;
  // called from Record's caller instead), "failed".
  std::function<void(std::string_view outcome)> observe;
};

struct EventCounts {
  int64_t created = 0;
  int64_t updated = 0;
  int64_t dropped = 0;
  int64_t failed = 0;
};

// The name of the Event for a series: "<object name>.<16 hex digits>", within 253 characters.
std::string EventName(const EventIntent& intent, const std::string& reporting_controller);

class EventRecorder {
 public:
  // `client` must outlive the recorder.
  EventRecorder(const KubeApi& client, EventRecorderOptions options);
  ~EventRecorder();
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  void Start();
  // Ends the writing thread at once; what is queued or not yet written is dropped.
  void Stop();

  // Queues `intent`; false when the queue was full (dropped). Never blocks on the API server.
  bool Record(EventIntent intent);

  EventCounts counts() const;

 private:
  struct Series {
    EventIntent intent;
    std::string name;
    std::string namespace_name;
    int64_t pending = 0;  // occurrences not written yet
    int64_t first_unix_ms = 0;
    int64_t last_unix_ms = 0;  // lastObservedTime
    std::chrono::steady_clock::time_point last_seen{};
    std::chrono::steady_clock::time_point last_write{};
    nlohmann::json stored;  // the Event as last read or written; null when not known
  };

  void Run();
  void Absorb(EventIntent intent);
  void Flush(Series& series);
  bool Create(Series& series);
  bool Update(Series& series);
  // One request with retries on transport errors, 429 and 5xx. nullopt: gave up.
  std::optional<KubeResponse> Send(const std::string& method, const std::string& path,
                                   const std::string& body);
  void Count(int64_t EventCounts::*counter, std::string_view outcome);
  void Forget(std::chrono::steady_clock::time_point now);
  int64_t NowUnixMs() const;

  const KubeApi& client_;
  const EventRecorderOptions options_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EventIntent> queue_;  // guarded by mu_
  bool stopping_ = false;          // guarded by mu_
  EventCounts counts_;             // guarded by mu_
  StreamCancel cancel_;            // ends back-off waits and requests on Stop

  std::map<std::string, Series> series_;  // the writing thread's alone
  std::set<std::string> waiting_;         // keys of series with repeats not written yet
  std::thread thread_;
};

}  // namespace cgpu
