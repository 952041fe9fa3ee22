#include "shell/lifecycle_commands.h"

#include <httplib.h>

#include <chrono>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "adapters/kube_client.h"
#include "adapters/kube_config.h"
#include "adapters/node_label_patch.h"
#include "core/backoff.h"
#include "shell/exit_codes.h"
#include "shell/flags.h"
#include "shell/version.h"

namespace cgpu {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct UnregisterOptions {
  std::string webhook_config;
  std::string kubeconfig;
  std::string context;
  std::chrono::milliseconds timeout{60'000};
};

struct SelftestOptions {
  std::string resolve;  // "HOST=IP": connect to IP for HOST, still verifying the name HOST
  std::string webhook_url;
  std::string ca_file;
  std::string ready_url;
  std::string namespace_name = "default";
  std::chrono::milliseconds timeout{60'000};
};

// Parses flags; returns the exit code when the command should stop here (help, usage error).
std::optional<int> Parse(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs,
                         const std::string& usage, const std::string& command) {
  StatusOr<ParsedArgs> parsed = ParseFlags(args, specs);
  if (!parsed.ok()) {
    std::cerr << "cgpu-guard " << command << ": " << parsed.status().message() << "\n";
    return kExitUsage;
  }
  if (parsed->help_requested) {
    std::cout << FlagUsage(usage, specs);
    return 0;
  }
  if (!parsed->positional.empty()) {
    std::cerr << "cgpu-guard " << command << ": takes no arguments, got \""
              << parsed->positional.front() << "\"\n";
    return kExitUsage;
  }
  return std::nullopt;
}

// Waits before retry number `retry` (core/backoff.h, from `first` up to 5 s), never past
// `deadline`; false when no time is left. A command, not a server: sleeping is what it should do.
bool PauseBeforeRetry(SteadyClock::time_point deadline, std::chrono::milliseconds first,
                      int& retry) {
  const auto now = SteadyClock::now();
  if (now >= deadline) return false;
  thread_local std::mt19937_64 engine(std::random_device{}());
  const auto wait = BackoffDelay(first, std::chrono::milliseconds(5'000), retry++,
                                 std::uniform_real_distribution<double>(0.0, 1.0)(engine));
  std::this_thread::sleep_for(std::min<SteadyClock::duration>(wait, deadline - now));
  return SteadyClock::now() < deadline;
}

}  // namespace

int RunUnregisterCommand(const std::vector<std::string>& args) {
  std::signal(SIGPIPE, SIG_IGN);
  UnregisterOptions options;
  const std::vector<FlagSpec> specs = {
      Flag("webhook-config", "NAME", "the ValidatingWebhookConfiguration to delete (required)",
           SetString(options.webhook_config)),
      Flag("kubeconfig", "FILE", "kubeconfig to use instead of the pod's service account",
           SetString(options.kubeconfig)),
      Flag("context", "NAME", "kubeconfig context (default: its current-context)",
           SetString(options.context)),
      Flag("timeout", "DURATION", "give up after this long", SetDuration(options.timeout)),
  };
  if (auto done = Parse(
          args, specs,
          "Usage: cgpu-guard unregister --webhook-config NAME [flags]\n\n"
          "Deletes the webhook's registration so the API server stops calling it (the chart's\n"
          "pre-delete hook). Exit 0 removed or already absent, 1 failed, 2 usage, 3 refused.",
          "unregister")) {
    return *done;
  }
  if (options.webhook_config.empty()) {
    std::cerr << "cgpu-guard unregister: --webhook-config is required\n";
    return kExitUsage;
  }
  if (!options.context.empty() && options.kubeconfig.empty()) {
    std::cerr << "cgpu-guard unregister: --context needs --kubeconfig\n";
    return kExitUsage;
  }
  StatusOr<KubeConfig> config = options.kubeconfig.empty()
                                    ? InClusterConfig()
                                    : LoadKubeconfig(options.kubeconfig, options.context);
  if (!config.ok()) {
    std::cerr << "cgpu-guard unregister: " << config.status().message() << "\n";
    return kExitUsage;
  }
  KubeClientOptions client_options;
  client_options.version = kVersion;
  const KubeClient client(*config, client_options);
  const std::string path =
      "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/" +
      EscapeQueryValue(options.webhook_config);
  const auto deadline = SteadyClock::now() + options.timeout;
  int retry = 0;
  std::string last_error;
  do {
    StatusOr<KubeResponse> answer = client.Write(
        "DELETE", path, "", std::min(deadline, SteadyClock::now() + std::chrono::seconds(10)));
    if (answer.ok()) {
      if (answer->status == 200 || answer->status == 202) {
        std::cout << "cgpu-guard unregister: deleted ValidatingWebhookConfiguration "
                  << options.webhook_config << "\n";
        return 0;
      }
      if (answer->status == 404) {
        std::cout << "cgpu-guard unregister: ValidatingWebhookConfiguration "
                  << options.webhook_config << " is already gone\n";
        return 0;
      }
      if (IsPermissionRefusal(answer->status, answer->body)) {
        std::cerr << "cgpu-guard unregister: not allowed to delete ValidatingWebhookConfiguration "
                  << options.webhook_config << " ("
                  << DescribeHttpError(answer->status, answer->body)
                  << "). The chart's pre-delete hook grants delete on it by name; by hand: "
                     "kubectl delete validatingwebhookconfiguration "
                  << options.webhook_config << "\n";
        return kExitForbidden;
      }
      last_error = DescribeHttpError(answer->status, answer->body);
      if (answer->status != 429 && answer->status < 500) break;
    } else {
      last_error = answer.status().message();
    }
  } while (PauseBeforeRetry(deadline, std::chrono::milliseconds(200), retry));
  std::cerr << "cgpu-guard unregister: could not delete ValidatingWebhookConfiguration "
            << options.webhook_config << ": " << last_error
            << ". Delete it by hand before the server goes: kubectl delete "
               "validatingwebhookconfiguration "
            << options.webhook_config << "\n";
  return kExitFailed;
}

std::string SelftestReview(const std::string& uid, const std::string& namespace_name) {
  const nlohmann::json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", "cgpu-guard-selftest"}, {"namespace", namespace_name}}},
      {"spec",
       {{"nodeName", "cgpu-guard-selftest-node"},
        {"containers", {{{"name", "c"}, {"image", "selftest"}}}}}}};
  const nlohmann::json review = {
      {"apiVersion", "admission.k8s.io/v1"},
      {"kind", "AdmissionReview"},
      {"request",
       {{"uid", uid},
        {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
        {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
        {"name", "cgpu-guard-selftest"},
        {"namespace", namespace_name},
        {"operation", "CREATE"},
        {"userInfo", {{"username", "cgpu-guard-selftest"}}},
        {"object", pod},
        {"dryRun", true}}}};
  return review.dump();
}

namespace {

// One attempt: "" when the webhook and readiness answered as they should, else what was wrong.
std::string TryReview(const SelftestOptions& options, const std::string& uid) {
  httplib::Client webhook(options.webhook_url.substr(0, options.webhook_url.find('/', 8)));
  webhook.set_ca_cert_path(options.ca_file.c_str());
  if (const size_t equals = options.resolve.find('='); equals != std::string::npos) {
    webhook.set_hostname_addr_map(
        {{options.resolve.substr(0, equals), options.resolve.substr(equals + 1)}});
  }
  webhook.enable_server_certificate_verification(true);
  webhook.set_connection_timeout(std::chrono::seconds(5));
  webhook.set_read_timeout(std::chrono::seconds(10));
  const size_t path_at = options.webhook_url.find('/', 8);
  const std::string path =
      path_at == std::string::npos ? "/validate" : options.webhook_url.substr(path_at);
  auto answer = webhook.Post(path, SelftestReview(uid, options.namespace_name), "application/json");
  if (!answer) {
    return "POST " + options.webhook_url + ": " + httplib::to_string(answer.error()) +
           (answer.error() == httplib::Error::SSLServerVerification
                ? " (the serving certificate is not signed by the CA in " + options.ca_file +
                      ", or does not name the host)"
                : "");
  }
  if (answer->status != 200) {
    return "POST " + options.webhook_url + ": HTTP " + std::to_string(answer->status) + ": " +
           answer->body.substr(0, 300);
  }
  const nlohmann::json body = nlohmann::json::parse(answer->body, nullptr, false);
  if (!body.is_object() || body.value("kind", "") != "AdmissionReview" ||
      !body.contains("response") || !body["response"].is_object()) {
    return "the webhook's answer is not an AdmissionReview: " + answer->body.substr(0, 300);
  }
  const nlohmann::json& response = body["response"];
  if (response.value("uid", "") != uid) {
    return "the webhook answered another review (uid " + response.value("uid", "") + ")";
  }
  if (!response.value("allowed", false)) {
    return "the webhook refused a pod that asks for no GPU: " + response.dump().substr(0, 300);
  }
  return "";
}

std::string TrySelftest(const SelftestOptions& options, const std::string& uid) {
  if (!options.webhook_url.empty()) {
    if (std::string problem = TryReview(options, uid); !problem.empty()) return problem;
  }
  if (!options.ready_url.empty()) {
    const size_t ready_path_at = options.ready_url.find('/', 8);
    httplib::Client ops(options.ready_url.substr(0, ready_path_at));
    if (const size_t equals = options.resolve.find('='); equals != std::string::npos) {
      ops.set_hostname_addr_map(
          {{options.resolve.substr(0, equals), options.resolve.substr(equals + 1)}});
    }
    ops.set_connection_timeout(std::chrono::seconds(5));
    ops.set_read_timeout(std::chrono::seconds(5));
    auto ready = ops.Get(
        ready_path_at == std::string::npos ? "/readyz" : options.ready_url.substr(ready_path_at));
    if (!ready) return "GET " + options.ready_url + ": " + httplib::to_string(ready.error());
    if (ready->status != 200) {
      return "GET " + options.ready_url + ": HTTP " + std::to_string(ready->status) + ": " +
             ready->body.substr(0, 300);
    }
  }
  return "";
}

}  // namespace

int RunSelftestCommand(const std::vector<std::string>& args) {
  std::signal(SIGPIPE, SIG_IGN);
  SelftestOptions options;
  const std::vector<FlagSpec> specs = {
      Flag("webhook-url", "URL",
           "the webhook, e.g. https://NAME.NAMESPACE.svc:443/validate (needs --ca-file)",
           SetString(options.webhook_url)),
      Flag("ca-file", "FILE", "the CA bundle to verify the webhook's certificate with",
           SetString(options.ca_file)),
      Flag("ready-url", "URL",
           "also require 200 from this URL, e.g. http://NAME.NAMESPACE.svc:9090/readyz",
           SetString(options.ready_url)),
      Flag("namespace", "NAMESPACE", "the namespace of the reviewed pod",
           SetString(options.namespace_name)),
      Flag("timeout", "DURATION", "keep trying this long", SetDuration(options.timeout)),
      Flag("resolve", "HOST=IP",
           "connect to IP for HOST, still verifying the name HOST (as curl --resolve)",
           SetString(options.resolve)),
  };
  if (auto done =
          Parse(args, specs,
                "Usage: cgpu-guard selftest [--webhook-url URL --ca-file FILE] [--ready-url URL] "
                "[flags]\n\n"
                "Posts a harmless AdmissionReview over TLS and checks the answer (helm test).\n"
                "Exit 0 passed, 1 failed, 2 usage.",
                "selftest")) {
    return *done;
  }
  if (options.webhook_url.empty() && options.ready_url.empty()) {
    std::cerr << "cgpu-guard selftest: give --webhook-url (with --ca-file), --ready-url or both\n";
    return kExitUsage;
  }
  if (!options.webhook_url.empty() &&
      (options.webhook_url.rfind("https://", 0) != 0 || options.ca_file.empty())) {
    std::cerr << "cgpu-guard selftest: --webhook-url must be https://... and needs --ca-file\n";
    return kExitUsage;
  }
  if (!options.ready_url.empty() && options.ready_url.rfind("http://", 0) != 0) {
    std::cerr << "cgpu-guard selftest: --ready-url must be http://...\n";
    return kExitUsage;
  }
  const auto deadline = SteadyClock::now() + options.timeout;
  int retry = 0;
  int attempt = 0;
  std::string problem;
  do {
    ++attempt;
    problem = TrySelftest(options, "cgpu-guard-selftest-" + std::to_string(attempt));
    if (problem.empty()) {
      std::cout << "cgpu-guard selftest: passed:"
                << (options.webhook_url.empty()
                        ? ""
                        : " " + options.webhook_url +
                              " allowed a harmless review over verified TLS")
                << (options.ready_url.empty() ? "" : " " + options.ready_url + " is ready") << "\n";
      return 0;
    }
    std::cerr << "cgpu-guard selftest: attempt " << attempt << ": " << problem << "\n";
  } while (PauseBeforeRetry(deadline, std::chrono::milliseconds(500), retry));
  std::cerr << "cgpu-guard selftest: failed: " << problem << "\n";
  return kExitFailed;
}

}  // namespace cgpu
