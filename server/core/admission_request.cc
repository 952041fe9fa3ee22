#include "core/admission_request.h"

namespace cgpu {

std::string_view ToString(Operation operation) {
  switch (operation) {
    case Operation::kCreate:
      return "CREATE";
    case Operation::kUpdate:
      return "UPDATE";
    case Operation::kDelete:
      return "DELETE";
    case Operation::kConnect:
      return "CONNECT";
  }
  return "UNKNOWN";
}

std::string AdmissionRequest::ResourcePath() const {
  if (sub_resource.empty()) return resource.resource;
  return resource.resource + "/" + sub_resource;
}

}  // namespace cgpu
