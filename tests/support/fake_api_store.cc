#include "support/fake_api_store.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <thread>

#include "adapters/api_text.h"
#include "support/fake_event_rules.h"

namespace cgpu::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kDefaultWatchTimeout = std::chrono::seconds(1800);

std::string Kind(const std::string& resource) {
  static const std::map<std::string, std::string> kKinds = {
      {"pods", "Pod"}, {"nodes", "Node"}, {"namespaces", "Namespace"}, {"bindings", "Binding"}};
  if (const auto found = kKinds.find(resource); found != kKinds.end()) return found->second;
  std::string kind = resource;
  if (!kind.empty() && kind.back() == 's') kind.pop_back();
  if (!kind.empty()) kind[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(kind[0])));
  return kind;
}

json StatusObject(int code, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", StatusReasonFor(code)},
          {"code", code}};
}

void Answer(ApiAnswer& response, int code, const std::string& message,
            const std::string& reason = "") {
  response.status = code;
  json status = StatusObject(code, message);
  if (!reason.empty()) status["reason"] = reason;
  response.body = status.dump();
}

// storage.NewTooLargeResourceVersionError (k8s.io/apiserver pkg/storage/errors.go): a 504
// Timeout whose cause says why, with Retry-After when `retry_seconds` is set (the watch cache
// asks for 1 s; etcd's future-revision answer for 0).
void AnswerTooLarge(ApiAnswer& response, int64_t wanted, int64_t current, int retry_seconds) {
  json status = StatusObject(504, "Timeout: Too large resource version: " + std::to_string(wanted) +
                                      ", current: " + std::to_string(current));
  status["details"] = {{"causes", json::array({{{"reason", "ResourceVersionTooLarge"},
                                                {"message", "Too large resource version"}}})}};
  if (retry_seconds > 0) {
    status["details"]["retryAfterSeconds"] = retry_seconds;
    response.retry_after_seconds = retry_seconds;
  }
  response.status = 504;
  response.body = status.dump();
}

// A field.Error of apimachinery's validation: its cause type, field and ErrorBody().
struct FieldError {
  std::string type;  // FieldValueForbidden, FieldValueNotSupported
  std::string field;
  std::string body;  // "Forbidden: ..."
};

// errors.NewInvalid(meta.k8s.io/<kind>, "", errs), as handlers/get.go answers a ListOptions
// that ValidateListOptions refuses: 422, reason Invalid, one cause per field error.
void AnswerInvalid(ApiAnswer& response, const std::string& kind,
                   const std::vector<FieldError>& errors) {
  std::string aggregate;
  json causes = json::array();
  for (const FieldError& error : errors) {
    aggregate += (aggregate.empty() ? "" : ", ") + error.field + ": " + error.body;
    causes.push_back({{"reason", error.type}, {"message", error.body}, {"field", error.field}});
  }
  if (errors.size() > 1) aggregate = "[" + aggregate + "]";
  json status = StatusObject(422, kind + ".meta.k8s.io \"\" is invalid: " + aggregate);
  status["details"] = {{"group", "meta.k8s.io"}, {"kind", kind}, {"causes", causes}};
  response.status = 422;
  response.body = status.dump();
}

std::string StringAt(const json& object, const char* outer, const char* inner) {
  if (!object.is_object() || !object.contains(outer) || !object[outer].is_object()) return "";
  const json& section = object[outer];
  return section.contains(inner) && section[inner].is_string() ? section[inner].get<std::string>()
                                                               : "";
}

std::string KeyOf(const json& object) {
  const std::string namespace_name = StringAt(object, "metadata", "namespace");
  const std::string name = StringAt(object, "metadata", "name");
  return namespace_name.empty() ? name : namespace_name + "/" + name;
}

// The value at a dotted field path ("spec.nodeName"); "" when absent, as the API server has it.
std::string FieldValue(const json& object, const std::string& path) {
  const json* current = &object;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = std::min(path.find('.', start), path.size());
    const std::string part = path.substr(start, dot - start);
    if (!current->is_object() || !current->contains(part)) return "";
    current = &(*current)[part];
    start = dot + 1;
  }
  if (current->is_string()) return current->get<std::string>();
  if (current->is_null()) return "";
  return current->dump();
}

bool Truthy(const std::string& value) { return value == "1" || value == "true"; }

bool IsChange(const std::string& type) {
  return type == "ADDED" || type == "MODIFIED" || type == "DELETED";
}

}  // namespace

struct FakeApiStore::Target {
  std::string group;  // "" for the core group
  std::string resource;
  std::string namespace_name;  // "" for cluster-wide collections and cluster-scoped objects
  std::string name;            // "" for collections
  bool valid = false;

  std::string key() const { return namespace_name.empty() ? name : namespace_name + "/" + name; }
  // "leases.coordination.k8s.io", "pods": how the API server names a resource in messages.
  std::string qualified() const { return group.empty() ? resource : resource + "." + group; }

