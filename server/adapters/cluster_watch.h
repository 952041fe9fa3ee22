// Informer handlers that keep a ClusterCache in step with the API server's pods and nodes, and
// the live reads the admission controller may make on the request path.
//
// Each handler is driven by one Informer thread (see adapters/informer.h): a (re)list sweeps
// away what the list no longer holds and marks the collection synced. Objects are read from the
// informer's simdjson views straight into object views and facts, with no JSON tree between.
// LiveClusterReads builds ClusterReads over a KubeClient; give it a client with short timeouts,
// since the API server waits for the webhook while those reads run.
#pragma once

#include <optional>

#include "adapters/admission_controller.h"
#include "adapters/cluster_cache.h"
#include "adapters/informer.h"
#include "adapters/kube_client.h"

namespace cgpu {

class PodWatchHandler : public WatchHandler {
 public:
  explicit PodWatchHandler(ClusterCache& cache) : cache_(cache) {}
  void OnListStart() override { cache_.BeginPodResync(); }
  void OnObject(const SimdjsonView& pod) override;
  void OnDelete(const SimdjsonView& pod) override;
  void OnListEnd() override {
    cache_.EndPodResync();
    cache_.MarkPodsSynced();
  }

 private:
  ClusterCache& cache_;
};

class NodeWatchHandler : public WatchHandler {
 public:
  explicit NodeWatchHandler(ClusterCache& cache) : cache_(cache) {}
  void OnListStart() override { cache_.BeginNodeResync(); }
  void OnObject(const SimdjsonView& node) override;
  void OnDelete(const SimdjsonView& node) override;
  void OnListEnd() override {
    cache_.EndNodeResync();
    cache_.MarkNodesSynced();
  }

 private:
  ClusterCache& cache_;
};

// The cluster's nodes, then its pods, listed once into `cache` by the informers' own list
// (ListCollection, paged with limit/continue, each page through the same handlers as above): what
// `check` reads instead of a file. Nodes come first, so that a pod's one-GPU node is known when
// the pod is counted, as when a state file is loaded. A 410 part-way through a collection (its
// continue token expired: the API server keeps a list's snapshot for about five minutes) lists
// that collection again from the start, as client-go's reflector does, at most `max_relists`
// times. Any other failure ends the read: an error saying which collection and why, and for a
// 401 or 403 which credentials or permission are missing. Nothing is retried after back-off:
// the caller is a person waiting at a terminal.
struct ClusterReadOptions {
  int page_size = 500;  // client-go's and kubectl's default chunk size
  // When set, every request is given up at this moment (DeadlineExceeded).
  std::optional<SteadyTime> deadline;
  int max_relists = 3;  // per collection
};

struct ClusterReadCounts {
  size_t nodes = 0;
  size_t pods = 0;
  int pages = 0;    // list pages received, both collections, relists included
  int relists = 0;  // lists started again after a 410
};

StatusOr<ClusterReadCounts> ReadClusterOnce(const KubeApi& client, ClusterCache& cache,
                                            const ClusterReadOptions& options = {});

// get_pod: GET /api/v1/namespaces/<ns>/pods/<name>, a quorum read (a GET with no resourceVersion
// is served from etcd), so it sees the scheduler's allocation write that preceded the Binding.
//
// list_pods_on_node: the node's pods as of now, without scanning every pod in etcd. A quorum list
// of one pod (/api/v1/pods?limit=1) gives the current resourceVersion cheaply (etcd reads one
// key); then /api/v1/pods?fieldSelector=spec.nodeName=<node>&resourceVersion=<it>&
// resourceVersionMatch=NotOlderThan is served from the API server's watch cache once the cache
// has caught up to it (the API concepts page, "Semantics for get and list"; cacher
// waitUntilFreshAndBlock). The resourceVersion of our own informer would not do: the watch cache
// already has it, and so would answer without the pods committed since, the very ones a
// recount is for. Both reads give up at the review's deadline.
ClusterReads LiveClusterReads(const KubeApi& client);

}  // namespace cgpu
