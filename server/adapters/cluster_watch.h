// Informer handlers that keep a ClusterCache in step with the API server's pods and nodes, and
// the live reads the admission controller may make on the request path.
//
// Each handler is driven by one Informer thread (see adapters/informer.h): a (re)list sweeps
// away what the list no longer holds and marks the collection synced. Objects are read from the
// informer's simdjson views straight into object views and facts, with no JSON tree between.
// LiveClusterReads builds ClusterReads over a KubeClient; give it a client with short timeouts,
// since the API server waits for the webhook while those reads run.
#pragma once

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
ClusterReads LiveClusterReads(const KubeClient& client);

}  // namespace cgpu
