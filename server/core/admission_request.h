// AdmissionRequest: what the API server asks, as plain data.
//
// The codec (adapters/admission_codec) fills this from an AdmissionReview of either apiVersion;
// the policy reads it. Nothing here knows about JSON or HTTP. Fields the API server may leave
// empty (name on CREATE with generateName, namespace for cluster-scoped objects) stay empty.
#pragma once

#include <string>
#include <string_view>

namespace cgpu {

enum class Operation { kCreate, kUpdate, kDelete, kConnect };

std::string_view ToString(Operation operation);

struct GroupVersionKind {
  std::string group;  // "" for the core group
  std::string version;
  std::string kind;
};

struct GroupVersionResource {
  std::string group;
  std::string version;
  std::string resource;
};

struct AdmissionRequest {
  std::string uid;
  GroupVersionKind kind;
  GroupVersionResource resource;
  std::string sub_resource;  // "binding" for pods/binding, "status" for status updates
  std::string name;
  std::string namespace_name;
  Operation operation = Operation::kCreate;
  std::string user_name;
  bool dry_run = false;  // true: the request must have no side effects

  // "pods", "pods/binding", "nodes/status": the resource as RBAC and webhook rules name it.
  std::string ResourcePath() const;
};

}  // namespace cgpu
