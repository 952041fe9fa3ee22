#include "core/gpu_claims.h"

#include <algorithm>

namespace cgpu {

std::vector<GpuClaim> OpenClaims(const std::vector<GpuClaim>& claims, int64_t now_unix_ms) {
  std::vector<GpuClaim> open;
  for (const GpuClaim& claim : claims) {
    if (claim.expires_unix_ms > now_unix_ms) open.push_back(claim);
  }
  return open;
}

bool HasClaimForANewPod(const std::vector<GpuClaim>& before, const std::vector<GpuClaim>& after) {
  return std::any_of(after.begin(), after.end(), [&](const GpuClaim& claim) {
    return std::none_of(before.begin(), before.end(),
                        [&](const GpuClaim& earlier) { return earlier.uid == claim.uid; });
  });
}

std::vector<GpuClaim> WithClaim(std::vector<GpuClaim> open, GpuClaim claim) {
  std::erase_if(open, [&](const GpuClaim& other) { return other.uid == claim.uid; });
  open.push_back(std::move(claim));
  return open;
}

std::vector<PodFacts> WithClaimedPods(std::vector<PodFacts> others,
                                      const std::vector<GpuClaim>& claims, const std::string& node,
                                      const std::string& except_uid) {
  const size_t read = others.size();
  for (const GpuClaim& claim : claims) {
    if (claim.uid == except_uid) continue;
    const bool shown = std::any_of(
        others.begin(), others.begin() + static_cast<long>(read), [&](const PodFacts& pod) {
          return (!pod.uid.empty() && pod.uid == claim.uid) || pod.Key() == claim.pod;
        });
    if (shown) continue;
    PodFacts pod;
    const size_t slash = claim.pod.find('/');
    pod.namespace_name = claim.pod.substr(0, slash);
    pod.name = slash == std::string::npos ? "" : claim.pod.substr(slash + 1);
    pod.uid = claim.uid;
    pod.node_name = node;
    pod.phase = PodPhase::kPending;  // bound or about to be: it holds its slots either way
    pod.shares_gpu = true;
    pod.gpus.indices = claim.gpus;
    pod.gpus.source = "claim by replica " + claim.replica;
    others.push_back(std::move(pod));
  }
  return others;
}

}  // namespace cgpu
