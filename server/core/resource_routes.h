// Resource routes: which admission requests cgpu-guard reads and judges, in one table.
//
// Every place that routes on a request's resource asks here: the codec (which object view to read
// request.object into), the facts reader (which facts to build), the controller (which enforcement
// point decides) and the metrics (which label a request is counted under). Adding a resource is
// one row here, plus the chart's webhook rules (`cgpu-guard routes` prints the table, and the
// chart's tests check that its rules send exactly these resources and operations).
//
// Bindings arrive two ways, and both bind a pod exactly alike: the pods/binding subresource (what
// schedulers use) and the legacy `POST /api/v1/namespaces/{ns}/bindings` (resource `bindings`,
// still served by the API server: kubernetes pkg/registry/core/rest/storage_core.go maps
// "bindings" to the pod storage's LegacyBinding, whose Create hands over to the same BindingREST).
// A webhook rule for one does not match the other. Pure data and pure functions.
#pragma once

#include <array>
#include <string_view>

namespace cgpu {

// Which object view a request's objects are read into.
enum class ObjectKind { kNone, kPod, kBinding, kNode };

// Which decision a request goes to.
enum class EnforcementPoint {
  kNone,     // allowed at once
  kBinding,  // a pod onto a node: the main point (node and GPU known)
  kPod,      // pod CREATE with spec.nodeName (skips the scheduler), or UPDATE moving a bound pod
  kNode,     // a node newly enabling cGPU isolation (its status updates are always allowed)
};

struct ResourceRoute {
  std::string_view group;  // "" for the core group
  std::string_view resource;
  std::string_view sub_resource;
  ObjectKind object = ObjectKind::kNone;
  EnforcementPoint point = EnforcementPoint::kNone;
  // The `resource` label of the request metrics, and how RBAC and webhook rules name it.
  std::string_view path;
  // The operations the chart's webhook rules send for it ("CREATE,UPDATE"); empty: judged when
  // sent, but no rule sends it (nodes/status: the kubelet's heartbeats are never refused).
  std::string_view operations;
};

inline constexpr std::array<ResourceRoute, 5> kResourceRoutes = {{
    {"", "pods", "", ObjectKind::kPod, EnforcementPoint::kPod, "pods", "CREATE,UPDATE"},
    {"", "pods", "binding", ObjectKind::kBinding, EnforcementPoint::kBinding, "pods/binding",
     "CREATE,UPDATE"},
    {"", "bindings", "", ObjectKind::kBinding, EnforcementPoint::kBinding, "bindings", "CREATE"},
    {"", "nodes", "", ObjectKind::kNode, EnforcementPoint::kNode, "nodes", "CREATE,UPDATE"},
    {"", "nodes", "status", ObjectKind::kNode, EnforcementPoint::kNode, "nodes/status", ""},
}};

// The route of a request's resource, or nullptr: every other request is allowed unread.
constexpr const ResourceRoute* FindRoute(std::string_view group, std::string_view resource,
                                         std::string_view sub_resource) {
  for (const ResourceRoute& route : kResourceRoutes) {
    if (route.group == group && route.resource == resource && route.sub_resource == sub_resource) {
      return &route;
    }
  }
  return nullptr;
}

constexpr ObjectKind ObjectKindFor(std::string_view group, std::string_view resource,
                                   std::string_view sub_resource) {
  const ResourceRoute* route = FindRoute(group, resource, sub_resource);
  return route == nullptr ? ObjectKind::kNone : route->object;
}

}  // namespace cgpu
