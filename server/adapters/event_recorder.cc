#include "adapters/event_recorder.h"

#include <algorithm>
#include <random>

#include "adapters/api_text.h"
#include "core/backoff.h"

namespace cgpu {
namespace {

using nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;

// Limits of events.k8s.io/v1 (pkg/apis/core/validation/events.go): note 1 kB, reportingInstance
// and action 128 characters.
constexpr size_t kMaxNoteBytes = 1024;
constexpr size_t kMaxShortField = 128;
constexpr size_t kMaxEventBytes = 1 << 20;
constexpr int kMaxConflicts = 4;

std::string NamespaceOf(const ObjectRef& regarding) {
  return regarding.namespace_name.empty() ? "default" : regarding.namespace_name;
}

std::string CollectionPath(const std::string& namespace_name) {
  return "/apis/events.k8s.io/v1/namespaces/" + namespace_name + "/events";
}

std::string SeriesKey(const EventIntent& intent) {
  const ObjectRef& ref = intent.regarding;
  return ref.kind + "\n" + ref.namespace_name + "\n" + ref.name + "\n" + ref.uid + "\n" +
         intent.reason + "\n" + intent.action;
}

bool Retryable(int status) { return status == 429 || status >= 500; }

// A jitter draw in [0, 1) for the writing thread (the only caller).
double Draw() {
  thread_local std::mt19937_64 engine(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

int64_t StoredCount(const json& event) {
  const auto series = event.find("series");
  if (series == event.end() || !series->is_object()) return 1;
  const auto count = series->find("count");
  return count != series->end() && count->is_number_integer() ? count->get<int64_t>() : 1;
}

}  // namespace

std::string EventName(const EventIntent& intent, const std::string& reporting_controller) {
  const std::string suffix = "." + StableHashHex(SeriesKey(intent) + "\n" + reporting_controller);
  std::string prefix = intent.regarding.name.substr(0, kMaxObjectName - suffix.size());
  // A name cut short must still end in an alphanumeric character before the dot.
  while (!prefix.empty() && (prefix.back() == '.' || prefix.back() == '-')) prefix.pop_back();
  return prefix + suffix;
}

EventRecorder::EventRecorder(const KubeApi& client, EventRecorderOptions options)
    : client_(client),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock()) {}

EventRecorder::~EventRecorder() { Stop(); }

void EventRecorder::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Run(); });
}

void EventRecorder::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  cancel_.Cancel();
  if (thread_.joinable()) thread_.join();
}

bool EventRecorder::Record(EventIntent intent) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() < options_.queue_capacity && !stopping_) {
      queue_.push_back(std::move(intent));
      cv_.notify_one();
      return true;
    }
    ++counts_.dropped;
  }
  if (options_.observe) options_.observe("dropped");
  return false;
}

EventCounts EventRecorder::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

int64_t EventRecorder::NowUnixMs() const {
  if (options_.now_unix_ms) return options_.now_unix_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void EventRecorder::Count(int64_t EventCounts::*counter, std::string_view outcome) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++(counts_.*counter);
  }
  if (options_.observe) options_.observe(outcome);
}

void EventRecorder::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  SteadyTime last_forget = clock_.Now();
  while (!stopping_) {
    // Wake for new Events, or when the earliest series with repeats to write is due. Only the
    // series waiting with repeats are looked at, so the remembered ones cost nothing here.
    std::optional<SteadyTime> due;
    for (const std::string& key : waiting_) {
      const SteadyTime at = series_.at(key).last_write + options_.series_interval;
      if (!due || at < *due) due = at;
    }
    if (queue_.empty()) {
      if (due) {
        clock_.WaitUntil(lock, cv_, *due, [this] { return stopping_ || !queue_.empty(); });
      } else {
        cv_.wait(lock);
      }
      if (stopping_) break;
    }
    std::deque<EventIntent> batch;
    batch.swap(queue_);
    lock.unlock();
    for (EventIntent& intent : batch) Absorb(std::move(intent));
    const SteadyTime now = clock_.Now();
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      Series& series = series_.at(*it);
      if (now - series.last_write >= options_.series_interval) Flush(series);
      it = series.pending == 0 ? waiting_.erase(it) : std::next(it);
    }
    // Quiet series are forgotten once a second at most: a pass looks at every remembered one.
    if (now - last_forget >= std::chrono::seconds(1) || series_.size() > options_.max_series) {
      Forget(now);
      last_forget = now;
    }
    lock.lock();
  }
}

void EventRecorder::Absorb(EventIntent intent) {
  if (intent.regarding.uid.empty() && options_.resolve_uid) {
    intent.regarding.uid = options_.resolve_uid(intent.regarding);
  }
  intent.note = CutUtf8(intent.note, kMaxNoteBytes);
  const std::string key = SeriesKey(intent);
  const SteadyTime now = clock_.Now();
  const int64_t now_ms = NowUnixMs();
  auto found = series_.find(key);
  if (found == series_.end()) {
    Series series;
    series.name = EventName(intent, options_.reporting_controller);
    series.namespace_name = NamespaceOf(intent.regarding);
    series.intent = std::move(intent);
    series.pending = 1;
    series.first_unix_ms = now_ms;
    series.last_unix_ms = now_ms;
    series.last_seen = now;
    found = series_.emplace(key, std::move(series)).first;
    // A new series is written at once; only repeats wait for the interval.
    Flush(found->second);
    return;
  }
  Series& series = found->second;
  ++series.pending;
  series.last_unix_ms = now_ms;
  series.last_seen = now;
  waiting_.insert(key);
}

