// libFuzzer target: an AdmissionReview body through the whole request path without sockets:
// decode, read facts, decide over a small cluster, encode. Must never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "adapters/admission_controller.h"
#include "adapters/cluster_cache.h"
#include "adapters/embedded_rules.h"
#include "adapters/review_facts_reader.h"
#include "shell/review_handler.h"

namespace {

struct Pipeline {
  cgpu::NodeFactsReader facts = cgpu::NodeFactsReader::Create({}, cgpu::EmbeddedRules()).value();
  cgpu::ClusterCache cache{cgpu::EmbeddedRules(), facts, {}};
  cgpu::ReviewFactsReader review_reader{facts};
  cgpu::AdmissionController controller{cache, {}, {}};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Pipeline pipeline;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  cgpu::HandleReview(
      cgpu::ReviewCall{"POST", "application/json", body},
      [](const cgpu::ReviewFacts& facts) { return pipeline.controller.Admit(facts); },
      [](const cgpu::DecodedReview& review) { return pipeline.review_reader.Read(review); });
  return 0;
}
