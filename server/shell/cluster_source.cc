#include "shell/cluster_source.h"

#include "adapters/cluster_state_file.h"
#include "adapters/kube_config.h"
#include "shell/log.h"
#include "shell/version.h"

namespace cgpu {

StatusOr<std::unique_ptr<ClusterSource>> ClusterSource::Create(const ServeOptions& options,
                                                               ClusterCache& cache) {
  std::unique_ptr<ClusterSource> source(new ClusterSource(cache));
  source->stale_after_ = options.stale_after;
  if (!options.cluster_state_file.empty()) {
    StatusOr<ClusterStateCounts> counts = LoadClusterStateFile(options.cluster_state_file, cache);
    if (!counts.ok()) return counts.status();
    source->description_ = "file " + options.cluster_state_file + " (" +
                           std::to_string(counts->nodes) + " nodes, " +
                           std::to_string(counts->pods) + " pods)";
    return source;
  }

  StatusOr<KubeConfig> config =
      options.kubeconfig_file.empty()
          ? InClusterConfig()
          : LoadKubeconfig(options.kubeconfig_file, options.kubeconfig_context);
  if (!config.ok()) {
    return InvalidArgument("no cluster state: " + config.status().message() +
                           " (give --kubeconfig FILE, run in a pod, or give --cluster-state FILE)");
  }
  source->description_ = "API server " + config->host + ":" + std::to_string(config->port) + " (" +
                         config->source + ")";

  KubeClientOptions watch_options;
  watch_options.version = kVersion;
  source->watch_client_ = std::make_unique<KubeClient>(*config, watch_options);
  // The API server waits for the webhook (timeoutSeconds, 3 s by default) while these run. Every
  // call on this client carries the review's deadline (--live-read-deadline), which cuts the
  // connect, handshake, write and read to the time left: the deadline is the one bound, so a
  // connection that is slow to open under load does not fail while time is left.
  KubeClientOptions request_options = watch_options;
  request_options.connect_timeout = options.live_read_deadline;
  request_options.read_timeout = options.live_read_deadline;
  request_options.write_timeout = options.live_read_deadline;
  source->request_client_ = std::make_unique<KubeClient>(*config, request_options);
  source->reads_ = LiveClusterReads(*source->request_client_);

  source->node_handler_ = std::make_unique<NodeWatchHandler>(cache);
  source->pod_handler_ = std::make_unique<PodWatchHandler>(cache);
  InformerOptions nodes;
  nodes.collection_path = "/api/v1/nodes";
  InformerOptions pods;
  pods.collection_path = "/api/v1/pods";
  source->node_informer_ =
      std::make_unique<Informer>(*source->watch_client_, nodes, *source->node_handler_);
  source->pod_informer_ =
      std::make_unique<Informer>(*source->watch_client_, pods, *source->pod_handler_);
  return source;
}

ClusterSource::~ClusterSource() { Stop(); }

void ClusterSource::Start() {
  if (node_informer_) node_informer_->Start();
  if (pod_informer_) pod_informer_->Start();
}

void ClusterSource::Stop() {
  if (pod_informer_) pod_informer_->Stop();
  if (node_informer_) node_informer_->Stop();
}

std::string ClusterSource::NotReadyReason() const {
  if (cache_.synced()) return StaleReason();
  std::string reason = "cluster state not synced yet";
  for (const Informer* informer : {node_informer_.get(), pod_informer_.get()}) {
    if (informer != nullptr && !informer->synced()) {
      const std::string error = informer->stats().last_error();
      if (!error.empty()) reason += "; last error: " + error;
    }
  }
  return reason;
}

std::string ClusterSource::StaleReason() const {
  std::string reason;
  for (const auto& [collection, informer] :
       {std::pair{"nodes", node_informer_.get()}, std::pair{"pods", pod_informer_.get()}}) {
    if (informer == nullptr || !informer->synced()) continue;
    const auto unwatched = informer->time_without_watch();
    if (unwatched <= stale_after_) continue;
    if (!reason.empty()) reason += "; ";
    reason += std::string("the ") + collection + " watch has been down for " +
              std::to_string(unwatched.count() / 1000) + " s";
    if (const std::string error = informer->stats().last_error(); !error.empty()) {
      reason += " (last error: " + error + ")";
    }
  }
  return reason;
}

WatchCounters ClusterSource::Counters(const std::string& collection) const {
  const Informer* informer = collection == "pods"    ? pod_informer_.get()
                             : collection == "nodes" ? node_informer_.get()
                                                     : nullptr;
  if (informer == nullptr) return {};
  return WatchCounters{informer->stats().relists, informer->stats().watch_restarts,
                       informer->stats().errors, informer->time_without_watch()};
}

}  // namespace cgpu