void EventRecorder::Flush(Series& series) {
  series.last_write = clock_.Now();
  const bool first =
      series.stored.is_null() && series.first_unix_ms == series.last_unix_ms && series.pending == 1;
  if (first) {
    Create(series);
  } else {
    Update(series);
  }
  // Written or given up (and counted as failed): either way these occurrences are settled.
  series.pending = 0;
}

bool EventRecorder::Create(Series& series) {
  const EventIntent& intent = series.intent;
  json regarding = {{"apiVersion", intent.regarding.api_version},
                    {"kind", intent.regarding.kind},
                    {"name", intent.regarding.name}};
  if (!intent.regarding.namespace_name.empty()) {
    regarding["namespace"] = intent.regarding.namespace_name;
  }
  if (!intent.regarding.uid.empty()) regarding["uid"] = intent.regarding.uid;
  json event = {{"apiVersion", "events.k8s.io/v1"},
                {"kind", "Event"},
                {"metadata", {{"name", series.name}, {"namespace", series.namespace_name}}},
                {"eventTime", MicroTime(series.first_unix_ms)},
                {"reportingController", options_.reporting_controller},
                {"reportingInstance", CutUtf8(options_.reporting_instance, kMaxShortField)},
                {"action", CutUtf8(intent.action, kMaxShortField)},
                {"reason", intent.reason},
                {"type", intent.warning ? "Warning" : "Normal"},
                {"regarding", std::move(regarding)},
                {"note", intent.note}};
  // Created after repeats (the first write failed, or the Event expired): a series from the
  // start. The API server wants a series to count at least 2.
  if (series.pending >= 2) {
    event["series"] = {{"count", series.pending},
                       {"lastObservedTime", MicroTime(series.last_unix_ms)}};
  }
  const std::optional<KubeResponse> response =
      Send("POST", CollectionPath(series.namespace_name), event.dump());
  if (!response) {
    Count(&EventCounts::failed, "failed");
    return false;
  }
  if (response->status == 201 || response->status == 200) {
    series.stored = json::parse(response->body, nullptr, false);
    if (series.stored.is_discarded()) series.stored = json();
    Count(&EventCounts::created, "created");
    return true;
  }
  if (response->status == 409) {
    // Another replica, or this process before a restart, recorded the series: count on it.
    series.stored = json();
    return Update(series);
  }
  Count(&EventCounts::failed, "failed");
  return false;
}

bool EventRecorder::Update(Series& series) {
  const std::string path = CollectionPath(series.namespace_name) + "/" + series.name;
  for (int attempt = 0; attempt < kMaxConflicts; ++attempt) {
    if (series.stored.is_null()) {
      const std::optional<KubeResponse> read = Send("GET", path, "");
      if (!read) break;
      if (read->status == 404) {
        // Expired (or never written): start it again, repeats included.
        return Create(series);
      }
      if (read->status != 200) break;
      series.stored = json::parse(read->body, nullptr, false);
      if (series.stored.is_discarded() || !series.stored.is_object()) {
        series.stored = json();
        break;
      }
      // A state already reported in the same words by another writer is not news.
      if (series.intent.state_report && series.first_unix_ms == series.last_unix_ms &&
          series.pending == 1 && series.stored.value("note", "") == series.intent.note) {
        return true;
      }
    }
    json event = series.stored;
    event["series"] = {{"count", StoredCount(series.stored) + series.pending},
                       {"lastObservedTime", MicroTime(series.last_unix_ms)}};
    const std::optional<KubeResponse> response = Send("PUT", path, event.dump());
    if (!response) break;
    if (response->status == 200) {
      series.stored = json::parse(response->body, nullptr, false);
      if (series.stored.is_discarded()) series.stored = json();
      Count(&EventCounts::updated, "updated");
      return true;
    }
    series.stored = json();
    if (response->status == 404) return Create(series);
    if (response->status != 409) break;
    // 409 Conflict: someone wrote in between; read again and re-apply our count.
  }
  Count(&EventCounts::failed, "failed");
  return false;
}

std::optional<KubeResponse> EventRecorder::Send(const std::string& method, const std::string& path,
                                                const std::string& body) {
  for (int attempt = 1;; ++attempt) {
    const auto deadline = std::chrono::steady_clock::now() + options_.request_timeout;
    StatusOr<KubeResponse> response = method == "GET" ? client_.Get(path, deadline, kMaxEventBytes)
                                                      : client_.Write(method, path, body, deadline);
    if (response.ok() && !Retryable(response->status)) return std::move(*response);
    if (attempt >= options_.max_attempts) return std::nullopt;
    const double draw = options_.random ? options_.random() : Draw();
    if (cancel_.WaitFor(BackoffDelay(options_.first_backoff, std::chrono::milliseconds(10'000),
                                     attempt - 1, draw),
                        clock_)) {
      return std::nullopt;
    }
  }
}

void EventRecorder::Forget(SteadyTime now) {
  for (auto it = series_.begin(); it != series_.end();) {
    const bool quiet =
        it->second.pending == 0 && now - it->second.last_seen > options_.series_memory;
    it = quiet ? series_.erase(it) : std::next(it);
  }
  while (series_.size() > options_.max_series) {
    auto quietest = series_.begin();
    for (auto it = series_.begin(); it != series_.end(); ++it) {
      if (it->second.last_seen < quietest->second.last_seen) quietest = it;
    }
    waiting_.erase(quietest->first);  // its unwritten repeats are lost with it
    series_.erase(quietest);
  }
}

}  // namespace cgpu
