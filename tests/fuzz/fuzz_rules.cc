// libFuzzer target: a rules file (YAML) through the loader. Bad files must be errors, not crashes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "adapters/rules_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)cgpu::LoadRules(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  return 0;
}
