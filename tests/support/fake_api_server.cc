#include "support/fake_api_server.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <csignal>
#include <limits>
#include <stdexcept>

#include "support/fake_event_rules.h"

namespace cgpu::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often an idle watch stream looks at the clock, the stop flag and its peer.
constexpr auto kWatchPoll = 20ms;
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

std::string ReasonFor(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Expired";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return status >= 500 ? "InternalError" : "Unknown";
  }
}

json StatusObject(int code, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", ReasonFor(code)},
          {"code", code}};
}

void Answer(httplib::Response& response, int code, const std::string& message,
            const std::string& reason = "") {
  response.status = code;
  json status = StatusObject(code, message);
  if (!reason.empty()) status["reason"] = reason;
  response.set_content(status.dump(), "application/json");
}

// storage.NewTooLargeResourceVersionError (k8s.io/apiserver pkg/storage/errors.go): a 504
// Timeout whose cause says why, with Retry-After when `retry_seconds` is set (the watch cache
// asks for 1 s; etcd's future-revision answer for 0).
void AnswerTooLarge(httplib::Response& response, int64_t wanted, int64_t current,
                    int retry_seconds) {
  json status = StatusObject(504, "Timeout: Too large resource version: " + std::to_string(wanted) +
                                      ", current: " + std::to_string(current));
  status["details"] = {{"causes", json::array({{{"reason", "ResourceVersionTooLarge"},
                                                {"message", "Too large resource version"}}})}};
  if (retry_seconds > 0) {
    status["details"]["retryAfterSeconds"] = retry_seconds;
    response.set_header("Retry-After", std::to_string(retry_seconds));
  }
  response.status = 504;
  response.set_content(status.dump(), "application/json");
}

// A field.Error of apimachinery's validation: its cause type, field and ErrorBody().
struct FieldError {
  std::string type;  // FieldValueForbidden, FieldValueNotSupported
  std::string field;
  std::string body;  // "Forbidden: ..."
};

// errors.NewInvalid(meta.k8s.io/<kind>, "", errs), as handlers/get.go answers a ListOptions
// that ValidateListOptions refuses: 422, reason Invalid, one cause per field error.
void AnswerInvalid(httplib::Response& response, const std::string& kind,
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
  response.set_content(status.dump(), "application/json");
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

bool PeerClosed(int fd) {
  if (fd < 0) return false;
  pollfd poll_fd{fd, POLLIN | POLLRDHUP, 0};
  // The client sends nothing after its GET: anything readable is EOF or a close_notify.
  return ::poll(&poll_fd, 1, 0) > 0 && (poll_fd.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR));
}

bool Truthy(const std::string& value) { return value == "1" || value == "true"; }

bool IsChange(const std::string& type) {
  return type == "ADDED" || type == "MODIFIED" || type == "DELETED";
}

}  // namespace

