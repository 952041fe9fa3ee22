// What the API server checks of an events.k8s.io/v1 Event on create and update, for the tests'
// API server (fake_api_server.h). From k8s.io/kubernetes pkg/apis/core/validation/events.go:
// ValidateEventCreate (strict for events.k8s.io/v1: eventTime, reportingController,
// reportingInstance (<= 128), action (<= 128), reason (<= 128) required; reportingController a
// qualified name; type Normal or Warning; note <= 1 kB; a series counts at least 2 and has a
// lastObservedTime; an Event about a cluster-scoped object lives in "default" or "kube-system")
// and ValidateEventUpdate (only the series and metadata may change).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace cgpu::testing {

// "" when the API server would take `event` (its metadata.namespace already set); else why not.
std::string EventCreateProblem(const nlohmann::json& event);
// "" when `updated` may replace `stored`; else why not.
std::string EventUpdateProblem(const nlohmann::json& updated, const nlohmann::json& stored);

}  // namespace cgpu::testing
