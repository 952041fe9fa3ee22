// FakeApiStore: the state and the semantics of a Kubernetes API server, for tests, without a
// transport. FakeApiServer (fake_api_server.h) serves it over real HTTPS; MemoryKubeApi
// (memory_kube_api.h) answers a KubeApi from it in the calling thread. Serve() takes a request
// (method, path, decoded query, headers that matter, body) and gives the answer; the answer to a
// watch carries a stream whose lines NextWatchLines() hands over as they become due.
//
// Speaks the list/watch wire format of the real one for any resource under /api/v1 (or
// /apis/<group>/<version>): collections (/api/v1/pods, /api/v1/namespaces/<ns>/pods,
// /api/v1/nodes) with limit/continue paging, metadata.resourceVersion and equality
// fieldSelectors (spec.nodeName=x); watches (?watch=1) as newline-delimited JSON events
// replayed from the requested resourceVersion, with bookmarks, timeoutSeconds and 410 Gone for
// versions older than the compaction point (as an ERROR event or an HTTP 410); GET and PATCH
// (merge, strategic-merge treated as merge, JSON patch) of single objects; and create (POST to a
// collection: 201, or 409 AlreadyExists) and update (PUT of an object: a metadata.resourceVersion
// that is not the stored one is 409 Conflict, an object that does not exist 404), the optimistic
// concurrency that client-go's Lease-based leader election and every controller rely on; and
// DELETE of an object (200 with the object as it was, 404 when there is none: the generic
// registry's Delete, immediate for objects without finalizers), the same
// (k8s.io/apiserver registry/generic/registry/store.go Create and Update; the reasons and codes
// of apimachinery pkg/apis/meta/v1 types.go StatusReasonAlreadyExists and StatusReasonConflict).
// Events (events.k8s.io/v1) are validated on create and update as the API server does
// (fake_event_rules.h): 422 Invalid. Every change made from the test (Add/Update/Delete) takes the
// next resourceVersion and becomes an event.
//
// Like the real one it has two views of the store (k8s.io/apiserver pkg/storage/cacher):
//  - etcd, always current: GET and list without a resourceVersion are quorum reads of it, and a
//    watch without one starts from it;
//  - the watch cache, which receives every change in order, `SetWatchLag` after it was recorded
//    (never while PauseWatches holds it back). Open watches see a change only when the cache
//    has it, and the cache answers what the API server answers from it: list and GET with
//    resourceVersion=0 (any state: the cache's, however old) and with resourceVersion=X or
//    resourceVersionMatch=NotOlderThan&resourceVersion=X (a state at least as new as X: the
//    request waits until the cache has X, and after SetTooLargeResourceVersionWait (3 s, the
//    watch cache's blockTimeout) answers 504 "Too large resource version", as
//    watch_cache.go waitUntilFreshAndBlock does); a watch from resourceVersion=0 starts from the
//    cache's state.
// resourceVersionMatch=Exact&resourceVersion=X (and resourceVersion=X with a limit and no match,
// the legacy paged form) lists the state at exactly X, rebuilt from the change history as etcd
// keeps revisions: 410 "too old" below the compaction point, 504 at once above the store's
// version (storage/etcd3 store.go GetList). Invalid list options are refused as
// ValidateListOptions and handlers/get.go refuse them: 422 Invalid, e.g. resourceVersionMatch
// without resourceVersion. Field selectors apply to every form. The request log records every
// query parameter, so tests can assert which form a client used. (Sources: the API concepts
// page "Resource versions" / "Semantics for get and list", KEP-2523, and the files named.)
//
// Faults on demand: drop every open watch mid-stream, fail the next N requests with a status,
// delay answers, expire continue tokens, require a bearer token, pause or lag event delivery,
// inject raw lines. Every request is recorded so tests can count lists, watches and relists. All
// methods are thread-safe. StopServing() ends every open stream and answers every later request
// 503.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace cgpu::testing {

enum class RequestKind { kAny, kList, kWatch, kGet, kPatch, kCreate, kUpdate, kDelete };

