// fake-apiserver: the tests' local Kubernetes API server (real HTTPS, the real list/watch wire
// format) as a process, holding the nodes and pods of a state file. The benchmark measures how
// long `cgpu-guard serve` takes from start to ready against it.
//
//   fake-apiserver --state FILE --dir DIR [--churn N]
//
// --churn N: N pod changes a second (a label flips on a random pod), so watches stay busy.
//
// Writes DIR/port (the port it listens on, 127.0.0.1), DIR/ca.crt (its CA) and DIR/kubeconfig
// (for --kubeconfig, token auth), then serves until SIGTERM or SIGINT.
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "support/fake_api_server.h"

int main(int argc, char** argv) {
  std::string state_path;
  std::string dir;
  int churn = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--state") state_path = argv[i + 1];
    if (flag == "--dir") dir = argv[i + 1];
    if (flag == "--churn") churn = std::stoi(argv[i + 1]);
  }
  if (state_path.empty() || dir.empty()) {
    std::cerr << "usage: fake-apiserver --state FILE --dir DIR\n";
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::ifstream in(state_path, std::ios::binary);
  nlohmann::json state = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!state.is_object() || !state["items"].is_array()) {
    std::cerr << "fake-apiserver: " << state_path << " is not a List\n";
    return 1;
  }
  cgpu::testing::FakeApiServer server;
  server.RequireToken("bench-token");
  size_t nodes = 0;
  std::vector<std::pair<std::string, std::string>> pods;  // namespace, name
  for (nlohmann::json& item : state["items"]) {
    const bool node = item.value("kind", "") == "Node";
    if (node) {
      ++nodes;
    } else {
      pods.emplace_back(item["metadata"].value("namespace", ""),
                        item["metadata"].value("name", ""));
    }
    server.Add(node ? "nodes" : "pods", std::move(item));
  }
  state = nullptr;

  std::atomic<bool> stopping{false};
  std::thread churner([&] {
    if (churn <= 0 || pods.empty()) return;
    std::mt19937 random(42);
    const auto period = std::chrono::microseconds(1'000'000 / churn);
    for (int64_t n = 0; !stopping; ++n) {
      const auto& [ns, name] = pods[random() % pods.size()];
      if (std::optional<nlohmann::json> pod = server.Find("pods", name, ns)) {
        (*pod)["metadata"]["labels"]["churn"] = std::to_string(n);
        server.Update("pods", std::move(*pod));
      }
      std::this_thread::sleep_for(period);
    }
  });

  std::ofstream(dir + "/ca.crt") << server.ca_pem();
  std::ofstream(dir + "/kubeconfig")
      << "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
      << "clusters:\n- name: bench\n  cluster:\n    server: https://127.0.0.1:" << server.port()
      << "\n    certificate-authority: " << dir << "/ca.crt\n"
      << "users:\n- name: bench\n  user:\n    token: bench-token\n"
      << "contexts:\n- name: bench\n  context: {cluster: bench, user: bench}\n";
  std::ofstream(dir + "/port") << server.port() << "\n";
  std::cerr << "fake-apiserver: " << nodes << " nodes, " << pods.size()
            << " pods on 127.0.0.1:" << server.port() << "\n";
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  stopping = true;
  churner.join();
  return 0;
}