  static Target Parse(const std::string& path) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start < path.size()) {
      const size_t slash = std::min(path.find('/', start), path.size());
      if (slash > start) parts.push_back(path.substr(start, slash - start));
      start = slash + 1;
    }
    size_t skip = 0;
    if (parts.size() >= 2 && parts[0] == "api") skip = 2;
    if (parts.size() >= 3 && parts[0] == "apis") skip = 3;
    Target target;
    if (skip == 3) target.group = parts[1];
    if (skip == 0) return target;
    const std::vector<std::string> rest(parts.begin() + static_cast<long>(skip), parts.end());
    if (rest.size() == 1) {
      target.resource = rest[0];
    } else if (rest.size() == 2) {
      target.resource = rest[0];
      target.name = rest[1];
    } else if (rest.size() == 3 && rest[0] == "namespaces") {
      target.namespace_name = rest[1];
      target.resource = rest[2];
    } else if (rest.size() == 4 && rest[0] == "namespaces") {
      target.namespace_name = rest[1];
      target.resource = rest[2];
      target.name = rest[3];
    } else {
      return target;
    }
    target.valid = true;
    return target;
  }
};

struct ApiWatch {
  std::string resource;
  std::string namespace_name;  // "" for all
  FakeApiStore::Selector selector;
  bool bookmarks = false;
  size_t next_event = 0;  // index into events_ of the next event to consider
  size_t first_live = 0;  // BOOKMARK and RAW events before this index are not replayed
  std::deque<std::string> initial_lines;
  bool end_after_initial = false;
  bool dropped = false;
  std::chrono::steady_clock::time_point deadline;
};

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding of a query component ('+' is a space, as in a form).
std::string DecodeQueryValue(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
               HexValue(text[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

ApiRequest ApiRequest::Parse(std::string method, const std::string& path_and_query) {
  ApiRequest request;
  request.method = std::move(method);
  const size_t question = path_and_query.find('?');
  request.path = path_and_query.substr(0, question);
  if (question == std::string::npos) return request;
  const std::string query = path_and_query.substr(question + 1);
  size_t start = 0;
  while (start < query.size()) {
    const size_t amp = std::min(query.find('&', start), query.size());
    const std::string pair = query.substr(start, amp - start);
    start = amp + 1;
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    request.params.emplace(DecodeQueryValue(pair.substr(0, eq)),
                           eq == std::string::npos ? "" : DecodeQueryValue(pair.substr(eq + 1)));
  }
  return request;
}

std::string ApiRequest::Param(const std::string& name) const {
  const auto found = params.find(name);
  return found == params.end() ? "" : found->second;
}

bool FakeApiStore::Selector::Matches(const json& object) const {
  return std::all_of(equals.begin(), equals.end(), [&](const auto& term) {
    return FieldValue(object, term.first) == term.second;
  });
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

void FakeApiStore::StopServing() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

// ---- Store ----

std::shared_ptr<const FakeApiStore::Stored> FakeApiStore::MakeStored(json object) {
  json item = object;
  item.erase("kind");  // list items carry no type meta on the wire
  item.erase("apiVersion");
  std::string list_item = item.dump();
  return std::make_shared<const Stored>(Stored{std::move(object), std::move(list_item)});
}

int64_t FakeApiStore::Record(const std::string& resource, const std::string& type, json object,
                             json old_object) {
  const int64_t version = ++resource_version_;
  object["metadata"]["resourceVersion"] = std::to_string(version);
  auto& objects = store_[resource];
  if (type == "DELETED") {
    objects.erase(KeyOf(object));
  } else {
    objects[KeyOf(object)] = MakeStored(object);
  }
  events_.push_back(
      Event{version, resource, type, std::move(object), std::move(old_object), "", VisibleAt()});
  cv_.notify_all();
  return version;
}

int64_t FakeApiStore::Add(const std::string& resource, json object) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!object["metadata"].contains("uid")) {
    object["metadata"]["uid"] = "uid-" + std::to_string(resource_version_ + 1);
  }
  if (!object["metadata"].contains("creationTimestamp")) {
    object["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z";
  }
  auto& objects = store_[resource];
  const auto existing = objects.find(KeyOf(object));
  if (existing != objects.end()) {
    json old = existing->second->object;
    return Record(resource, "MODIFIED", std::move(object), std::move(old));
  }
  return Record(resource, "ADDED", std::move(object), json());
}

int64_t FakeApiStore::Update(const std::string& resource, json object) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& objects = store_[resource];
    const auto existing = objects.find(KeyOf(object));
    if (existing != objects.end()) {
      json old = existing->second->object;
      for (const char* kept : {"uid", "creationTimestamp"}) {
        if (!object["metadata"].contains(kept) && old["metadata"].contains(kept)) {
          object["metadata"][kept] = old["metadata"][kept];
        }
      }
      return Record(resource, "MODIFIED", std::move(object), std::move(old));
    }
  }
  return Add(resource, std::move(object));
}

int64_t FakeApiStore::Delete(const std::string& resource, const std::string& name,
                             const std::string& namespace_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& objects = store_[resource];
  const auto existing = objects.find(namespace_name.empty() ? name : namespace_name + "/" + name);
  if (existing == objects.end()) return 0;
  json object = existing->second->object;
  json old = object;  // the state before, with its own resourceVersion, for reads of the past
  return Record(resource, "DELETED", std::move(object), std::move(old));
}

std::optional<json> FakeApiStore::Find(const std::string& resource, const std::string& name,
                                       const std::string& namespace_name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto objects = store_.find(resource);
  if (objects == store_.end()) return std::nullopt;
  const auto found =
      objects->second.find(namespace_name.empty() ? name : namespace_name + "/" + name);
  if (found == objects->second.end()) return std::nullopt;
  return found->second->object;
}

int64_t FakeApiStore::resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resource_version_;
}