struct RecordedRequest {
  std::string method;  // GET, PATCH, POST, PUT
  RequestKind kind = RequestKind::kAny;
  std::string path;                           // without the query
  std::map<std::string, std::string> params;  // decoded query parameters
  std::string authorization;                  // the Authorization header
  std::string user_agent;
  std::string content_type;    // of the request body (PATCH)
  std::string body;            // the request body (PATCH)
  std::string client_cert_cn;  // CN of the client certificate, when one was presented
  int status = 0;              // answered status (for watches: at the start of the stream)
};

// A request as the store sees it: what a front took off its transport.
struct ApiRequest {
  std::string method = "GET";
  std::string path;                           // without the query
  std::map<std::string, std::string> params;  // decoded query parameters (the first of a name)
  std::string authorization;                  // the Authorization header
  std::string user_agent;
  std::string content_type;
  std::string body;
  std::string client_cert_cn;  // CN of the client certificate, when one was presented
  // When the client abandons the request (a deadline of its own): the store's waits (SetDelay,
  // a read waiting for the watch cache) end there, with status 0 for an answer nobody reads.
  std::optional<std::chrono::steady_clock::time_point> gives_up_at;

  // "/api/v1/pods?limit=5&continue=7%2F4%2B%3D" -> path and decoded params.
  static ApiRequest Parse(std::string method, const std::string& path_and_query);
  std::string Param(const std::string& name) const;  // "" when absent
};

struct ApiWatch;  // an open watch stream

struct ApiAnswer {
  int status = 0;
  std::string body;             // JSON
  int retry_after_seconds = 0;  // a Retry-After header, when not 0
  // A watch answered 200: its lines come from FakeApiStore::NextWatchLines, and the front calls
  // FakeApiStore::CloseWatch when it is done with it.
  std::shared_ptr<ApiWatch> watch;
};

// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns whether it
// held. Tests wait with this instead of sleeping a guessed time.
bool WaitUntil(const std::function<bool()>& condition,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));

class FakeApiStore {
 public:
  FakeApiStore() = default;
  virtual ~FakeApiStore() = default;
  FakeApiStore(const FakeApiStore&) = delete;
  FakeApiStore& operator=(const FakeApiStore&) = delete;

  // Ends every open watch (cut, as a dropped connection) and answers every later request 503.
  // Idempotent.
  void StopServing();

  // ---- The fronts.
  // Answers `request` (records it, applies delays and faults first). May block: SetDelay,
  // HoldNextAnswer, and reads that wait for the watch cache.
  ApiAnswer Serve(const ApiRequest& request);
  enum class WatchStep {
    kLines,  // `lines` has what is due now (maybe nothing): ask again
    kEnd,    // the server ends the stream after `lines` (timeoutSeconds, a 410 ERROR event)
    kCut,    // the stream breaks off without an end (DropWatches, StopServing)
  };
  // Waits until `watch` has lines due, or until `wait_until` (real time), and appends them to
  // `lines`, each ending in '\n'.
  WatchStep NextWatchLines(const std::shared_ptr<ApiWatch>& watch, std::vector<std::string>& lines,
                           std::chrono::steady_clock::time_point wait_until);
  void CloseWatch(const std::shared_ptr<ApiWatch>& watch);

  // ---- Store. `resource` is the plural ("pods", "nodes"); an object is namespaced when its
  // metadata.namespace is set. Each returns the resourceVersion the change took.
  int64_t Add(const std::string& resource, nlohmann::json object);     // ADDED
  int64_t Update(const std::string& resource, nlohmann::json object);  // MODIFIED (or ADDED)
  int64_t Delete(const std::string& resource, const std::string& name,
                 const std::string& namespace_name = "");  // DELETED; 0 when absent
  std::optional<nlohmann::json> Find(const std::string& resource, const std::string& name,
                                     const std::string& namespace_name = "") const;
  int64_t resource_version() const;

