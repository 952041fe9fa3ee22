// libFuzzer target: a kubeconfig file. The loader reads files (it resolves relative paths), so
// each input is written to one scratch file first.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "adapters/kube_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/cgpu-guard-fuzz-kubeconfig-" + std::to_string(getpid());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)cgpu::LoadKubeconfig(path);
  (void)cgpu::LoadKubeconfig(path, "other");
  return 0;
}