json FakeApiStore::WithTypeMeta(const std::string& resource, json object) const {
  object["kind"] = Kind(resource);
  object["apiVersion"] = resource == "leases" ? "coordination.k8s.io/v1" : "v1";
  return object;
}

// ---- The watch cache ----
//
// The real API server's watch cache (k8s.io/apiserver pkg/storage/cacher) is fed by an etcd watch
// and serves every watch, and every list or GET that names a resourceVersion; it trails etcd by
// however long that feed takes. Here it is a prefix of events_: the first released_ events are
// in it. Nothing is copied: its state at any version is the store with the later changes undone.

Clock::time_point FakeApiStore::VisibleAt() const {
  return watch_lag_.count() == 0 ? Clock::time_point::min() : Clock::now() + watch_lag_;
}

size_t FakeApiStore::Release(Clock::time_point now) const {
  if (paused_) return released_;
  // In order: a change never overtakes an earlier one, whatever lag each was recorded under.
  while (released_ < events_.size() && events_[released_].visible_at <= now) ++released_;
  return released_;
}

Clock::time_point FakeApiStore::NextRelease() const {
  if (paused_ || released_ >= events_.size()) return Clock::time_point::max();
  return events_[released_].visible_at;
}

int64_t FakeApiStore::CacheVersion() const {
  for (size_t i = released_; i < events_.size(); ++i) {
    if (IsChange(events_[i].type)) return events_[i].resource_version - 1;
  }
  return resource_version_;  // all in (Compact moves the version on without an event)
}

bool FakeApiStore::WaitForCache(std::unique_lock<std::mutex>& lock, int64_t version,
                                const ApiRequest& request, ApiAnswer& response) {
  // watch_cache.go waitUntilFreshAndBlock: wait for the cache to reach the version, woken by
  // every change, then give up after blockTimeout asking the client to retry in a second.
  const auto deadline = Clock::now() + too_large_wait_;
  while (true) {
    const auto now = Clock::now();
    Release(now);
    if (CacheVersion() >= version) return true;
    if (stopping_) {
      Answer(response, 503, "the server is shutting down");
      return false;
    }
    if (now >= deadline) {
      AnswerTooLarge(response, version, CacheVersion(), 1);
      return false;
    }
    const auto gives_up_at = request.gives_up_at.value_or(Clock::time_point::max());
    if (now >= gives_up_at) {
      response.status = 0;
      return false;
    }
    cv_.wait_until(lock, std::min({deadline, NextRelease(), gives_up_at}));
  }
}

const FakeApiStore::ObjectMap& FakeApiStore::ObjectsAt(const std::string& resource, int64_t version,
                                                       ObjectMap& scratch) {
  const ObjectMap& current = store_[resource];
  // Walking back from the newest change, the earliest change after `version` to each key says
  // what the key held at `version`: nothing before an ADDED, the old object before the rest.
  std::map<std::string, std::shared_ptr<const Stored>> before;
  for (size_t i = events_.size(); i > 0 && events_[i - 1].resource_version > version; --i) {
    const Event& event = events_[i - 1];
    if (event.resource != resource || !IsChange(event.type)) continue;
    before[KeyOf(event.object)] = event.type == "ADDED" ? nullptr : MakeStored(event.old_object);
  }
  if (before.empty()) return current;
  scratch = current;
  for (auto& [key, prior] : before) {
    if (prior) {
      scratch[key] = std::move(prior);
    } else {
      scratch.erase(key);
    }
  }
  return scratch;
}

// ---- Watch control ----

void FakeApiStore::Compact() {
  std::lock_guard<std::mutex> lock(mu_);
  ++resource_version_;
  compacted_ = resource_version_;
}

void FakeApiStore::set_expired_watch_as_http_410(bool http_410) {
  std::lock_guard<std::mutex> lock(mu_);
  expired_as_http_410_ = http_410;
}

void FakeApiStore::SendBookmarks(const std::string& resource) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string version = std::to_string(resource_version_);
  events_.push_back(Event{resource_version_, resource, "BOOKMARK",
                          json{{"metadata", {{"resourceVersion", version}}}}, json(), "",
                          VisibleAt()});
  cv_.notify_all();
}

void FakeApiStore::InjectWatchLine(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(Event{resource_version_, "", "RAW", json(), json(), line, VisibleAt()});
  cv_.notify_all();
}

void FakeApiStore::DropWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& watch : watches_) watch->dropped = true;
  cv_.notify_all();
}

void FakeApiStore::PauseWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  Release(Clock::now());  // what is due by now is in the cache; nothing more until Resume
  paused_ = true;
}

void FakeApiStore::ResumeWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = false;
  cv_.notify_all();
}

