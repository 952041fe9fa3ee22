// cgpu-guard: an admission webhook that keeps cGPU pods within what cGPU supports.
#include <iostream>
#include <string>
#include <vector>

#include "core/resource_routes.h"
#include "shell/check_command.h"
#include "shell/lifecycle_commands.h"
#include "shell/node_facts_command.h"
#include "shell/serve_command.h"
#include "shell/version.h"

namespace {

constexpr char kUsage[] =
    "Usage: cgpu-guard <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  serve     run the admission webhook over HTTPS (see cgpu-guard serve --help)\n"
    "  check     check nodes (kubectl get nodes -o json) against the cGPU rules\n"
    "  node-facts  keep this node's cGPU, driver and toolkit version labels true\n"
    "  unregister  delete the webhook's registration (the chart's pre-delete hook)\n"
    "  selftest  post a harmless review to a running webhook and check the answer (helm test)\n"
    "  routes    print the resources the webhook judges, one per line (what the webhook rules\n"
    "            must send it)\n"
    "  version   print the version\n"
    "  help      show this text\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "serve") return cgpu::RunServeCommand(args);
  if (command == "check") return cgpu::RunCheckCommand(args);
  if (command == "node-facts") return cgpu::RunNodeFactsCommand(args);
  if (command == "unregister") return cgpu::RunUnregisterCommand(args);
  if (command == "selftest") return cgpu::RunSelftestCommand(args);
  if (command == "routes") {
    // "<resource path> <operations>" for each route a webhook rule must send (the chart's tests
    // compare its rules with this list).
    for (const cgpu::ResourceRoute& route : cgpu::kResourceRoutes) {
      if (!route.operations.empty()) std::cout << route.path << " " << route.operations << "\n";
    }
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::cout << "cgpu-guard " << cgpu::kVersion << " (commit " << cgpu::kGitCommit << ")\n";
    return 0;
  }
  std::cerr << "cgpu-guard: unknown command \"" << command << "\"\n\n" << kUsage;
  return 2;
}
