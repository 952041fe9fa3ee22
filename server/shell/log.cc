#include "shell/log.h"

#include <cstdio>
#include <ctime>
#include <mutex>

namespace cgpu {
namespace {

std::string Timestamp() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  std::tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  char text[40];
  size_t length = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + length, sizeof(text) - length, ".%06ldZ", now.tv_nsec / 1000);
  return text;
}

}  // namespace

void LogJson(std::string_view level, nlohmann::ordered_json fields) {
  nlohmann::ordered_json line = {{"ts", Timestamp()}, {"level", level}};
  if (auto message = fields.find("msg"); message != fields.end()) line["msg"] = *message;
  line.update(fields);
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text += '\n';
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::fwrite(text.data(), 1, text.size(), stderr);
}

void LogInfo(std::string_view message, nlohmann::ordered_json fields) {
  fields["msg"] = message;
  LogJson("info", std::move(fields));
}

void LogError(std::string_view message, nlohmann::ordered_json fields) {
  fields["msg"] = message;
  LogJson("error", std::move(fields));
}

nlohmann::ordered_json FormatDecisionLine(const ReviewOutcome& outcome,
                                          std::chrono::nanoseconds latency) {
  nlohmann::ordered_json line = {{"msg", "decision"}};
  if (outcome.request) {
    const AdmissionRequest& request = *outcome.request;
    line["uid"] = request.uid;
    line["resource"] = request.ResourcePath();
    line["operation"] = ToString(request.operation);
    line["namespace"] = request.namespace_name;
    line["name"] = request.name;
    line["verdict"] = ToString(outcome.decision.verdict);
    line["reason"] = outcome.decision.reason;
    if (outcome.decision.would_deny) line["wouldDeny"] = true;
    if (!outcome.decision.message.empty()) line["message"] = outcome.decision.message;
    if (!outcome.decision.warnings.empty()) line["warnings"] = outcome.decision.warnings;
    if (request.dry_run) line["dryRun"] = true;
  } else {
    line["verdict"] = "bad-request";
    line["reason"] = outcome.bad_request_reason;
  }
  line["httpStatus"] = outcome.http_status;
  line["latencyMicros"] = std::chrono::duration_cast<std::chrono::microseconds>(latency).count();
  return line;
}

}  // namespace cgpu