void FakeApiStore::HoldNextAnswer(std::function<bool(const RecordedRequest&)> which) {
  std::lock_guard<std::mutex> lock(mu_);
  hold_next_ = std::move(which);
}

bool FakeApiStore::held_answer_waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return holding_answer_;
}

void FakeApiStore::ReleaseHeldAnswer() {
  std::lock_guard<std::mutex> lock(mu_);
  release_held_ = true;
  cv_.notify_all();
}

void FakeApiStore::HoldWatchDelivery() {
  std::lock_guard<std::mutex> lock(mu_);
  delivery_held_ = true;
}

void FakeApiStore::ReleaseWatchDelivery() {
  std::lock_guard<std::mutex> lock(mu_);
  delivery_held_ = false;
  cv_.notify_all();
}

void FakeApiStore::SetWatchLag(std::chrono::milliseconds lag) {
  std::lock_guard<std::mutex> lock(mu_);
  watch_lag_ = lag;
}

void FakeApiStore::SetTooLargeResourceVersionWait(std::chrono::milliseconds wait) {
  std::lock_guard<std::mutex> lock(mu_);
  too_large_wait_ = wait;
}

int64_t FakeApiStore::watch_cache_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  Release(Clock::now());
  return CacheVersion();
}

int FakeApiStore::open_watches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(watches_.begin(), watches_.end(),
                                        [](const auto& watch) { return !watch->dropped; }));
}

// ---- Faults ----

void FakeApiStore::FailNext(int count, int status, RequestKind kind,
                            const std::string& path_prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  if (count > 0) faults_.push_back(Fault{kind, status, count, path_prefix});
}

void FakeApiStore::FailAtRandom(int percent, int status, RequestKind kind,
                                const std::string& path_prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(Fault{kind, status, std::numeric_limits<int>::max(), path_prefix, percent});
}

void FakeApiStore::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.clear();
}

void FakeApiStore::SetDelay(std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(mu_);
  delay_ = delay;
}

void FakeApiStore::ExpireContinueTokens() {
  std::lock_guard<std::mutex> lock(mu_);
  snapshots_.clear();
}

void FakeApiStore::ExpireNextContinue(int count) {
  std::lock_guard<std::mutex> lock(mu_);
  expire_next_continue_ += count;
}

void FakeApiStore::RequireToken(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  required_token_ = token;
}

std::vector<RecordedRequest> FakeApiStore::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

int FakeApiStore::CountRequests(RequestKind kind, const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(requests_.begin(), requests_.end(), [&](const auto& r) {
    return (kind == RequestKind::kAny || r.kind == kind) && (path.empty() || r.path == path);
  }));
}

// ---- Serving ----

ApiAnswer FakeApiStore::Serve(const ApiRequest& request) {
  ApiAnswer response;
  RecordedRequest record;
  record.method = request.method;
  record.path = request.path;
  record.params = request.params;
  record.authorization = request.authorization;
  record.user_agent = request.user_agent;
  record.content_type = request.content_type;
  record.body = request.body;
  record.client_cert_cn = request.client_cert_cn;
  const Target target = Target::Parse(request.path);
  if (request.method == "PATCH") {
    record.kind = RequestKind::kPatch;
  } else if (request.method == "POST") {
    record.kind = RequestKind::kCreate;
  } else if (request.method == "PUT") {
    record.kind = RequestKind::kUpdate;
  } else if (request.method == "DELETE") {
    record.kind = RequestKind::kDelete;
  } else if (!target.name.empty()) {
    record.kind = RequestKind::kGet;
  } else {
    record.kind = Truthy(request.Param("watch")) ? RequestKind::kWatch : RequestKind::kList;
  }

  // Delay, then authentication, then injected faults, as the API server's filter chain has it.
  int fault = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (delay_.count() > 0) {
      cv_.wait_until(
          lock,
          std::min(Clock::now() + delay_, request.gives_up_at.value_or(Clock::time_point::max())),
          [this] { return stopping_; });
    }
    if (request.gives_up_at && Clock::now() >= *request.gives_up_at) {
      fault = -1;  // the client is gone: nothing is answered
    } else if (stopping_) {
      fault = 503;
    } else if (!required_token_.empty() && record.authorization != "Bearer " + required_token_) {
      fault = 401;
    } else {
      for (auto it = faults_.begin(); it != faults_.end(); ++it) {
        if (it->kind != RequestKind::kAny && it->kind != record.kind) continue;
        if (record.path.rfind(it->path_prefix, 0) != 0) continue;
        if (it->percent < 100 &&
            std::uniform_int_distribution<int>(0, 99)(fault_random_) >= it->percent) {
          continue;
        }
        fault = it->status;
        if (--it->remaining == 0) faults_.erase(it);
        break;
      }
    }
  }
  if (fault < 0) {
    response.status = 0;
  } else if (fault != 0) {
    Answer(response, fault, fault == 401 ? "Unauthorized" : "injected failure");
  } else if (!target.valid) {
    Answer(response, 404, "the server could not find the requested resource");
  } else if (record.kind == RequestKind::kPatch) {
    HandlePatch(target, request, response);
  } else if (record.kind == RequestKind::kCreate) {
    HandleCreate(target, request, response);
  } else if (record.kind == RequestKind::kUpdate) {
    HandleUpdate(target, request, response);
  } else if (record.kind == RequestKind::kDelete) {
    HandleDelete(target, response);
  } else if (record.kind == RequestKind::kGet) {
    HandleGet(target, request, response);
  } else if (record.kind == RequestKind::kWatch) {
    HandleWatch(target, request, response);
  } else {
    HandleList(target, request, response);
  }
  record.status = response.status;
  std::unique_lock<std::mutex> lock(mu_);
  if (hold_next_ && record.kind != RequestKind::kWatch && hold_next_(record)) {
    hold_next_ = nullptr;
    holding_answer_ = true;
    release_held_ = false;
    cv_.notify_all();
    cv_.wait(lock, [this] { return release_held_ || stopping_; });
    holding_answer_ = false;
  }
  requests_.push_back(std::move(record));
  return response;
}

