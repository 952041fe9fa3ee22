// libFuzzer target: a kubeconfig file. The loader reads files (it resolves relative paths), so
// each input is written to one scratch file first.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "adapters/kube_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One file per fuzzing process, rewritten for every input and removed at exit.
  struct ScratchFile {
    std::string path = "/tmp/cgpu-guard-fuzz-kubeconfig-" + std::to_string(getpid());
    ~ScratchFile() { std::remove(path.c_str()); }
  };
  static const ScratchFile scratch;
  const std::string& path = scratch.path;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)cgpu::LoadKubeconfig(path);
  (void)cgpu::LoadKubeconfig(path, "other");
  return 0;
}
