// libFuzzer target: version text as nodes, labels and host tools give it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/host_facts.h"
#include "core/version.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto version = cgpu::Version::Parse(text)) {
    // A parsed version prints back to something that parses to the same version.
    auto again = cgpu::Version::Parse(version->ToString());
    if (!again || *again != *version) __builtin_trap();
  }
  (void)cgpu::Version::ParsePrefix(text);
  (void)cgpu::VersionRange::Parse(text);
  (void)cgpu::DriverVersionFromProc(text);
  (void)cgpu::DriverVersionFromNvidiaSmi(text);
  (void)cgpu::CgpuVersionFromText(text);
  (void)cgpu::ToolkitVersionFromCli(text);
  (void)cgpu::ToolkitVersionFromCtk(text);
  (void)cgpu::ToolkitVersionFromDpkgStatus(text);
  return 0;
}