  // ---- Watches.
  // Forgets history: a watch from any resourceVersion handed out so far gets 410 Gone. (The
  // store's version moves one on, as if something elsewhere changed, so a fresh list works.)
  void Compact();
  // How a watch from a compacted resourceVersion is refused: HTTP 200 with an ERROR event
  // (default, what the API server does today) or HTTP 410.
  void set_expired_watch_as_http_410(bool http_410);
  // Queues a BOOKMARK with the current resourceVersion on every open watch of `resource` that
  // asked for bookmarks, in order with its events.
  void SendBookmarks(const std::string& resource);
  // Queues a raw line (e.g. malformed JSON) on every open watch.
  void InjectWatchLine(const std::string& line);
  // Cuts every open watch stream without the terminating chunk (a dropped connection).
  void DropWatches();
  // While paused, open watches send no events (they are kept and sent on Resume), and the watch
  // cache takes no change: a deterministic, endless lag. Tests pin the binding race with it.
  void PauseWatches();
  void ResumeWatches();
  // While held, open watch streams send nothing new, but the watch cache keeps taking changes:
  // a client's watch trailing the API server (delivery, the network, a busy informer) while
  // lists and GETs served from the cache are current. The binding race as a webhook meets it:
  // the scheduler's write is in etcd and in the API server's watch cache within moments, and the
  // webhook's own watch has not delivered it yet.
  void HoldWatchDelivery();
  void ReleaseWatchDelivery();
  int open_watches() const;

  // ---- Watch cache (see the top of this file).
  // Changes recorded from now on reach the watch cache, and so open watches, no sooner than
  // `lag` after they were recorded, in order (a change never overtakes an earlier one, whatever
  // lag each was recorded under). GET and list without a resourceVersion stay current. 0 (the
  // default) costs nothing.
  void SetWatchLag(std::chrono::milliseconds lag);
  // How long a list or GET for a resourceVersion the watch cache has not reached waits for it
  // before 504 "Too large resource version" (default 3 s, the watch cache's blockTimeout).
  void SetTooLargeResourceVersionWait(std::chrono::milliseconds wait);
  // The newest resourceVersion the watch cache holds: resource_version() unless changes are
  // still lagging or paused.
  int64_t watch_cache_version() const;

  // ---- Faults.
  // The next `count` requests of `kind` (on paths starting with `path_prefix`) are answered
  // `status` (500, 401, 403, 409, 410, ...) with a metav1.Status body.
  void FailNext(int count, int status, RequestKind kind = RequestKind::kAny,
                const std::string& path_prefix = "");  // "": any path
  // Each request of `kind` on paths starting with `path_prefix` is answered `status` with
  // probability `percent`/100 (a fixed seed: the same run gives the same choices), until cleared.
  void FailAtRandom(int percent, int status, RequestKind kind, const std::string& path_prefix);
  void ClearFaults();  // forget the failures FailNext and FailAtRandom still had to give
  // Every answer waits this long first (the wait ends early on Stop).
  void SetDelay(std::chrono::milliseconds delay);
  // The next request that `which` picks is answered from the state at its arrival, but the answer
  // is held back until ReleaseHeldAnswer() (or Stop): a read in flight while the store, and the
  // watches, move on. held_answer_waiting() says whether such an answer is being held now.
  void HoldNextAnswer(std::function<bool(const RecordedRequest&)> which);
  bool held_answer_waiting() const;
  void ReleaseHeldAnswer();
  // Continue tokens handed out so far are refused with 410 Expired.
  void ExpireContinueTokens();
  // The next `count` list requests that carry a continue token are refused with 410 Expired
  // (deterministic: no need to catch the moment between two pages).
  void ExpireNextContinue(int count = 1);
  // Requests must carry "Authorization: Bearer <token>", else 401. "" accepts anything.
  void RequireToken(const std::string& token);

  // ---- Request log.
  std::vector<RecordedRequest> requests() const;
  // Requests of `kind` (kAny: all), on `path` when not empty.
  int CountRequests(RequestKind kind, const std::string& path = "") const;

