// AckSchedulerDriver: binds pods the way ACK's GPU-sharing schedulers do, against a FakeApiServer
// (the cluster) and a webhook reached over HTTPS, so tests meet the race of the real flow.
//
// Both schedulers write the GPU they chose on the still-pending pod, then bind it:
//  - gpushare-scheduler-extender (AliyunContainerService/gpushare-scheduler-extender,
//    pkg/cache/nodeinfo.go NodeInfo.Allocate): an UPDATE of the pod adding the annotations
//    ALIYUN_COM_GPU_MEM_IDX (the GPU), _DEV (memory per GPU of the node), _POD (the pod's
//    aliyun.com/gpu-mem), _ASSIGNED=false and _ASSUME_TIME (Unix nanoseconds; pkg/utils/pod.go
//    GetUpdatedPodAnnotationSpec), then Pods(ns).Bind of a Binding that carries only
//    metadata.name, metadata.uid and target {kind: Node, name}: no namespace. It binds with its
//    own service account, kube-system/gpushare-schd-extender (config/gpushare-schd-extender.yaml).
//  - the scheduler-framework plugin (ACK's gpushare plugin, Reserve ->
//    DeviceSharingRuntime.ReserveResources -> UpdatePodAnnotations, an UPDATE): annotations
//    scheduler.framework.gpushare.allocation = {"<container index>":{"<gpu>":<GiB>}},
//    scheduler.framework.gpushare.assigned=false, scheduler.framework.gpushare.assume-time and
//    gpushare.alibabacloud.com/device-resource ({"<gpu>":<GiB of that GPU>}); then kube-scheduler's
//    DefaultBinder (kubernetes pkg/scheduler/framework/plugins/defaultbinder) binds with
//    metadata.namespace, name, uid and target {kind: Node, name}, as system:kube-scheduler.
// Both call client-go's Pods(ns).Bind, which POSTs pods/<name>/binding. The legacy
// POST /api/v1/namespaces/<ns>/bindings is offered for other clients.
//
// The AdmissionReview is the one the API server builds (k8s.io/apiserver pkg/endpoints/handlers
// create.go createHandler; kubernetes pkg/registry/core/pod/storage BindingREST and
// LegacyBindingREST):
//  - request.name: the pod from the path for pods/binding; for the legacy endpoint, whose path has
//    no name, the Binding's metadata.name ("On create, get name from new object if unset").
//  - request.namespace: from the path. Since 1.24 (kubernetes#94637) the API server sets an unset
//    metadata.namespace of the object from it before admission, so the extender's Binding
//    reaches webhooks with its namespace filled.
//  - metadata.uid: WipeObjectMetaSystemFields clears it (and creationTimestamp, which then encodes
//    as null) before admission unless the storage keeps it for a subresource create: BindingREST
//    does (PreserveRequestObjectMetaSystemFieldsOnSubresourceCreate, kubernetes#116550, which
//    fixed the 1.25 regression of #110646); the legacy bindings resource has no subresource, so
//    a webhook sees no uid there.
//  - kind and requestKind {"", v1, Binding}; resource {"", v1, pods} with subResource binding, or
//    {"", v1, bindings} and none; operation CREATE; options a CreateOptions; oldObject null.
// Not modelled: metadata.managedFields, which the API server's field manager may add to the
// Binding before admission.
//
// Thread-safe: each call uses its own connection.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "support/fake_api_server.h"

namespace cgpu::testing {

enum class AckScheduler { kExtender, kFramework };  // which GPU-sharing scheduler binds
enum class BindingEndpoint { kPodsBinding, kLegacyBindings };

struct BindOutcome {
  int http_status = 0;      // of the webhook's answer; 0 when it could not be reached
  nlohmann::json response;  // AdmissionReview.response (null when not 200)
  std::string error;        // why there is no answer (transport failure, no such pod)
  std::string body;         // the webhook's answer as sent
  bool bound = false;       // Bind: the pod was bound in the store
};

struct AckSchedulerDriverOptions {
  // The webhook configuration's timeoutSeconds: the API server appends ?timeout=<n>s to the path.
  int timeout_seconds = 10;
  // API server 1.24 and later fill an unset metadata.namespace of the Binding before admission.
  bool namespace_before_admission = true;
  // pods/binding keeps the Binding's metadata.uid for admission (all releases but the 1.25 and
  // 1.26 ones without the #116550 fix). The legacy endpoint never does.
  bool binding_uid_kept = true;
};

// What the API server does once admission allowed a Binding (kubernetes pkg/registry/core/pod/
// storage BindingREST.Create -> assignPod -> setPodHostAndAnnotations): the pod gets
// spec.nodeName and PodScheduled=True, an UPDATE every watch sees. Refused (false, nothing
// written) when the pod is gone, is another pod than `uid` ("": not checked) or is bound already.
bool BindInStore(FakeApiStore& api, const std::string& pod_namespace, const std::string& pod,
                 const std::string& uid, const std::string& node);

// Drives bindings the way ACK's schedulers do, against a FakeApiServer (the cluster) and a
// webhook (cgpu-guard serve) reached over HTTPS with the CA in `webhook_ca_file`.
class AckSchedulerDriver {
 public:
  AckSchedulerDriver(FakeApiServer& api, int webhook_port, std::string webhook_ca_file,
                     AckSchedulerDriverOptions options = {});

  // Writes the allocation of `gpu` on the pending pod in the store (an UPDATE, as the scheduler
  // does; it becomes a watch event subject to the fake's lag), then sends the webhook the
  // AdmissionReview the API server would send for the Binding. If the webhook allows it, binds
  // the pod in the store (spec.nodeName set, as the API server does after admission). A denied
  // binding leaves the allocation annotation on the pod, as the real schedulers do.
  BindOutcome Bind(const std::string& pod_namespace, const std::string& pod,
                   const std::string& node, int gpu, AckScheduler scheduler,
                   BindingEndpoint endpoint);

  // Only the review, no write to the store first (for tests that arrange the store themselves).
  BindOutcome SendBinding(const std::string& pod_namespace, const std::string& pod,
                          const std::string& pod_uid, const std::string& node,
                          AckScheduler scheduler, BindingEndpoint endpoint);

  // The AdmissionReview SendBinding sends, as sent (with a fresh request.uid per call).
  std::string MakeBindingReview(const std::string& pod_namespace, const std::string& pod,
                                const std::string& pod_uid, const std::string& node,
                                AckScheduler scheduler, BindingEndpoint endpoint) const;

  // The annotations `scheduler` writes on `pod` for `gpu` of `node` (`node` may be null: one GPU
  // then, holding the pod's memory).
  static nlohmann::json AllocationAnnotations(const nlohmann::json& pod, const nlohmann::json& node,
                                              int gpu, AckScheduler scheduler);

 private:
  FakeApiServer& api_;
  const int webhook_port_;
  const std::string webhook_ca_file_;
  const AckSchedulerDriverOptions options_;
};

}  // namespace cgpu::testing