namespace {

// "spec.nodeName=a,metadata.name==b" -> terms; false for anything but equality.
bool ParseSelector(const std::string& text,
                   std::vector<std::pair<std::string, std::string>>& equals) {
  size_t start = 0;
  while (start < text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string term = text.substr(start, comma - start);
    start = comma + 1;
    if (term.find("!=") != std::string::npos) return false;
    const size_t eq = term.find('=');
    if (eq == std::string::npos || eq == 0) return false;
    std::string value = term.substr(eq + 1);
    if (!value.empty() && value.front() == '=') value.erase(0, 1);
    equals.emplace_back(term.substr(0, eq), value);
  }
  return true;
}

}  // namespace

void FakeApiStore::HandleList(const Target& target, const ApiRequest& request,
                              ApiAnswer& response) {
  Selector selector;
  if (!ParseSelector(request.Param("fieldSelector"), selector.equals)) {
    Answer(response, 400, "unsupported fieldSelector (equality only in the fake)");
    return;
  }
  const std::string limit_text = request.Param("limit");
  size_t limit = limit_text.empty() ? 0 : std::stoul(limit_text);
  const std::string token = request.Param("continue");
  const std::string version_text = request.Param("resourceVersion");
  const std::string match = request.Param("resourceVersionMatch");

  // apimachinery pkg/apis/meta/internalversion/validation ValidateListOptions, word for word.
  std::vector<FieldError> errors;
  if (!match.empty()) {
    if (version_text.empty()) {
      errors.push_back({"FieldValueForbidden", "resourceVersionMatch",
                        "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is "
                        "provided"});
    }
    if (!token.empty()) {
      errors.push_back({"FieldValueForbidden", "resourceVersionMatch",
                        "Forbidden: resourceVersionMatch is forbidden when continue is provided"});
    }
    if (match != "Exact" && match != "NotOlderThan") {
      errors.push_back({"FieldValueNotSupported", "resourceVersionMatch",
                        "Unsupported value: \"" + match +
                            "\": supported values: \"Exact\", \"NotOlderThan\", \"\""});
    }
    if (match == "Exact" && version_text == "0") {
      errors.push_back({"FieldValueForbidden", "resourceVersionMatch",
                        "Forbidden: resourceVersionMatch \"exact\" is forbidden for "
                        "resourceVersion \"0\""});
    }
  }
  if (!errors.empty()) {
    AnswerInvalid(response, "ListOptions", errors);
    return;
  }

  // Which state answers (API concepts, "Semantics for get and list"; KEP-2523):
  //  - no resourceVersion: the most recent, a quorum read of etcd;
  //  - resourceVersion=0: any, the watch cache's (which ignores limit);
  //  - resourceVersion=X, NotOlderThan or no match: at least X, from the watch cache once it has
  //    X (given a limit, some API server versions read etcd instead: also at least X);
  //  - Exact, or X with a limit and no match (the legacy paged form): exactly X, from etcd.
  enum class Read { kQuorum, kCache, kExact } read = Read::kQuorum;
  int64_t version = 0;
  if (token.empty() && !version_text.empty()) {
    try {
      version = std::stoll(version_text);
    } catch (const std::exception&) {
      Answer(response, 400, "invalid resourceVersion \"" + version_text + "\"");
      return;
    }
    if (match == "Exact" || (match.empty() && limit > 0 && version != 0)) {
      read = Read::kExact;
    } else {
      read = Read::kCache;
      if (version == 0) limit = 0;
    }
  }

  std::unique_lock<std::mutex> lock(mu_);
  int64_t id = 0;
  size_t offset = 0;
  if (!token.empty()) {
    // Tokens look like "7/4+=": characters a client must escape in a query.
    const size_t slash = token.find('/');
    const size_t plus = token.find("+=");
    if (slash == std::string::npos || plus == std::string::npos) {
      Answer(response, 400, "invalid continue token \"" + token + "\"");
      return;
    }
    id = std::stoll(token.substr(0, slash));
    offset = std::stoul(token.substr(slash + 1, plus - slash - 1));
    if (expire_next_continue_ > 0) {
      --expire_next_continue_;
      snapshots_.erase(id);
    }
    if (!snapshots_.count(id)) {
      Answer(response, 410,
             "The provided continue parameter is too old to display a consistent list result. "
             "You can start a new list without the continue parameter.");
      return;
    }
  } else {
    Snapshot snapshot;
    ObjectMap scratch;
    const ObjectMap* objects = nullptr;
    if (read == Read::kQuorum) {
      snapshot.resource_version = resource_version_;
      objects = &store_[target.resource];
    } else if (read == Read::kExact) {
      // etcd keeps every revision since its last compaction (storage/etcd3 store.go GetList).
      if (version < compacted_) {
        Answer(response, 410, "The resourceVersion for the provided list is too old.");
        return;
      }
      if (version > resource_version_) {
        AnswerTooLarge(response, version, resource_version_, 0);
        return;
      }
      snapshot.resource_version = version;
      objects = &ObjectsAt(target.resource, version, scratch);
    } else {
      if (!WaitForCache(lock, version, request, response)) return;
      snapshot.resource_version = CacheVersion();
      objects = &ObjectsAt(target.resource, snapshot.resource_version, scratch);
    }
    for (const auto& [key, object] : *objects) {
      if (!target.namespace_name.empty() &&
          StringAt(object->object, "metadata", "namespace") != target.namespace_name) {
        continue;
      }
      if (selector.Matches(object->object)) snapshot.items.push_back(object);
    }
    id = next_snapshot_++;
    snapshots_[id] = std::move(snapshot);
  }
  const Snapshot& snapshot = snapshots_[id];
  const size_t end =
      limit == 0 ? snapshot.items.size() : std::min(snapshot.items.size(), offset + limit);
  json metadata = {{"resourceVersion", std::to_string(snapshot.resource_version)}};
  if (end < snapshot.items.size()) {
    metadata["continue"] = std::to_string(id) + "/" + std::to_string(end) + "+=";
    metadata["remainingItemCount"] = snapshot.items.size() - end;
  }
  // Items are spliced in as stored: a page of 500 pods costs a copy, not a serialisation.
  std::string body = R"({"kind":")" + Kind(target.resource) +
                     R"(List","apiVersion":"v1","metadata":)" + metadata.dump() + R"(,"items":[)";
  for (size_t i = offset; i < end; ++i) {
    if (i > offset) body += ',';
    body += snapshot.items[i]->list_item;
  }
  body += "]}";
  if (end >= snapshot.items.size()) snapshots_.erase(id);
  response.status = 200;
  response.body = std::move(body);
}

