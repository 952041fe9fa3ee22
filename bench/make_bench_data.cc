// make-bench-data: a large, realistic cluster for the benchmark, and the reviews it sends.
//
//   make-bench-data --out DIR [--nodes 5000] [--gpus 8] [--pods 100000]
//
// Writes DIR/state.json (`kubectl get nodes,pods -A -o json` of the whole cluster) and one
// AdmissionReview per request kind the benchmark drives:
//   review-binding.json     pods/binding CREATE of a pending cGPU pod onto a node with room,
//                           the Binding carrying the GPU allocation (no read of the API server);
//   review-binding-read.json the same binding as ACK's schedulers send it (name, uid, target):
//                           the webhook reads the pod from the API server to learn its GPU;
//   review-pod-create.json  a cGPU pod CREATE from a ReplicaSet controller (~2 KB);
//   review-large-pod.json   a pod CREATE carrying the all-fields Pod fixture (~60 KB);
//   review-node-update.json a kubelet-sized UPDATE of a cGPU node.
// Every node is a cGPU node with `gpus` GPUs; pods are spread over them, a few per GPU, each a
// realistic ~2 KB object (labels, owner references, env, volumes, status conditions).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cluster/cluster_objects.h"

namespace {

using nlohmann::json;

// What a Deployment's pod looks like once the API server has it: the fields kubectl shows.
json RealisticPod(const cgpu::testing::PodSpec& spec, int i) {
  json pod = cgpu::testing::MakePod(spec);
  json& metadata = pod["metadata"];
  metadata["generateName"] = "inference-7d9c8b6f5-";
  metadata["creationTimestamp"] = "2026-11-20T08:15:32Z";
  metadata["resourceVersion"] = std::to_string(1000000 + i);
  metadata["labels"] = {{"app", "inference"},
                        {"pod-template-hash", "7d9c8b6f5"},
                        {"team", "ml-platform"},
                        {"aliyun.com/gpu-count", "1"}};
  metadata["ownerReferences"] = {{{"apiVersion", "apps/v1"},
                                  {"kind", "ReplicaSet"},
                                  {"name", "inference-7d9c8b6f5"},
                                  {"uid", "6f1e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"},
                                  {"controller", true},
                                  {"blockOwnerDeletion", true}}};
  json& container = pod["spec"]["containers"][0];
  container["env"] = {{{"name", "MODEL_NAME"}, {"value", "qwen2-7b-instruct"}},
                      {{"name", "NVIDIA_VISIBLE_DEVICES"}, {"value", "all"}},
                      {{"name", "ALIYUN_COM_GPU_MEM_CONTAINER"}, {"value", "2"}}};
  container["ports"] = {{{"containerPort", 8000}, {"protocol", "TCP"}, {"name", "http"}}};
  container["volumeMounts"] = {{{"name", "kube-api-access-x7k2p"},
                                {"mountPath", "/var/run/secrets/kubernetes.io/serviceaccount"},
                                {"readOnly", true}}};
  container["imagePullPolicy"] = "IfNotPresent";
  container["terminationMessagePath"] = "/dev/termination-log";
  pod["spec"]["volumes"] = json::parse(R"([{"name":"kube-api-access-x7k2p","projected":{
      "defaultMode":420,"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
      {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}]}}])");
  pod["spec"]["restartPolicy"] = "Always";
  pod["spec"]["serviceAccountName"] = "default";
  pod["spec"]["tolerations"] = {{{"key", "node.kubernetes.io/not-ready"},
                                 {"operator", "Exists"},
                                 {"effect", "NoExecute"},
                                 {"tolerationSeconds", 300}}};
  pod["status"]["conditions"] = {
      {{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", "2026-11-20T08:16:01Z"}},
      {{"type", "PodScheduled"},
       {"status", "True"},
       {"lastTransitionTime", "2026-11-20T08:15:32Z"}}};
  pod["status"]["hostIP"] = "10.0.3.17";
  pod["status"]["podIP"] = "172.20.4.33";
  pod["status"]["qosClass"] = "BestEffort";
  return pod;
}

bool Write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  int nodes = 5000;
  int gpus = 8;
  int pods = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--out") out = argv[i + 1];
    if (flag == "--nodes") nodes = std::stoi(argv[i + 1]);
    if (flag == "--gpus") gpus = std::stoi(argv[i + 1]);
    if (flag == "--pods") pods = std::stoi(argv[i + 1]);
  }
  if (out.empty() || nodes < 1 || gpus < 1 || pods < 1) {
    std::cerr << "usage: make-bench-data --out DIR [--nodes N] [--gpus N] [--pods N]\n";
    return 2;
  }
  std::filesystem::create_directories(out);

  // The List is streamed item by item: 100,000 pods do not need to sit in memory as one DOM.
  std::ofstream state(out + "/state.json", std::ios::binary | std::ios::trunc);
  state << R"({"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":[)";
  bool first = true;
  auto item = [&](const json& object) {
    state << (first ? "\n" : ",\n") << object.dump();
    first = false;
  };
  for (int n = 0; n < nodes; ++n) {
    item(cgpu::testing::MakeNode({.name = "gpu-" + std::to_string(n), .gpus = gpus}));
  }
  // Round-robin over nodes and GPUs; the last pod is left pending for the binding review.
  for (int p = 0; p < pods; ++p) {
    const int node = p % nodes;
    const int gpu = (p / nodes) % gpus;
    const bool pending = p == pods - 1;
    item(RealisticPod({.name = "inference-" + std::to_string(p),
                       .node = pending ? "" : "gpu-" + std::to_string(node),
                       .gpus = {gpu},
                       .phase = pending ? "Pending" : "Running"},
                      p));
  }
  state << "\n]}\n";
  state.close();

  const std::string pending = "inference-" + std::to_string(pods - 1);
  const std::string target = "gpu-" + std::to_string((pods - 1) % nodes);
  const int pending_gpu = ((pods - 1) / nodes) % gpus;
  // Two bindings of the pending pod: one carrying its GPU allocation (decided on the cache alone)
  // and one as ACK's schedulers send it (name, uid and target only), which reads the pod.
  bool ok = Write(out + "/review-binding.json",
                  cgpu::testing::MakeReview(
                      "b1e6c0de-0000-4000-8000-000000000001", "pods", "binding", "CREATE", pending,
                      cgpu::testing::MakeBinding(pending, target, {pending_gpu})));
  ok &= Write(
      out + "/review-binding-read.json",
      cgpu::testing::MakeReview("b1e6c0de-0000-4000-8000-000000000005", "pods", "binding", "CREATE",
                                pending, cgpu::testing::MakeBinding(pending, target)));
  json created = RealisticPod({.name = "inference-new", .gpus = {}, .phase = "Pending"}, 0);
  created["metadata"].erase("resourceVersion");
  created["metadata"]["annotations"] = json::object();
  created.erase("status");
  ok &= Write(out + "/review-pod-create.json",
              cgpu::testing::MakeReview("b1e6c0de-0000-4000-8000-000000000002", "pods", "",
                                        "CREATE", "", created));
  json large = json::parse(
      Slurp(std::string(CGPU_TEST_FIXTURES) + "/upstream/pod-v1-roundtrip-allfields.json"));
  ok &= Write(out + "/review-large-pod.json",
              cgpu::testing::MakeReview("b1e6c0de-0000-4000-8000-000000000003", "pods", "",
                                        "CREATE", large["metadata"].value("name", ""), large));
  json node = cgpu::testing::MakeNode({.name = target, .gpus = gpus});
  node["status"]["conditions"] = {
      {{"type", "Ready"},
       {"status", "True"},
       {"reason", "KubeletReady"},
       {"lastHeartbeatTime", "2026-11-25T02:00:00Z"}},
      {{"type", "MemoryPressure"}, {"status", "False"}, {"reason", "KubeletHasSufficientMemory"}},
      {{"type", "DiskPressure"}, {"status", "False"}, {"reason", "KubeletHasNoDiskPressure"}}};
  json updated = node;
  updated["metadata"]["labels"]["topology.kubernetes.io/zone"] = "cn-hangzhou-k";
  ok &= Write(out + "/review-node-update.json",
              cgpu::testing::MakeReview("b1e6c0de-0000-4000-8000-000000000004", "nodes", "",
                                        "UPDATE", target, updated, node));
  if (!ok || !state) {
    std::cerr << "make-bench-data: cannot write to " << out << "\n";
    return 1;
  }
  std::cerr << "make-bench-data: " << nodes << " nodes x " << gpus << " GPUs, " << pods
            << " pods in " << out << "\n";
  return 0;
}
