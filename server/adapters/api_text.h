// Small pieces of the Kubernetes API's text conventions, shared by the adapters that write
// objects (claim Leases, Events).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cgpu {

// The longest metadata.name of a Lease or an Event: a DNS subdomain (apimachinery
// validation.DNS1123SubdomainMaxLength).
inline constexpr size_t kMaxObjectName = 253;

// FNV-1a, 64 bits, as 16 hex digits: a stable, short suffix for an object name derived from a
// longer text. Not a security measure.
std::string StableHashHex(const std::string& text);

// metav1.MicroTime: RFC 3339 with microseconds, in UTC ("2026-11-30T19:26:03.123000Z").
std::string MicroTime(int64_t unix_ms);

// `text` cut to at most `max_bytes` bytes without splitting a UTF-8 sequence.
std::string CutUtf8(const std::string& text, size_t max_bytes);

// The metav1.Status reason the API server gives an HTTP status (apimachinery pkg/apis/meta/v1
// types.go, StatusReason*): "Forbidden" for 403, "Expired" for 410, "InternalError" for a 5xx it
// has no other name for; "" (StatusReasonUnknown) for the rest.
std::string_view StatusReasonFor(int http_status);

}  // namespace cgpu