void FakeApiStore::HandleWatch(const Target& target, const ApiRequest& request,
                               ApiAnswer& response) {
  auto watch = std::make_shared<ApiWatch>();
  watch->resource = target.resource;
  watch->namespace_name = target.namespace_name;
  watch->bookmarks = Truthy(request.Param("allowWatchBookmarks"));
  if (!ParseSelector(request.Param("fieldSelector"), watch->selector.equals)) {
    Answer(response, 400, "unsupported fieldSelector (equality only in the fake)");
    return;
  }
  const std::string timeout = request.Param("timeoutSeconds");
  watch->deadline = Clock::now() + (timeout.empty() ? kDefaultWatchTimeout
                                                    : std::chrono::seconds(std::stoi(timeout)));
  const std::string version_text = request.Param("resourceVersion");

  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto in_scope = [&](const json& object) {
      return (watch->namespace_name.empty() ||
              StringAt(object, "metadata", "namespace") == watch->namespace_name) &&
             watch->selector.Matches(object);
    };
    if (version_text.empty() || version_text == "0") {
      // A state as synthetic ADDED events, then what follows. No resourceVersion: "start at most
      // recent", the store's state; 0: "any", the watch cache's, however far it trails.
      ObjectMap scratch;
      const ObjectMap* objects = &store_[watch->resource];
      watch->next_event = events_.size();
      if (version_text == "0") {
        watch->next_event = Release(Clock::now());
        objects = &ObjectsAt(watch->resource, CacheVersion(), scratch);
      }
      for (const auto& [key, object] : *objects) {
        if (!in_scope(object->object)) continue;
        watch->initial_lines.push_back(
            json{{"type", "ADDED"}, {"object", WithTypeMeta(watch->resource, object->object)}}
                .dump() +
            "\n");
      }
    } else {
      int64_t version = 0;
      try {
        version = std::stoll(version_text);
      } catch (const std::exception&) {
        Answer(response, 400, "invalid resourceVersion \"" + version_text + "\"");
        return;
      }
      if (version < compacted_) {
        const std::string message =
            "too old resource version: " + version_text + " (" + std::to_string(compacted_) + ")";
        if (expired_as_http_410_) {
          Answer(response, 410, message);
          return;
        }
        watch->initial_lines.push_back(
            json{{"type", "ERROR"}, {"object", StatusObject(410, message)}}.dump() + "\n");
        watch->end_after_initial = true;
        watch->next_event = events_.size();
      } else {
        watch->next_event = static_cast<size_t>(
            std::find_if(events_.begin(), events_.end(),
                         [&](const Event& event) { return event.resource_version > version; }) -
            events_.begin());
      }
    }
    watch->first_live = events_.size();
    watches_.push_back(watch);
  }

  response.status = 200;
  response.watch = watch;
}