struct FakeApiServer::Target {
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

bool FakeApiServer::Selector::Matches(const json& object) const {
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

// ---- Store ----

std::shared_ptr<const FakeApiServer::Stored> FakeApiServer::MakeStored(json object) {
  json item = object;
  item.erase("kind");  // list items carry no type meta on the wire
  item.erase("apiVersion");
  std::string list_item = item.dump();
  return std::make_shared<const Stored>(Stored{std::move(object), std::move(list_item)});
}

int64_t FakeApiServer::Record(const std::string& resource, const std::string& type, json object,
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

int64_t FakeApiServer::Add(const std::string& resource, json object) {
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

int64_t FakeApiServer::Update(const std::string& resource, json object) {
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

int64_t FakeApiServer::Delete(const std::string& resource, const std::string& name,
                              const std::string& namespace_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& objects = store_[resource];
  const auto existing = objects.find(namespace_name.empty() ? name : namespace_name + "/" + name);
  if (existing == objects.end()) return 0;
  json object = existing->second->object;
  json old = object;  // the state before, with its own resourceVersion, for reads of the past
  return Record(resource, "DELETED", std::move(object), std::move(old));
}

std::optional<json> FakeApiServer::Find(const std::string& resource, const std::string& name,
                                        const std::string& namespace_name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto objects = store_.find(resource);
  if (objects == store_.end()) return std::nullopt;
  const auto found =
      objects->second.find(namespace_name.empty() ? name : namespace_name + "/" + name);
  if (found == objects->second.end()) return std::nullopt;
  return found->second->object;
}

int64_t FakeApiServer::resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resource_version_;
}

json FakeApiServer::WithTypeMeta(const std::string& resource, json object) const {
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

Clock::time_point FakeApiServer::VisibleAt() const {
  return watch_lag_.count() == 0 ? Clock::time_point::min() : Clock::now() + watch_lag_;
}

size_t FakeApiServer::Release(Clock::time_point now) const {
  if (paused_) return released_;
  // In order: a change never overtakes an earlier one, whatever lag each was recorded under.
  while (released_ < events_.size() && events_[released_].visible_at <= now) ++released_;
  return released_;
}

Clock::time_point FakeApiServer::NextRelease() const {
  if (paused_ || released_ >= events_.size()) return Clock::time_point::max();
  return events_[released_].visible_at;
}

int64_t FakeApiServer::CacheVersion() const {
  for (size_t i = released_; i < events_.size(); ++i) {
    if (IsChange(events_[i].type)) return events_[i].resource_version - 1;
  }
  return resource_version_;  // all in (Compact moves the version on without an event)
}

bool FakeApiServer::WaitForCache(std::unique_lock<std::mutex>& lock, int64_t version,
                                 httplib::Response& response) {
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
    cv_.wait_until(lock, std::min(deadline, NextRelease()));
  }
}

const FakeApiServer::ObjectMap& FakeApiServer::ObjectsAt(const std::string& resource,
                                                         int64_t version, ObjectMap& scratch) {
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

void FakeApiServer::Compact() {
  std::lock_guard<std::mutex> lock(mu_);
  ++resource_version_;
  compacted_ = resource_version_;
}

void FakeApiServer::set_expired_watch_as_http_410(bool http_410) {
  std::lock_guard<std::mutex> lock(mu_);
  expired_as_http_410_ = http_410;
}

void FakeApiServer::SendBookmarks(const std::string& resource) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string version = std::to_string(resource_version_);
  events_.push_back(Event{resource_version_, resource, "BOOKMARK",
                          json{{"metadata", {{"resourceVersion", version}}}}, json(), "",
                          VisibleAt()});
  cv_.notify_all();
}

void FakeApiServer::InjectWatchLine(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(Event{resource_version_, "", "RAW", json(), json(), line, VisibleAt()});
  cv_.notify_all();
}

void FakeApiServer::DropWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& watch : watches_) watch->dropped = true;
  cv_.notify_all();
}

void FakeApiServer::PauseWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  Release(Clock::now());  // what is due by now is in the cache; nothing more until Resume
  paused_ = true;
}

void FakeApiServer::ResumeWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  paused_ = false;
  cv_.notify_all();
}

void FakeApiServer::HoldNextAnswer(std::function<bool(const RecordedRequest&)> which) {
  std::lock_guard<std::mutex> lock(mu_);
  hold_next_ = std::move(which);
}

bool FakeApiServer::held_answer_waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return holding_answer_;
}

void FakeApiServer::ReleaseHeldAnswer() {
  std::lock_guard<std::mutex> lock(mu_);
  release_held_ = true;
  cv_.notify_all();
}

void FakeApiServer::HoldWatchDelivery() {
  std::lock_guard<std::mutex> lock(mu_);
  delivery_held_ = true;
}

void FakeApiServer::ReleaseWatchDelivery() {
  std::lock_guard<std::mutex> lock(mu_);
  delivery_held_ = false;
  cv_.notify_all();
}

void FakeApiServer::SetWatchLag(std::chrono::milliseconds lag) {
  std::lock_guard<std::mutex> lock(mu_);
  watch_lag_ = lag;
}

void FakeApiServer::SetTooLargeResourceVersionWait(std::chrono::milliseconds wait) {
  std::lock_guard<std::mutex> lock(mu_);
  too_large_wait_ = wait;
}

