// Decision cost alone: one AdmissionReview from bytes to encoded answer (decode, read facts,
// decide over the cluster cache, encode), with no socket, for each request kind the webhook sees
// most, against a cache holding a large cluster.
//
//   decision-bench --state DIR/state.json --reviews DIR [Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "adapters/admission_controller.h"
#include "adapters/cluster_state_file.h"
#include "adapters/embedded_rules.h"
#include "adapters/review_facts_reader.h"
#include "shell/review_handler.h"

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct World {
  cgpu::NodeFactsReader reader =
      cgpu::NodeFactsReader::Create(cgpu::FactSources{}, cgpu::EmbeddedRules()).value();
  cgpu::ClusterCache cache{cgpu::EmbeddedRules(), reader, {}};
  cgpu::ReviewFactsReader facts{reader};
  std::unique_ptr<cgpu::AdmissionController> controller;
};

World* world = nullptr;

void Review(benchmark::State& state, const std::string& body) {
  const cgpu::Policy policy = [](const cgpu::ReviewFacts& facts) {
    return world->controller->Admit(facts);
  };
  const cgpu::FactReader read = [](const cgpu::DecodedReview& review) {
    return world->facts.Read(review);
  };
  const cgpu::ReviewCall call{"POST", "application/json", body};
  for (auto _ : state) {
    cgpu::ReviewOutcome outcome = cgpu::HandleReview(call, policy, read);
    if (outcome.http_status != 200) state.SkipWithError("review was not answered with 200");
    benchmark::DoNotOptimize(outcome.body.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["body_bytes"] = static_cast<double>(body.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::string state_path;
  std::string reviews;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--state" && i + 1 < argc) {
      state_path = argv[++i];
    } else if (arg == "--reviews" && i + 1 < argc) {
      reviews = argv[++i];
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (state_path.empty() || reviews.empty()) {
    std::cerr << "usage: decision-bench --state FILE --reviews DIR [benchmark flags]\n";
    return 2;
  }
  World the_world;
  world = &the_world;
  auto loaded = cgpu::LoadClusterStateFile(state_path, world->cache);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";
    return 1;
  }
  world->controller =
      std::make_unique<cgpu::AdmissionController>(world->cache, cgpu::PolicyOptions{});
  for (const char* name : {"binding", "pod-create", "large-pod", "node-update"}) {
    const std::string body = Slurp(reviews + "/review-" + std::string(name) + ".json");
    benchmark::RegisterBenchmark(("decide/" + std::string(name)).c_str(),
                                 [body](benchmark::State& state) { Review(state, body); });
  }
  int count = static_cast<int>(rest.size());
  benchmark::Initialize(&count, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
