// Kubeconfig files for the tests' clients of the tests' API server (fake_api_server.h): one
// cluster and context per entry, each cluster trusting `ca_file` (a path, relative to the
// kubeconfig's directory or absolute) and one user whose fields are given as YAML
// ("token: s3cret", "tokenFile: /path/token").
#pragma once

#include <string>
#include <vector>

namespace cgpu::testing {

struct KubeconfigCluster {
  std::string context;  // the context's (and cluster's) name
  int port = 0;         // https://127.0.0.1:<port>
};

std::string KubeconfigText(const std::vector<KubeconfigCluster>& clusters,
                           const std::string& current_context, const std::string& ca_file,
                           const std::string& user_fields);

// One cluster at 127.0.0.1:port as context "test", current.
void WriteKubeconfig(const std::string& path, int port, const std::string& ca_file,
                     const std::string& user_fields);

}  // namespace cgpu::testing