int64_t FakeApiServer::watch_cache_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  Release(Clock::now());
  return CacheVersion();
}

int FakeApiServer::open_watches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(watches_.begin(), watches_.end(),
                                        [](const auto& watch) { return !watch->dropped; }));
}

// ---- Faults ----

void FakeApiServer::FailNext(int count, int status, RequestKind kind,
                             const std::string& path_prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  if (count > 0) faults_.push_back(Fault{kind, status, count, path_prefix});
}

void FakeApiServer::FailAtRandom(int percent, int status, RequestKind kind,
                                 const std::string& path_prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(Fault{kind, status, std::numeric_limits<int>::max(), path_prefix, percent});
}

void FakeApiServer::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.clear();
}

void FakeApiServer::SetDelay(std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(mu_);
  delay_ = delay;
}

void FakeApiServer::ExpireContinueTokens() {
  std::lock_guard<std::mutex> lock(mu_);
  snapshots_.clear();
}

void FakeApiServer::ExpireNextContinue(int count) {
  std::lock_guard<std::mutex> lock(mu_);
  expire_next_continue_ += count;
}

void FakeApiServer::RequireToken(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  required_token_ = token;
}

std::vector<RecordedRequest> FakeApiServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

int FakeApiServer::CountRequests(RequestKind kind, const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(requests_.begin(), requests_.end(), [&](const auto& r) {
    return (kind == RequestKind::kAny || r.kind == kind) && (path.empty() || r.path == path);
  }));
}

// ---- Serving ----

