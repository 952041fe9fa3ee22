#include "support/kubeconfig_writer.h"

#include "support/test_certificates.h"

namespace cgpu::testing {

std::string KubeconfigText(const std::vector<KubeconfigCluster>& clusters,
                           const std::string& current_context, const std::string& ca_file,
                           const std::string& user_fields) {
  std::string text =
      "apiVersion: v1\nkind: Config\ncurrent-context: " + current_context + "\nclusters:\n";
  for (const KubeconfigCluster& cluster : clusters) {
    text += "- name: " + cluster.context +
            "\n  cluster:\n    server: https://127.0.0.1:" + std::to_string(cluster.port) +
            "\n    certificate-authority: " + ca_file + "\n";
  }
  text += "users:\n- name: tester\n  user: {" + user_fields + "}\ncontexts:\n";
  for (const KubeconfigCluster& cluster : clusters) {
    text += "- name: " + cluster.context + "\n  context: {cluster: " + cluster.context +
            ", user: tester}\n";
  }
  return text;
}

void WriteKubeconfig(const std::string& path, int port, const std::string& ca_file,
                     const std::string& user_fields) {
  WriteFile(path, KubeconfigText({{"test", port}}, "test", ca_file, user_fields));
}

}  // namespace cgpu::testing
