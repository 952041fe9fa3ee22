// GPU claims: the placements the replicas of cgpu-guard have allowed on one node, recorded in the
// API server before each is allowed, so that every replica counts every other's.
//
// Why: each replica counts pods from its own watch plus the placements it allowed itself. Two
// replicas judging bindings onto the same GPU at once each miss the other's, and under a burst
// (ACK's GPU-sharing plugin binpacks and binds concurrently) that is many pods, not one. So a
// placement is allowed only once its claim is written into the node's claim record with a
// compare-and-swap on that record's resourceVersion (adapters/claim_lease): two replicas that
// read the same version cannot both write, and the loser reads again and counts the winner's
// claim. Every allowed placement on a node is therefore counted by every later decision on that
// node: from the claims while they are open, from the watch afterwards. A claim stays open for a
// TTL that outlasts how far any replica's watch may trail (a replica whose watch is down longer
// than --stale-after stops placing altogether), and counts once per pod (by uid), never on top of
// the same pod seen in the watch.
//
// Plain data and pure functions: no clock (times are passed in), no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/pod_facts.h"

namespace cgpu {

struct GpuClaim {
  std::string uid;        // the pod's uid: at most one claim per pod
  std::string pod;        // "namespace/name"
  std::vector<int> gpus;  // the GPU indices it takes a slot on
  int64_t expires_unix_ms = 0;
  std::string replica;  // which replica claimed it, for people reading the record

  bool operator==(const GpuClaim&) const = default;
};

// The claims of one node as read, with the version to write against.
struct NodeClaims {
  std::vector<GpuClaim> claims;
  std::string version;  // the record's resourceVersion; "" when it does not exist yet
  bool exists = false;
};

// The claims still open at `now_unix_ms`.
std::vector<GpuClaim> OpenClaims(const std::vector<GpuClaim>& claims, int64_t now_unix_ms);

// `open` with `claim` added, replacing an earlier claim of the same pod (a retried binding).
std::vector<GpuClaim> WithClaim(std::vector<GpuClaim> open, GpuClaim claim);

// Whether `after` holds a claim for a pod `before` had none for: another placement got in. (A
// claim renewed by a retried binding, or expired claims dropped, is no new placement.)
bool HasClaimForANewPod(const std::vector<GpuClaim>& before, const std::vector<GpuClaim>& after);

// Claims as pods bound to `node` on their GPUs, for counting beside the cache: the claim of
// `except_uid` (the pod being placed) is left out, and so is a claim whose pod `others` already
// holds (a pod counts once, whether a read or a claim shows it). Returns `others` with the claims'
// pods appended.
std::vector<PodFacts> WithClaimedPods(std::vector<PodFacts> others,
                                      const std::vector<GpuClaim>& claims, const std::string& node,
                                      const std::string& except_uid);

}  // namespace cgpu