void FakeApiServer::Handle(const httplib::Request& request, httplib::Response& response) {
  RecordedRequest record;
  record.method = request.method;
  record.path = request.path;
  for (const auto& [key, value] : request.params) record.params.emplace(key, value);
  record.authorization = request.get_header_value("Authorization");
  record.user_agent = request.get_header_value("User-Agent");
  record.content_type = request.get_header_value("Content-Type");
  record.body = request.body;
  if (request.ssl != nullptr) {
    if (X509* peer = SSL_get1_peer_certificate(request.ssl)) {
      char name[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof(name));
      record.client_cert_cn = name;
      X509_free(peer);
    }
  }
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
    record.kind =
        Truthy(request.get_param_value("watch")) ? RequestKind::kWatch : RequestKind::kList;
  }

  // Delay, then authentication, then injected faults, as the API server's filter chain has it.
  int fault = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (delay_.count() > 0) cv_.wait_for(lock, delay_, [this] { return stopping_; });
    if (stopping_) {
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
  if (fault != 0) {
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
    HandleWatch(target, request, response, record);
  } else {
    HandleList(target, request, response, record);
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

void FakeApiServer::HandleList(const Target& target, const httplib::Request& request,
                               httplib::Response& response, RecordedRequest&) {
  Selector selector;
  if (!ParseSelector(request.get_param_value("fieldSelector"), selector.equals)) {
    Answer(response, 400, "unsupported fieldSelector (equality only in the fake)");
    return;
  }
  const std::string limit_text = request.get_param_value("limit");
  size_t limit = limit_text.empty() ? 0 : std::stoul(limit_text);
  const std::string token = request.get_param_value("continue");
  const std::string version_text = request.get_param_value("resourceVersion");
  const std::string match = request.get_param_value("resourceVersionMatch");

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
      if (!WaitForCache(lock, version, response)) return;
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
  response.set_content(std::move(body), "application/json");
}

void FakeApiServer::HandleWatch(const Target& target, const httplib::Request& request,
                                httplib::Response& response, RecordedRequest&) {
  auto watch = std::make_shared<WatchStream>();
  watch->resource = target.resource;
  watch->namespace_name = target.namespace_name;
  watch->bookmarks = Truthy(request.get_param_value("allowWatchBookmarks"));
  if (!ParseSelector(request.get_param_value("fieldSelector"), watch->selector.equals)) {
    Answer(response, 400, "unsupported fieldSelector (equality only in the fake)");
    return;
  }
  const std::string timeout = request.get_param_value("timeoutSeconds");
  watch->deadline = Clock::now() + (timeout.empty() ? kDefaultWatchTimeout
                                                    : std::chrono::seconds(std::stoi(timeout)));
  const std::string version_text = request.get_param_value("resourceVersion");

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

  const int fd = request.ssl != nullptr ? SSL_get_fd(request.ssl) : -1;
  response.status = 200;
  response.set_chunked_content_provider(
      "application/json",
      [this, watch, fd](size_t, httplib::DataSink& sink) {
        std::vector<std::string> lines;
        bool finish = false;
        {
          std::unique_lock<std::mutex> lock(mu_);
          const auto has_work = [&] {
            return stopping_ || watch->dropped || !watch->initial_lines.empty() ||
                   watch->next_event < Release(Clock::now()) || Clock::now() >= watch->deadline;
          };
          // Woken by every change; a lagging one is due at NextRelease().
          cv_.wait_until(lock, std::min(Clock::now() + kWatchPoll, NextRelease()), has_work);
          if (stopping_ || watch->dropped) return false;  // cut without the final chunk
          NextWatchLines(*watch, lines);
          finish = watch->end_after_initial || (lines.empty() && Clock::now() >= watch->deadline);
        }
        for (const std::string& line : lines) {
          if (!sink.write(line.data(), line.size())) return false;
        }
        if (finish) {
          sink.done();
          return true;
        }
        return !PeerClosed(fd);
      },
      [this, watch](bool) {
        std::lock_guard<std::mutex> lock(mu_);
        watches_.erase(std::remove(watches_.begin(), watches_.end(), watch), watches_.end());
      });
}

bool FakeApiServer::NextWatchLines(WatchStream& watch, std::vector<std::string>& lines) {
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

void FakeApiServer::HandleGet(const Target& target, const httplib::Request& request,
                              httplib::Response& response) {
  // No resourceVersion: a quorum read of etcd. With one the watch cache answers (cacher.go Get),
  // once it holds that version; 0 takes whatever it holds.
  const std::string version_text = request.get_param_value("resourceVersion");
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
    if (!WaitForCache(lock, version, response)) return;
    objects = &ObjectsAt(target.resource, CacheVersion(), scratch);
  }
  const auto found = objects->find(target.key());
  if (found == objects->end()) {
    Answer(response, 404, target.resource + " \"" + target.name + "\" not found");
    return;
  }
  response.status = 200;
  response.set_content(WithTypeMeta(target.resource, found->second->object).dump(),
                       "application/json");
}

void FakeApiServer::HandlePatch(const Target& target, const httplib::Request& request,
                                httplib::Response& response) {
  const std::string content_type = request.get_header_value("Content-Type");
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
  response.set_content(WithTypeMeta(target.resource, objects[target.key()]->object).dump(),
                       "application/json");
}

// POST to a collection: the object is created with a uid, a creationTimestamp and the next
// resourceVersion (201), unless one of its name exists (409 AlreadyExists).
void FakeApiServer::HandleCreate(const Target& target, const httplib::Request& request,
                                 httplib::Response& response) {
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
  response.set_content(WithTypeMeta(target.resource, objects[KeyOf(object)]->object).dump(),
                       "application/json");
}

// PUT of an object: it replaces the stored one when its metadata.resourceVersion is the stored
// one's (or empty: an unconditional update); else 409 Conflict. uid and creationTimestamp are
// kept; an object that does not exist is 404 (Leases do not allow create on update).
void FakeApiServer::HandleUpdate(const Target& target, const httplib::Request& request,
                                 httplib::Response& response) {
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
  response.set_content(WithTypeMeta(target.resource, objects[target.key()]->object).dump(),
                       "application/json");
}

// DELETE of an object: gone at once (no finalizers here), answered with the object as it was.
void FakeApiServer::HandleDelete(const Target& target, httplib::Response& response) {
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
  response.set_content(WithTypeMeta(target.resource, object).dump(), "application/json");
}

}  // namespace cgpu::testing