 private:
  struct Event {
    int64_t resource_version = 0;
    std::string resource;
    std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK, RAW
    nlohmann::json object;
    nlohmann::json old_object;  // MODIFIED, DELETED: the state before
    std::string raw_line;       // RAW
    // When the watch cache may take it (time_point::min() when recorded without lag).
    std::chrono::steady_clock::time_point visible_at;
  };
  struct Target;  // a parsed request path
  struct Selector {
    std::vector<std::pair<std::string, std::string>> equals;  // field path, value
    bool Matches(const nlohmann::json& object) const;
  };
  friend struct ApiWatch;
  // An object as stored, with its list-item form (no kind/apiVersion) serialized once.
  struct Stored {
    nlohmann::json object;
    std::string list_item;
  };
  using ObjectMap = std::map<std::string, std::shared_ptr<const Stored>>;  // key -> object
  static std::shared_ptr<const Stored> MakeStored(nlohmann::json object);
  struct Snapshot {
    int64_t resource_version = 0;
    std::vector<std::shared_ptr<const Stored>> items;  // shared with store_: no copies
  };
  struct Fault {
    RequestKind kind;
    int status;
    int remaining;
    std::string path_prefix;  // "" for any path
    int percent = 100;        // FailAtRandom: the share of matching requests that fail
  };

  void HandleList(const Target& target, const ApiRequest& request, ApiAnswer& response);
  void HandleWatch(const Target& target, const ApiRequest& request, ApiAnswer& response);
  void HandleGet(const Target& target, const ApiRequest& request, ApiAnswer& response);
  void HandlePatch(const Target& target, const ApiRequest& request, ApiAnswer& response);
  void HandleCreate(const Target& target, const ApiRequest& request, ApiAnswer& response);
  void HandleUpdate(const Target& target, const ApiRequest& request, ApiAnswer& response);
  void HandleDelete(const Target& target, ApiAnswer& response);
  bool CollectWatchLines(ApiWatch& watch, std::vector<std::string>& lines);  // mu_ held
  int64_t Record(const std::string& resource, const std::string& type, nlohmann::json object,
                 nlohmann::json old_object);  // mu_ held
  nlohmann::json WithTypeMeta(const std::string& resource, nlohmann::json object) const;
  // ---- The watch cache (mu_ held).
  std::chrono::steady_clock::time_point VisibleAt() const;          // for a change recorded now
  size_t Release(std::chrono::steady_clock::time_point now) const;  // events_ the cache has
  std::chrono::steady_clock::time_point NextRelease() const;        // max() when none is due
  int64_t CacheVersion() const;  // after Release: the newest version the cache holds
  // Waits until the cache holds `version`; false after answering 504 (or 503 on Stop).
  // `request` gave up first: status 0.
  bool WaitForCache(std::unique_lock<std::mutex>& lock, int64_t version, const ApiRequest& request,
                    ApiAnswer& response);
  // The objects of `resource` as they were at `version`: store_'s own map when nothing has
  // changed since, else `scratch` filled with the older state, rebuilt from events_.
  const ObjectMap& ObjectsAt(const std::string& resource, int64_t version, ObjectMap& scratch);

  mutable std::mutex mu_;
  std::condition_variable cv_;  // any change of the state below
  bool stopping_ = false;
  int64_t resource_version_ = 100;
  int64_t compacted_ = 0;  // watches from versions below this are 410
  bool expired_as_http_410_ = false;
  bool paused_ = false;
  bool delivery_held_ = false;  // HoldWatchDelivery
  std::chrono::milliseconds watch_lag_{0};
  std::chrono::milliseconds too_large_wait_{std::chrono::seconds(3)};
  mutable size_t released_ = 0;  // events_[0, released_) are in the watch cache
  // resource -> key -> object. Objects are immutable once stored (a change stores a new one), so
  // a list snapshot of 100,000 objects shares them instead of copying.
  std::map<std::string, ObjectMap> store_;
  std::vector<Event> events_;
  std::vector<std::shared_ptr<ApiWatch>> watches_;
  std::map<int64_t, Snapshot> snapshots_;  // continue token id -> list snapshot
  int64_t next_snapshot_ = 1;
  std::deque<Fault> faults_;
  std::mt19937 fault_random_{20261130};  // guarded by mu_
  int expire_next_continue_ = 0;
  std::chrono::milliseconds delay_{0};
  std::function<bool(const RecordedRequest&)> hold_next_;  // HoldNextAnswer
  bool holding_answer_ = false;                            // an answer is being held
  bool release_held_ = false;
  std::string required_token_;
  std::vector<RecordedRequest> requests_;
};

}  // namespace cgpu::testing
