// The replicas' GPU claims of one node (core/gpu_claims.h), kept in a coordination.k8s.io/v1
// Lease in cgpu-guard's namespace: one Lease per node, written only with a resourceVersion
// precondition.
//
// Why a Lease: it is the API server's own small record for coordination (client-go's leader
// election keeps its lock in one the same way), every cluster has the API, and RBAC can grant it
// in one namespace only. The API server's optimistic concurrency is the whole arbiter: an update
// carrying metadata.resourceVersion that is no longer the stored one is refused with 409 Conflict
// (reason "Conflict"), and a create of a name that exists with 409 AlreadyExists (k8s.io/apiserver
// registry/generic/registry/store.go Update and Create; apimachinery meta/v1 types.go). Both mean
// "another replica wrote first": read again.
//
// The claims live in the annotation cgpu-guard.io/claims as a JSON array of
// {"uid","pod","gpus","expiresUnixMs","replica"}; the node's name in cgpu-guard.io/node. The
// spec says who wrote last and when (holderIdentity, renewTime), for people looking at it with
// kubectl; nothing reads it back. An annotation that cannot be read counts as no claims and is
// written over by the next claim: the record is cgpu-guard's alone.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "adapters/admission_controller.h"
#include "adapters/kube_client.h"
#include "core/gpu_claims.h"

namespace cgpu {

inline constexpr char kClaimsAnnotation[] = "cgpu-guard.io/claims";
inline constexpr char kClaimNodeAnnotation[] = "cgpu-guard.io/node";

// "cgpu-guard-claims-<node>", or, when that would pass the 253 characters of an object name, the
// node's name cut short with a hash of the whole name after it.
std::string ClaimLeaseName(const std::string& node);

// The Lease's JSON as the API server returns it -> its claims and resourceVersion.
NodeClaims DecodeClaimLease(const std::string& body);

struct ClaimLeaseWrite {
  std::string namespace_name;
  std::string node;
  std::string replica;
  std::chrono::milliseconds ttl{30'000};  // leaseDurationSeconds, for people reading it
  int64_t now_unix_ms = 0;                // renewTime
};
// The Lease to create or update with `claims` (its metadata.resourceVersion = claims.version).
std::string EncodeClaimLease(const ClaimLeaseWrite& write, const NodeClaims& claims);

// read/write of ClaimStore over the API server, in `namespace_name`. `client` must outlive it.
// The caller sets the rest of ClaimStore (replica, TTLs, clocks, observe).
ClaimStore LeaseClaimStore(const KubeApi& client, std::string namespace_name, std::string replica,
                           std::chrono::milliseconds ttl, std::function<int64_t()> now_unix_ms);

}  // namespace cgpu
