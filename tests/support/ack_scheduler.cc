#include "support/ack_scheduler.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>

namespace cgpu::testing {
namespace {

using nlohmann::json;
// The API server encodes Go structs: keys in field order. Kept so that the bytes a webhook gets
// here read like the real ones (order means nothing to a JSON reader).
using ordered_json = nlohmann::ordered_json;

constexpr char kGpuMem[] = "aliyun.com/gpu-mem";
constexpr char kGpuCount[] = "aliyun.com/gpu-count";

// A string member, or "" when absent or not a string.
std::string Text(const json& object, const json::json_pointer& pointer) {
  if (!object.contains(pointer)) return "";
  const json& value = object.at(pointer);
  return value.is_string() ? value.get<std::string>() : "";
}

// An integer quantity ("2", or a number); 0 when absent or not an integer.
int Quantity(const json& value) {
  if (value.is_number_integer()) return value.get<int>();
  if (!value.is_string()) return 0;
  int amount = 0;
  return std::sscanf(value.get<std::string>().c_str(), "%d", &amount) == 1 ? amount : 0;
}

// aliyun.com/gpu-mem of each container that asks for some (limits, as both schedulers read it:
// extender pkg/utils/pod.go GetGPUMemoryFromPodResource, the plugin's PreFilter).
std::vector<std::pair<int, int>> ContainerGpuMem(const json& pod) {
  std::vector<std::pair<int, int>> requests;
  const json::json_pointer containers("/spec/containers");
  if (!pod.contains(containers) || !pod.at(containers).is_array()) return requests;
  const json& list = pod.at(containers);
  for (size_t i = 0; i < list.size(); ++i) {
    const json::json_pointer limit("/resources/limits");
    if (!list[i].is_object() || !list[i].contains(limit) || !list[i].at(limit).is_object()) {
      continue;
    }
    const json& limits = list[i].at(limit);
    const int amount = limits.contains(kGpuMem) ? Quantity(limits[kGpuMem]) : 0;
    if (amount > 0) requests.emplace_back(static_cast<int>(i), amount);
  }
  return requests;
}

std::string UnixNanos() {
  return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
}

// A fresh request.uid per review, shaped like the API server's UUIDs but deterministic.
std::string NextRequestUid() {
  static std::atomic<uint64_t> next{1};
  char uid[40];
  std::snprintf(uid, sizeof(uid), "00000000-0000-4000-8000-%012llx",
                static_cast<unsigned long long>(next.fetch_add(1)));
  return uid;
}

ordered_json GroupVersion(const char* name, const std::string& value) {
  return ordered_json{{"group", ""}, {"version", "v1"}, {name, value}};
}

}  // namespace

AckSchedulerDriver::AckSchedulerDriver(FakeApiServer& api, int webhook_port,
                                       std::string webhook_ca_file,
                                       AckSchedulerDriverOptions options)
    : api_(api),
      webhook_port_(webhook_port),
      webhook_ca_file_(std::move(webhook_ca_file)),
      options_(options) {}

json AckSchedulerDriver::AllocationAnnotations(const json& pod, const json& node, int gpu,
                                               AckScheduler scheduler) {
  const std::vector<std::pair<int, int>> requests = ContainerGpuMem(pod);
  int pod_gib = 0;
  for (const auto& [container, gib] : requests) pod_gib += gib;
  // The node's GPUs share its aliyun.com/gpu-mem evenly (extender NewNodeInfo: total / count).
  int count = 0;
  int total = 0;
  if (node.is_object()) {
    const json::json_pointer capacity("/status/capacity");
    if (node.contains(capacity) && node.at(capacity).is_object()) {
      const json& resources = node.at(capacity);
      if (resources.contains(kGpuCount)) count = Quantity(resources[kGpuCount]);
      if (resources.contains(kGpuMem)) total = Quantity(resources[kGpuMem]);
    }
  }
  if (count <= 0) count = 1;
  if (total <= 0) total = pod_gib * count;
  const int per_gpu = total / count;

  json annotations = json::object();
  if (scheduler == AckScheduler::kExtender) {
    // GetUpdatedPodAnnotationSpec (pkg/utils/pod.go) with the names of pkg/utils/const.go.
    annotations["ALIYUN_COM_GPU_MEM_IDX"] = std::to_string(gpu);
    annotations["ALIYUN_COM_GPU_MEM_DEV"] = std::to_string(per_gpu);
    annotations["ALIYUN_COM_GPU_MEM_POD"] = std::to_string(pod_gib);
    annotations["ALIYUN_COM_GPU_MEM_ASSIGNED"] = "false";
    annotations["ALIYUN_COM_GPU_MEM_ASSUME_TIME"] = UnixNanos();
  } else {
    // buildPodAnnotations of the plugin: the allocation as {"<container>":{"<gpu>":<GiB>}}
    // (PodResource.AllocatedResourcesToString), every GPU's size as {"<gpu>":<GiB>}
    // (DeviceCountToString), not yet assigned, and when.
    json allocation = json::object();
    for (const auto& [container, gib] : requests) {
      allocation[std::to_string(container)][std::to_string(gpu)] = gib;
    }
    json devices = json::object();
    for (int i = 0; i < count; ++i) devices[std::to_string(i)] = per_gpu;
    annotations["scheduler.framework.gpushare.allocation"] = allocation.dump();
    annotations["scheduler.framework.gpushare.assigned"] = "false";
    annotations["scheduler.framework.gpushare.assume-time"] = UnixNanos();
    annotations["gpushare.alibabacloud.com/device-resource"] = devices.dump();
  }
  return annotations;
}

BindOutcome AckSchedulerDriver::Bind(const std::string& pod_namespace, const std::string& pod,
                                     const std::string& node, int gpu, AckScheduler scheduler,
                                     BindingEndpoint endpoint) {
  std::optional<json> stored = api_.Find("pods", pod, pod_namespace);
  if (!stored) return BindOutcome{.error = "no pod " + pod_namespace + "/" + pod + " in the store"};
  json updated = *stored;
  const json annotations =
      AllocationAnnotations(updated, api_.Find("nodes", node).value_or(json()), gpu, scheduler);
  if (!updated["metadata"]["annotations"].is_object()) {
    updated["metadata"]["annotations"] = json::object();
  }
  updated["metadata"]["annotations"].update(annotations);
  api_.Update("pods", updated);

  const std::string uid = Text(updated, json::json_pointer("/metadata/uid"));
  BindOutcome outcome = SendBinding(pod_namespace, pod, uid, node, scheduler, endpoint);
  if (outcome.http_status != 200 || !outcome.response.is_object() ||
      outcome.response.value("allowed", false) != true) {
    return outcome;  // the allocation stays on the pod: neither scheduler takes it back
  }
  const bool uid_checked = endpoint == BindingEndpoint::kPodsBinding && options_.binding_uid_kept;
  outcome.bound = BindInStore(api_, pod_namespace, pod, uid_checked ? uid : "", node);
  return outcome;
}

bool BindInStore(FakeApiStore& api, const std::string& pod_namespace, const std::string& pod,
                 const std::string& uid, const std::string& node) {
  // BindingREST.setPodHostAndAnnotations: the pod must still be there, be the same pod (the uid
  // precondition, when the Binding kept its uid) and be unbound; then it gets spec.nodeName and
  // the condition PodScheduled=True.
  std::optional<json> current = api.Find("pods", pod, pod_namespace);
  if (!current) return false;
  if (!uid.empty() && Text(*current, json::json_pointer("/metadata/uid")) != uid) return false;
  if (!Text(*current, json::json_pointer("/spec/nodeName")).empty()) return false;
  (*current)["spec"]["nodeName"] = node;
  json& conditions = (*current)["status"]["conditions"];
  if (!conditions.is_array()) conditions = json::array();
  bool replaced = false;
  for (json& condition : conditions) {
    if (condition.is_object() && condition.value("type", "") == "PodScheduled") {
      condition["status"] = "True";
      replaced = true;
    }
  }
  if (!replaced) conditions.push_back({{"type", "PodScheduled"}, {"status", "True"}});
  api.Update("pods", *current);
  return true;
}

std::string AckSchedulerDriver::MakeBindingReview(const std::string& pod_namespace,
                                                  const std::string& pod,
                                                  const std::string& pod_uid,
                                                  const std::string& node, AckScheduler scheduler,
                                                  BindingEndpoint endpoint) const {
  const bool legacy = endpoint == BindingEndpoint::kLegacyBindings;
  // The Binding as the scheduler sends it: the extender leaves the namespace out, DefaultBinder
  // sets it. Then what the API server makes of it before admission (see the header).
  const bool namespace_sent = scheduler == AckScheduler::kFramework;
  const bool namespace_set = namespace_sent || options_.namespace_before_admission;
  const bool uid_kept = !legacy && options_.binding_uid_kept;
  ordered_json metadata = {{"name", pod}};
  if (namespace_set) metadata["namespace"] = pod_namespace;
  if (uid_kept && !pod_uid.empty()) metadata["uid"] = pod_uid;
  metadata["creationTimestamp"] = nullptr;  // a zero metav1.Time encodes as null
  const ordered_json binding = {{"kind", "Binding"},
                                {"apiVersion", "v1"},
                                {"metadata", metadata},
                                {"target", {{"kind", "Node"}, {"name", node}}}};

  const ordered_json user =
      scheduler == AckScheduler::kFramework
          ? ordered_json{{"username", "system:kube-scheduler"},
                         {"groups", {"system:authenticated"}}}
          : ordered_json{{"username", "system:serviceaccount:kube-system:gpushare-schd-extender"},
                         {"groups",
                          {"system:serviceaccounts", "system:serviceaccounts:kube-system",
                           "system:authenticated"}}};
  const ordered_json kind = GroupVersion("kind", "Binding");
  const ordered_json resource = GroupVersion("resource", legacy ? "bindings" : "pods");
  ordered_json request = {{"uid", NextRequestUid()}, {"kind", kind}, {"resource", resource}};
  if (!legacy) request["subResource"] = "binding";
  request["requestKind"] = kind;
  request["requestResource"] = resource;
  if (!legacy) request["requestSubResource"] = "binding";
  // The name from the path (pods/<name>/binding), or from the object when the path has none.
  request["name"] = pod;
  request["namespace"] = pod_namespace;
  request["operation"] = "CREATE";
  request["userInfo"] = user;
  request["object"] = binding;
  request["oldObject"] = nullptr;
  request["dryRun"] = false;
  request["options"] = {{"kind", "CreateOptions"}, {"apiVersion", "meta.k8s.io/v1"}};
  return ordered_json{
      {"kind", "AdmissionReview"}, {"apiVersion", "admission.k8s.io/v1"}, {"request", request}}
      .dump();
}

BindOutcome AckSchedulerDriver::SendBinding(const std::string& pod_namespace,
                                            const std::string& pod, const std::string& pod_uid,
                                            const std::string& node, AckScheduler scheduler,
                                            BindingEndpoint endpoint) {
  const std::string review =
      MakeBindingReview(pod_namespace, pod, pod_uid, node, scheduler, endpoint);
  httplib::SSLClient client("127.0.0.1", webhook_port_);
  client.set_ca_cert_path(webhook_ca_file_.c_str());
  client.enable_server_certificate_verification(true);
  client.set_connection_timeout(std::chrono::seconds(options_.timeout_seconds));
  client.set_read_timeout(std::chrono::seconds(options_.timeout_seconds));
  const httplib::Headers headers = {{"Accept", "application/json, */*"}};
  const auto result =
      client.Post("/validate?timeout=" + std::to_string(options_.timeout_seconds) + "s", headers,
                  review, "application/json");
  BindOutcome outcome;
  if (!result) {
    outcome.error = "calling the webhook: " + httplib::to_string(result.error());
    return outcome;
  }
  outcome.http_status = result->status;
  outcome.body = result->body;
  if (result->status == 200) {
    const json answer = json::parse(result->body, nullptr, false);
    if (answer.is_object() && answer.contains("response")) {
      outcome.response = answer["response"];
    } else {
      outcome.error = "the webhook's answer is no AdmissionReview";
    }
  }
  return outcome;
}

}  // namespace cgpu::testing
