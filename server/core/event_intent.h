// EventIntent: a Kubernetes Event cgpu-guard wants recorded, as a value, and the pure rules that
// say when.
//
// Why Events at all: an AdmissionReview answer reaches only the request's client. For a binding
// that client is the scheduler, which logs warnings and records only denials on the pod, so warn
// mode, unchecked placements and fail-open outcomes would reach no person. An Event on the pod
// or node is what `kubectl describe pod|node` shows.
//
//   PodEventFor:        the Event a binding's or pod's decision calls for, if any: every denial
//                       and every allow that carries a warning (reasons below).
//   NodeVerdictTracker: the Event a node's evaluation calls for: when a cGPU node is first seen
//                       incompatible or unknown, and when its verdict (or the rules it fails)
//                       changes; never for the same verdict seen again (a resync, a relist).
//
// No I/O and no clock: adapters/event_recorder writes what these return.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "core/compatibility.h"
#include "core/decision.h"
#include "core/node_facts.h"
#include "core/review_facts.h"

namespace cgpu {

// Event reasons, one per story an operator follows.
inline constexpr char kReasonGpuFull[] = "CgpuGpuFull";
inline constexpr char kReasonNodeIncompatible[] = "CgpuNodeIncompatible";
inline constexpr char kReasonUnchecked[] = "CgpuUnchecked";
inline constexpr char kReasonWouldDeny[] = "CgpuWouldDeny";
inline constexpr char kReasonNodeUnknown[] = "CgpuNodeUnknown";
inline constexpr char kReasonNodeCompatible[] = "CgpuNodeCompatible";

// The object an Event is about (events.k8s.io/v1 `regarding`). kubectl describe finds Events by
// the object's kind, namespace, name and, when the Event has one, uid.
struct ObjectRef {
  std::string api_version = "v1";
  std::string kind;            // "Pod", "Node"
  std::string namespace_name;  // "" for a Node
  std::string name;
  std::string uid;  // "" when the request did not carry it: the recorder looks it up
};

struct EventIntent {
  ObjectRef regarding;
  bool warning = true;  // type Warning, else Normal
  std::string reason;   // one of the kReason constants
  std::string action;   // machine-readable: "Bind", "Create", "Update", "Evaluate"
  std::string note;     // for a person; the recorder cuts it to the API's 1 kB
  // A report of a state (a node's verdict) rather than an occurrence: when another writer (a
  // replica, or this process before a restart) already recorded the same Event with the same
  // note, it is not counted again.
  bool state_report = false;
};

// The Event for `decision` on a pod (pods CREATE/UPDATE) or a binding, or nullopt: plain allows,
// errors (the webhook's failurePolicy answers those), nodes and dry-run requests (no side
// effects) have none.
//   denied, GPU full            -> CgpuGpuFull
//   denied, node incompatible   -> CgpuNodeIncompatible
//   denied or warned, unchecked -> CgpuUnchecked (unknown facts, stale state, unrecorded claim)
//   would deny (warn, dry-run)  -> CgpuWouldDeny
std::optional<EventIntent> PodEventFor(const ReviewFacts& facts, const Decision& decision);

// Remembers each cGPU node's last verdict and failing rules. Not thread-safe: one caller (the
// node informer's thread) feeds it.
class NodeVerdictTracker {
 public:
  // The Event the node's evaluation calls for, if any. A node that is not cGPU-enabled is
  // forgotten (enabling cGPU later is a first sighting again).
  std::optional<EventIntent> Observe(const NodeFacts& node, const NodeEvaluation& evaluation);
  void Forget(const std::string& node_name);
  size_t size() const { return last_.size(); }

 private:
  struct Seen {
    NodeVerdict verdict;
    std::string failing;  // the rules that are not compatible, in order: "driver,kernel"
  };
  std::unordered_map<std::string, Seen> last_;
};

}  // namespace cgpu