FakeApiStore::WatchStep FakeApiStore::NextWatchLines(const std::shared_ptr<ApiWatch>& watch,
                                                     std::vector<std::string>& lines,
                                                     Clock::time_point wait_until) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto has_work = [&] {
    return stopping_ || watch->dropped || !watch->initial_lines.empty() ||
           watch->next_event < Release(Clock::now()) || Clock::now() >= watch->deadline;
  };
  // Woken by every change; a lagging one is due at NextRelease().
  cv_.wait_until(lock, std::min(wait_until, NextRelease()), has_work);
  if (stopping_ || watch->dropped) return WatchStep::kCut;
  const size_t before = lines.size();
  CollectWatchLines(*watch, lines);
  const bool finish =
      watch->end_after_initial || (lines.size() == before && Clock::now() >= watch->deadline);
  return finish ? WatchStep::kEnd : WatchStep::kLines;
}

void FakeApiStore::CloseWatch(const std::shared_ptr<ApiWatch>& watch) {
  std::lock_guard<std::mutex> lock(mu_);
  watches_.erase(std::remove(watches_.begin(), watches_.end(), watch), watches_.end());
}

bool FakeApiStore::CollectWatchLines(ApiWatch& watch, std::vector<std::string>& lines) {
  while (!watch.initial_lines.empty()) {
    lines.push_back(std::move(watch.initial_lines.front()));
    watch.initial_lines.pop_front();
  }
  if (watch.end_after_initial) return !lines.empty();
  const size_t released = Release(Clock::now());  // the watch cache has these; the rest lag
  if (delivery_held_) return !lines.empty();
  const auto in_scope = [&](const json& object) {
    return object.is_object() &&
           (watch.namespace_name.empty() ||
            StringAt(object, "metadata", "namespace") == watch.namespace_name) &&
           watch.selector.Matches(object);
  };
  const auto line = [&](const std::string& type, const json& object) {
    return json{{"type", type}, {"object", WithTypeMeta(watch.resource, object)}}.dump() + "\n";
  };
  for (; watch.next_event < released; ++watch.next_event) {
    const size_t index = watch.next_event;
    const Event& event = events_[index];
    if (event.type == "RAW") {
      if (index >= watch.first_live) lines.push_back(event.raw_line + "\n");
      continue;
    }
    if (event.resource != watch.resource) continue;
    if (event.type == "BOOKMARK") {
      if (watch.bookmarks && index >= watch.first_live)
        lines.push_back(line("BOOKMARK", event.object));
      continue;
    }
    const bool now = in_scope(event.object);
    const bool before = event.type == "MODIFIED" && in_scope(event.old_object);
    if (event.type == "ADDED" && now) {
      lines.push_back(line("ADDED", event.object));
    } else if (event.type == "DELETED" && now) {
      lines.push_back(line("DELETED", event.object));
    } else if (event.type == "MODIFIED") {
      // Moving into or out of the watch's selector looks like an add or a delete to it.
      if (before && now) lines.push_back(line("MODIFIED", event.object));
      if (!before && now) lines.push_back(line("ADDED", event.object));
      if (before && !now) lines.push_back(line("DELETED", event.object));
    }
  }
  return !lines.empty();
}

