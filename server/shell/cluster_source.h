// ClusterSource: where `serve` gets its cluster state from, and whether it is ready.
//
//   --cluster-state FILE  read once at start-up (a bad file stops start-up); always synced.
//   --kubeconfig FILE     list/watch pods and nodes on the API server the kubeconfig names.
//   neither               the same, in-cluster: the pod's service account and
//                         KUBERNETES_SERVICE_HOST/PORT.
// Live mode also gives the admission controller its live reads (ClusterReads) over a client with
// short timeouts. Create() fails fast on a bad file or configuration; Start()/Stop() run and end
// the informers. StaleReason() is "" unless a collection, once listed, has gone longer than
// --stale-after without an open watch (events may be missed: the API server is down, slow,
// refusing the token, or answering 410 over and over). NotReadyReason() is "" once pods and nodes
// have been listed and neither is stale.
#pragma once

#include <memory>
#include <string>

#include "adapters/admission_controller.h"
#include "adapters/cluster_cache.h"
#include "adapters/cluster_watch.h"
#include "adapters/informer.h"
#include "adapters/kube_client.h"
#include "shell/serve_options.h"

namespace cgpu {

struct WatchCounters {
  int64_t relists = 0;
  int64_t watch_restarts = 0;
  int64_t errors = 0;
  std::chrono::milliseconds without_watch{0};
};

class ClusterSource {
 public:
  static StatusOr<std::unique_ptr<ClusterSource>> Create(const ServeOptions& options,
                                                         ClusterCache& cache);
  ~ClusterSource();

  void Start();
  void Stop();
  const ClusterReads& reads() const { return reads_; }
  // The client for requests on the admission path (short timeouts); null with --cluster-state.
  const KubeClient* request_client() const { return request_client_.get(); }
  // The client for work off the request path (Events); null with --cluster-state.
  const KubeClient* background_client() const { return watch_client_.get(); }
  std::string NotReadyReason() const;
  std::string StaleReason() const;
  std::string description() const { return description_; }
  // Per collection ("pods", "nodes"); zeros in file mode.
  WatchCounters Counters(const std::string& collection) const;

 private:
  explicit ClusterSource(ClusterCache& cache) : cache_(cache) {}

  ClusterCache& cache_;
  std::chrono::milliseconds stale_after_{0};
  std::string description_;
  ClusterReads reads_;
  std::unique_ptr<KubeClient> watch_client_;    // long timeouts: informers
  std::unique_ptr<KubeClient> request_client_;  // short timeouts: reads on the request path
  std::unique_ptr<PodWatchHandler> pod_handler_;
  std::unique_ptr<NodeWatchHandler> node_handler_;
  std::unique_ptr<Informer> pod_informer_;
  std::unique_ptr<Informer> node_informer_;
};

}  // namespace cgpu
