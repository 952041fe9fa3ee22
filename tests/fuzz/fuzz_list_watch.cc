// libFuzzer target: what the API server sends about pods and nodes. The input is read as a List
// (the shape of a list page and of --cluster-state files) into a cluster cache, and as a watch
// event ({"type":...,"object":...}) handed to the watch handlers the informers use.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "adapters/cluster_cache.h"
#include "adapters/cluster_state_file.h"
#include "adapters/cluster_watch.h"
#include "adapters/embedded_rules.h"
#include "adapters/node_list.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const cgpu::NodeFactsReader facts =
      cgpu::NodeFactsReader::Create({}, cgpu::EmbeddedRules()).value();
  cgpu::ClusterCache cache(cgpu::EmbeddedRules(), facts, {});
  (void)cgpu::LoadClusterState(text, cache);
  (void)cgpu::ReadObjectsOfKinds(text, {"Node", "Pod"});

  simdjson::dom::parser parser;
  simdjson::dom::element event;
  if (parser.parse(text).get(event) != simdjson::SUCCESS) return 0;
  cgpu::SimdjsonView view(event);
  const cgpu::SimdjsonView object = view.Member("object");
  const std::string type(view.Member("type").TypeName() == "string" ? view.Member("type").String()
                                                                    : std::string_view());
  cgpu::PodWatchHandler pods(cache);
  cgpu::NodeWatchHandler nodes(cache);
  for (cgpu::WatchHandler* handler :
       {static_cast<cgpu::WatchHandler*>(&pods), static_cast<cgpu::WatchHandler*>(&nodes)}) {
    handler->OnListStart();
    if (type == "DELETED") {
      handler->OnDelete(object);
    } else {
      handler->OnObject(object);
    }
    handler->OnListEnd();
  }
  return 0;
}