void FakeApiStore::HandleGet(const Target& target, const ApiRequest& request, ApiAnswer& response) {
  // No resourceVersion: a quorum read of etcd. With one the watch cache answers (cacher.go Get),
  // once it holds that version; 0 takes whatever it holds.
  const std::string version_text = request.Param("resourceVersion");
  int64_t version = -1;
  if (!version_text.empty()) {
    try {
      version = std::stoll(version_text);
    } catch (const std::exception&) {
      Answer(response, 400, "invalid resourceVersion \"" + version_text + "\"");
      return;
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  ObjectMap scratch;
  const ObjectMap* objects = &store_[target.resource];
  if (version >= 0) {
    if (!WaitForCache(lock, version, request, response)) return;
    objects = &ObjectsAt(target.resource, CacheVersion(), scratch);
  }
  const auto found = objects->find(target.key());
  if (found == objects->end()) {
    Answer(response, 404, target.resource + " \"" + target.name + "\" not found");
    return;
  }
  response.status = 200;
  response.body = WithTypeMeta(target.resource, found->second->object).dump();
}

void FakeApiStore::HandlePatch(const Target& target, const ApiRequest& request,
                               ApiAnswer& response) {
  const std::string content_type = request.content_type;
  const json patch = json::parse(request.body, nullptr, false);
  if (patch.is_discarded()) {
    Answer(response, 400, "the patch is not JSON");
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto& objects = store_[target.resource];
  const auto found = objects.find(target.key());
  if (found == objects.end()) {
    Answer(response, 404, target.resource + " \"" + target.name + "\" not found");
    return;
  }
  json old = found->second->object;
  json updated = old;
  try {
    if (content_type == "application/merge-patch+json" ||
        content_type == "application/strategic-merge-patch+json") {
      // Strategic merge differs from a merge patch only for lists with merge keys; for the
      // labels and annotations tests patch, the two agree.
      updated.merge_patch(patch);
    } else if (content_type == "application/json-patch+json") {
      updated = updated.patch(patch);
    } else {
      Answer(response, 415, "unsupported patch type \"" + content_type + "\"");
      return;
    }
  } catch (const json::exception& error) {
    Answer(response, 422, std::string("the patch does not apply: ") + error.what());
    return;
  }
  // Identity is not patchable.
  updated["metadata"]["name"] = old["metadata"]["name"];
  if (old["metadata"].contains("namespace")) {
    updated["metadata"]["namespace"] = old["metadata"]["namespace"];
  }
  Record(target.resource, "MODIFIED", updated, std::move(old));
  response.status = 200;
  response.body = WithTypeMeta(target.resource, objects[target.key()]->object).dump();
}

// POST to a collection: the object is created with a uid, a creationTimestamp and the next
// resourceVersion (201), unless one of its name exists (409 AlreadyExists).
void FakeApiStore::HandleCreate(const Target& target, const ApiRequest& request,
                                ApiAnswer& response) {
  json object = json::parse(request.body, nullptr, false);
  if (!target.name.empty() || object.is_discarded() || !object.is_object() ||
      !object["metadata"]["name"].is_string()) {
    Answer(response, target.name.empty() ? 400 : 405,
           target.name.empty() ? "the object is not JSON with metadata.name" : "POST an object");
    return;
  }
  const std::string name = object["metadata"]["name"];
  if (!target.namespace_name.empty()) object["metadata"]["namespace"] = target.namespace_name;
  if (target.group == "events.k8s.io" && target.resource == "events") {
    if (const std::string problem = EventCreateProblem(object); !problem.empty()) {
      Answer(response, 422, "Event.events.k8s.io \"" + name + "\" is invalid: " + problem,
             "Invalid");
      return;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto& objects = store_[target.resource];
  if (objects.count(KeyOf(object)) > 0) {
    Answer(response, 409, target.qualified() + " \"" + name + "\" already exists", "AlreadyExists");
    return;
  }
  object["metadata"]["uid"] = "uid-" + std::to_string(resource_version_ + 1);
  object["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z";
  Record(target.resource, "ADDED", object, json());
  response.status = 201;
  response.body = WithTypeMeta(target.resource, objects[KeyOf(object)]->object).dump();
}

// PUT of an object: it replaces the stored one when its metadata.resourceVersion is the stored
// one's (or empty: an unconditional update); else 409 Conflict. uid and creationTimestamp are
// kept; an object that does not exist is 404 (Leases do not allow create on update).
void FakeApiStore::HandleUpdate(const Target& target, const ApiRequest& request,
                                ApiAnswer& response) {
  json object = json::parse(request.body, nullptr, false);
  if (target.name.empty() || object.is_discarded() || !object.is_object() ||
      object["metadata"]["name"] != target.name) {
    Answer(response, 400, "the object is not JSON whose metadata.name is the path's");
    return;
  }
  if (!target.namespace_name.empty()) object["metadata"]["namespace"] = target.namespace_name;
  std::lock_guard<std::mutex> lock(mu_);
  auto& objects = store_[target.resource];
  const auto found = objects.find(target.key());
  if (found == objects.end()) {
    Answer(response, 404, target.qualified() + " \"" + target.name + "\" not found");
    return;
  }
  json old = found->second->object;
  const json& wanted = object["metadata"]["resourceVersion"];
  if (wanted.is_string() && !wanted.get<std::string>().empty() &&
      wanted != old["metadata"]["resourceVersion"]) {
    Answer(response, 409,
           "Operation cannot be fulfilled on " + target.qualified() + " \"" + target.name +
               "\": the object has been modified; please apply your changes to the latest "
               "version and try again",
           "Conflict");
    return;
  }
  if (target.group == "events.k8s.io" && target.resource == "events") {
    if (const std::string problem = EventUpdateProblem(object, old); !problem.empty()) {
      Answer(response, 422, "Event.events.k8s.io \"" + target.name + "\" is invalid: " + problem,
             "Invalid");
      return;
    }
  }
  for (const char* kept : {"uid", "creationTimestamp"}) {
    object["metadata"][kept] = old["metadata"][kept];
  }
  Record(target.resource, "MODIFIED", object, std::move(old));
  response.status = 200;
  response.body = WithTypeMeta(target.resource, objects[target.key()]->object).dump();
}

// DELETE of an object: gone at once (no finalizers here), answered with the object as it was.
void FakeApiStore::HandleDelete(const Target& target, ApiAnswer& response) {
  if (target.name.empty()) {
    Answer(response, 405, "DELETE an object, not a collection");
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto& objects = store_[target.resource];
  const auto found = objects.find(target.key());
  if (found == objects.end()) {
    Answer(response, 404, target.qualified() + " \"" + target.name + "\" not found", "NotFound");
    return;
  }
  json object = found->second->object;
  Record(target.resource, "DELETED", object, object);
  response.status = 200;
  response.body = WithTypeMeta(target.resource, object).dump();
}

}  // namespace cgpu::testing
