#include "adapters/claim_lease.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "adapters/api_text.h"

namespace cgpu {
namespace {

using nlohmann::json;

constexpr char kLeasePrefix[] = "cgpu-guard-claims-";
// A Lease holds the claims of one node: at most 20 per GPU while open, a few KiB.
constexpr size_t kMaxLeaseBytes = 1 << 20;

std::string StringAt(const json& object, const char* key) {
  const auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

std::vector<GpuClaim> DecodeClaims(const std::string& text) {
  std::vector<GpuClaim> claims;
  const json array = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!array.is_array()) return claims;
  for (const json& item : array) {
    if (!item.is_object()) continue;
    GpuClaim claim;
    claim.uid = StringAt(item, "uid");
    claim.pod = StringAt(item, "pod");
    claim.replica = StringAt(item, "replica");
    const auto expires = item.find("expiresUnixMs");
    const auto gpus = item.find("gpus");
    if (claim.uid.empty() || expires == item.end() || !expires->is_number_integer() ||
        gpus == item.end() || !gpus->is_array()) {
      continue;
    }
    claim.expires_unix_ms = expires->get<int64_t>();
    for (const json& gpu : *gpus) {
      if (gpu.is_number_integer() && gpu.get<int64_t>() >= 0 && gpu.get<int64_t>() < 1024) {
        claim.gpus.push_back(gpu.get<int>());
      }
    }
    std::sort(claim.gpus.begin(), claim.gpus.end());
    claim.gpus.erase(std::unique(claim.gpus.begin(), claim.gpus.end()), claim.gpus.end());
    if (!claim.gpus.empty()) claims.push_back(std::move(claim));
  }
  return claims;
}

std::string LeasePath(const std::string& namespace_name, const std::string& name = "") {
  std::string path = "/apis/coordination.k8s.io/v1/namespaces/" + namespace_name + "/leases";
  if (!name.empty()) path += "/" + name;
  return path;
}

}  // namespace

std::string ClaimLeaseName(const std::string& node) {
  std::string name = kLeasePrefix + node;
  if (name.size() <= kMaxObjectName) return name;
  const std::string hash = StableHashHex(node);
  name.resize(kMaxObjectName - hash.size() - 1);
  while (!name.empty() && (name.back() == '.' || name.back() == '-')) name.pop_back();
  return name + "-" + hash;
}

NodeClaims DecodeClaimLease(const std::string& body) {
  NodeClaims claims;
  const json lease = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!lease.is_object() || !lease.contains("metadata") || !lease["metadata"].is_object()) {
    return claims;
  }
  const json& metadata = lease["metadata"];
  claims.exists = true;
  claims.version = StringAt(metadata, "resourceVersion");
  if (metadata.contains("annotations") && metadata["annotations"].is_object()) {
    claims.claims = DecodeClaims(StringAt(metadata["annotations"], kClaimsAnnotation));
  }
  return claims;
}

std::string EncodeClaimLease(const ClaimLeaseWrite& write, const NodeClaims& claims) {
  json array = json::array();
  for (const GpuClaim& claim : claims.claims) {
    array.push_back({{"uid", claim.uid},
                     {"pod", claim.pod},
                     {"gpus", claim.gpus},
                     {"expiresUnixMs", claim.expires_unix_ms},
                     {"replica", claim.replica}});
  }
  json metadata = {
      {"name", ClaimLeaseName(write.node)},
      {"namespace", write.namespace_name},
      {"labels", {{"app.kubernetes.io/managed-by", "cgpu-guard"}}},
      {"annotations", {{kClaimNodeAnnotation, write.node}, {kClaimsAnnotation, array.dump()}}}};
  if (claims.exists) metadata["resourceVersion"] = claims.version;
  const json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                      {"kind", "Lease"},
                      {"metadata", metadata},
                      {"spec",
                       {{"holderIdentity", write.replica},
                        {"leaseDurationSeconds", std::max<int64_t>(1, write.ttl.count() / 1000)},
                        {"renewTime", MicroTime(write.now_unix_ms)}}}};
  return lease.dump();
}

ClaimStore LeaseClaimStore(const KubeApi& client, std::string namespace_name, std::string replica,
                           std::chrono::milliseconds ttl, std::function<int64_t()> now_unix_ms) {
  ClaimStore store;
  store.replica = replica;
  store.ttl = ttl;
  store.now_unix_ms = now_unix_ms;
  store.read = [&client, namespace_name](const std::string& node,
                                         SteadyTime deadline) -> StatusOr<NodeClaims> {
    const std::string name = ClaimLeaseName(node);
    StatusOr<KubeResponse> response =
        client.Get(LeasePath(namespace_name, name), deadline, kMaxLeaseBytes);
    if (!response.ok()) return response.status();
    if (response->status == 404) return NodeClaims{};
    if (response->status != 200) {
      return Unavailable("GET lease " + namespace_name + "/" + name + ": " +
                         DescribeHttpError(response->status, response->body));
    }
    return DecodeClaimLease(response->body);
  };
  store.write = [&client, namespace_name, replica, ttl, now_unix_ms](
                    const std::string& node, const NodeClaims& claims,
                    SteadyTime deadline) -> Status {
    const std::string name = ClaimLeaseName(node);
    const std::string body = EncodeClaimLease(
        ClaimLeaseWrite{namespace_name, node, replica, ttl, now_unix_ms()}, claims);
    StatusOr<KubeResponse> response =
        claims.exists ? client.Write("PUT", LeasePath(namespace_name, name), body, deadline)
                      : client.Write("POST", LeasePath(namespace_name), body, deadline);
    if (!response.ok()) return response.status();
    if (response->status == 200 || response->status == 201) return OkStatus();
    const std::string what = std::string(claims.exists ? "update" : "create") + " lease " +
                             namespace_name + "/" + name + ": " +
                             DescribeHttpError(response->status, response->body);
    // Conflict (stale resourceVersion) or AlreadyExists (created meanwhile): another replica
    // wrote first. A 404 on update: the Lease was deleted meanwhile; reading again finds that.
    if (response->status == 409 || (claims.exists && response->status == 404)) {
      return Aborted(what);
    }
    return Unavailable(what);
  };
  return store;
}

}  // namespace cgpu
