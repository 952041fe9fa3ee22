#include "adapters/cluster_watch.h"

#include "adapters/object_view_reader.h"
#include "adapters/pod_facts_reader.h"

namespace cgpu {
namespace {

using nlohmann::json;

// Names in paths are DNS labels and subdomains; anything else is refused rather than escaped.
bool SafePathSegment(const std::string& text) {
  if (text.empty() || text.size() > 253) return false;
  for (char c : text) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
  }
  return true;
}

// Reads on the request path keep at most this much: one object is at most 1.5 MiB (etcd's
// limit), and a node's pods are a few hundred KiB unless their objects are huge, in which case
// the recount fails and the cache's count decides.
constexpr size_t kMaxObjectBytes = size_t{4} << 20;
constexpr size_t kMaxNodePodsBytes = size_t{8} << 20;

json ParseBody(const std::string& body) {
  return json::parse(body, nullptr, /*allow_exceptions=*/false);
}

}  // namespace

void PodWatchHandler::OnObject(const SimdjsonView& pod) { cache_.UpsertPod(ReadPodObject(pod)); }

void PodWatchHandler::OnDelete(const SimdjsonView& pod) {
  const SimdjsonView metadata = pod.Member("metadata");
  std::string key(metadata.Member("namespace").String());
  key += '/';
  key += metadata.Member("name").String();
  cache_.DeletePod(key);
}

void NodeWatchHandler::OnObject(const SimdjsonView& node) {
  cache_.UpsertNode(ReadNodeObject(node));
}

void NodeWatchHandler::OnDelete(const SimdjsonView& node) {
  cache_.DeleteNode(std::string(node.Member("metadata").Member("name").String()));
}

StatusOr<ClusterReadCounts> ReadClusterOnce(const KubeApi& client, ClusterCache& cache,
                                            const ClusterReadOptions& options) {
  ClusterReadCounts counts;
  NodeWatchHandler node_handler(cache);
  PodWatchHandler pod_handler(cache);
  const std::pair<const char*, WatchHandler*> collections[] = {{"nodes", &node_handler},
                                                               {"pods", &pod_handler}};
  for (const auto& [collection, handler] : collections) {
    ListRequest request;
    request.collection_path = std::string("/api/v1/") + collection;
    request.page_size = options.page_size;
    request.deadline = options.deadline;
    const std::string what = std::string("list ") + collection;
    for (int attempt = 0;; ++attempt) {
      const ListResult result = ListCollection(client, request, *handler);
      counts.pages += result.pages;
      if (result.outcome == ListResult::Outcome::kListed) {
        (handler == &node_handler ? counts.nodes : counts.pods) = result.objects;
        break;
      }
      if (result.outcome == ListResult::Outcome::kGone && attempt < options.max_relists) {
        ++counts.relists;
        continue;  // the snapshot is gone: the whole collection again, from the start
      }
      // "list: HTTP 403: ..." -> "list nodes: HTTP 403: ..."
      const std::string error = what + result.error.substr(std::string_view("list").size());
      switch (result.http_status) {
        case 401:
          return Unavailable(error + " (the API server does not accept the credentials of " +
                             client.CredentialSource() + ")");
        case 403:
          return Unavailable(error +
                             " (reading the cluster needs permission to list nodes and "
                             "pods at cluster scope: a ClusterRole with verb list on "
                             "nodes and pods, bound by a ClusterRoleBinding)");
        case 410:
          return Unavailable(error + " (the list expired " + std::to_string(attempt + 1) +
                             " times in a row: the API server keeps a list's continue token "
                             "only for a few minutes; try a larger page size)");
        default:
          break;
      }
      if (result.code == StatusCode::kDeadlineExceeded) return DeadlineExceeded(error);
      return Unavailable(error);
    }
  }
  return counts;
}

ClusterReads LiveClusterReads(const KubeApi& client) {
  ClusterReads reads;
  reads.get_pod = [&client](const std::string& pod_namespace, const std::string& pod_name,
                            SteadyTime deadline) -> StatusOr<std::optional<PodFacts>> {
    if (!SafePathSegment(pod_namespace) || !SafePathSegment(pod_name)) {
      return InvalidArgument("not a pod name: " + pod_namespace + "/" + pod_name);
    }
    StatusOr<KubeResponse> response = client.Get(
        "/api/v1/namespaces/" + pod_namespace + "/pods/" + pod_name, deadline, kMaxObjectBytes);
    if (!response.ok()) return response.status();
    if (response->status == 404) return std::optional<PodFacts>();
    if (response->status != 200) {
      return Unavailable("GET pod " + pod_namespace + "/" + pod_name + ": " +
                         DescribeHttpError(response->status, response->body));
    }
    const json pod = ParseBody(response->body);
    if (!pod.is_object()) return Unavailable("GET pod: the answer is not a Pod");
    return std::optional<PodFacts>(ReadPodFacts(pod));
  };
  reads.list_pods_on_node = [&client](const std::string& node,
                                      SteadyTime deadline) -> StatusOr<std::vector<PodFacts>> {
    if (!SafePathSegment(node)) return InvalidArgument("not a node name: " + node);
    StatusOr<KubeResponse> now = client.Get("/api/v1/pods?limit=1", deadline, kMaxObjectBytes);
    if (!now.ok()) return now.status();
    if (now->status != 200) {
      return Unavailable("list one pod: " + DescribeHttpError(now->status, now->body));
    }
    const json head = ParseBody(now->body);
    const json* version = head.is_object() && head.contains("metadata") &&
                                  head["metadata"].is_object() &&
                                  head["metadata"].contains("resourceVersion")
                              ? &head["metadata"]["resourceVersion"]
                              : nullptr;
    if (version == nullptr || !version->is_string() || version->get<std::string>().empty()) {
      return Unavailable("list one pod: the answer carries no resourceVersion");
    }
    StatusOr<KubeResponse> response =
        client.Get("/api/v1/pods?fieldSelector=spec.nodeName%3D" + node +
                       "&resourceVersion=" + EscapeQueryValue(version->get<std::string>()) +
                       "&resourceVersionMatch=NotOlderThan",
                   deadline, kMaxNodePodsBytes);
    if (!response.ok()) return response.status();
    if (response->status != 200) {
      return Unavailable("list pods on node " + node + ": " +
                         DescribeHttpError(response->status, response->body));
    }
    const json list = ParseBody(response->body);
    if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) {
      return Unavailable("list pods on node " + node + ": the answer is not a PodList");
    }
    std::vector<PodFacts> pods;
    for (const json& item : list["items"]) pods.push_back(ReadPodFacts(item));
    return pods;
  };
  return reads;
}

}  // namespace cgpu
