// Commands the chart runs around the server's life, from the same image:
//
//   cgpu-guard unregister --webhook-config NAME
//     Deletes the ValidatingWebhookConfiguration NAME (the chart's pre-delete hook), so that the
//     API server stops calling the webhook before its pods go: a registration left behind with
//     failurePolicy Fail would refuse every pod binding. Already gone counts as done. Retries
//     transport errors, 429 and 5xx until --timeout; a refusal (401/403) is final.
//     Exit codes: 0 removed or absent, 1 failed, 2 usage, 3 permission refused.
//
//   cgpu-guard selftest [--webhook-url URL --ca-file FILE] [--ready-url URL]
//     What `helm test` runs: posts a harmless AdmissionReview (a dry-run CREATE of a pod that
//     asks for no GPU) to the webhook over TLS, trusting only FILE, and checks that the answer is
//     a well-formed allow for that review; then that --ready-url answers 200. (Where the webhook
//     requires client certificates, only --ready-url.) Retries until
//     --timeout, since the test may start while a replica is still listing the cluster.
//     Exit codes: 0 passed, 1 failed (the message says what was wrong), 2 usage.
#pragma once

#include <string>
#include <vector>

namespace cgpu {

int RunUnregisterCommand(const std::vector<std::string>& args);
int RunSelftestCommand(const std::vector<std::string>& args);

// The review selftest posts, with `uid` as its request uid: a dry-run CREATE of pod
// <namespace>/cgpu-guard-selftest that asks for no GPU. The policy allows it whatever the
// cluster holds, and a dry run changes no count.
std::string SelftestReview(const std::string& uid, const std::string& namespace_name);

}  // namespace cgpu
