// The node-facts agent's two exchanges with the API server, as JSON: reading a Node's labels,
// and the JSON merge patch (RFC 7386) that changes only the label keys the agent owns.
//
// A merge patch of metadata.labels sets the keys it names and removes those set to null; every
// other label, and everything else on the Node, is left as it is. Nothing else is sent, so the
// agent cannot overwrite what others wrote, whatever it reads.
#pragma once

#include <map>
#include <string>

#include "core/host_facts.h"
#include "core/status.h"

namespace cgpu {

// metadata.labels of a Node as the API server returns it (GET /api/v1/nodes/<name>).
StatusOr<std::map<std::string, std::string>> ReadNodeLabels(const std::string& node_json);

// {"metadata":{"labels":{"k":"v","gone":null}}}
std::string EncodeLabelMergePatch(const LabelChange& change);

// Whether an answer means "this identity may not do that" (401, or a 403 from RBAC), which no
// retry fixes. A 403 whose message says an admission webhook denied the request is not one: a
// policy may change its mind, and the agent retries.
bool IsPermissionRefusal(int status, const std::string& body);

}  // namespace cgpu
