#include "shell/log.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>

#include "adapters/json_text.h"

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

// The one writer of stderr. Callers append to `pending_`; every 20 ms (sooner when 64 KiB have
// queued) the writer swaps it out and writes it in one go, so a burst of requests costs one
// system call and no context switch per request.
class LogWriter {
 public:
  static constexpr size_t kMaxQueuedBytes = 8 << 20;
  static constexpr size_t kEagerWriteBytes = 64 << 10;
  static constexpr std::chrono::milliseconds kWriteInterval{20};

  LogWriter() : thread_([this] { Loop(); }) {}
  ~LogWriter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  void Append(std::string_view line) {
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_.size() + line.size() > kMaxQueuedBytes) {
        ++dropped_;
        return;
      }
      pending_.append(line);
      wake = pending_.size() >= kEagerWriteBytes;
    }
    // Waking the writer for every line would cost a context switch per request; it wakes by
    // itself every kWriteInterval, or at once when a burst has filled a good buffer.
    if (wake) wake_.notify_one();
  }

  void Flush() {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t target = appended_generation_ + 1;
    flush_requested_ = true;
    wake_.notify_one();
    written_.wait(lock, [&] { return written_generation_ >= target || stopping_; });
  }

 private:
  void Loop() {
    std::string batch;
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      wake_.wait_for(lock, kWriteInterval, [&] {
        return pending_.size() >= kEagerWriteBytes || stopping_ || flush_requested_;
      });
      batch.swap(pending_);
      const size_t dropped = dropped_;
      dropped_ = 0;
      const bool stop = stopping_ && batch.empty();
      flush_requested_ = false;
      const uint64_t generation = ++appended_generation_;
      lock.unlock();
      if (dropped > 0) {
        batch += "{\"ts\":\"" + Timestamp() +
                 "\",\"level\":\"error\",\"msg\":\"log lines dropped: " +
                 "stderr could not keep up\",\"dropped\":" + std::to_string(dropped) + "}\n";
      }
      WriteAll(batch);
      batch.clear();
      lock.lock();
      written_generation_ = generation;
      written_.notify_all();
      if (stop) return;
    }
  }

  static void WriteAll(std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
      if (n <= 0) return;  // stderr is gone: nothing sensible left to do with the lines
      text.remove_prefix(static_cast<size_t>(n));
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable written_;
  std::string pending_;               // guarded by mu_
  size_t dropped_ = 0;                // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  bool flush_requested_ = false;      // guarded by mu_
  uint64_t appended_generation_ = 0;  // guarded by mu_: batches taken by the writer
  uint64_t written_generation_ = 0;   // guarded by mu_: batches written
  std::thread thread_;                // last: starts after the members it uses exist
};

LogWriter& Writer() {
  static LogWriter writer;  // destroyed at exit, after writing what is queued
  return writer;
}

}  // namespace

void FlushLogs() { Writer().Flush(); }

void LogJson(std::string_view level, nlohmann::ordered_json fields) {
  nlohmann::ordered_json line = {{"ts", Timestamp()}, {"level", level}};
  if (auto message = fields.find("msg"); message != fields.end()) line["msg"] = *message;
  line.update(fields);
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text += '\n';
  Writer().Append(text);
}

void LogInfo(std::string_view message, nlohmann::ordered_json fields) {
  fields["msg"] = message;
  LogJson("info", std::move(fields));
}

void LogError(std::string_view message, nlohmann::ordered_json fields) {
  fields["msg"] = message;
  LogJson("error", std::move(fields));
}

namespace {

// What a request echoes into its log line (uid, names) is cut at this many bytes, and our own
// messages (which quote names) at the larger bound, so that a few huge requests cannot crowd real
// lines out of the writer's queue. A cut value ends with a marker saying how much was left out.
constexpr size_t kMaxEchoedBytes = 256;
constexpr size_t kMaxMessageBytes = 1024;

std::string_view Cut(std::string_view value, size_t limit, std::string& scratch) {
  if (value.size() <= limit) return value;
  size_t end = limit;
  // Not in the middle of a UTF-8 sequence: back up over continuation bytes.
  while (end > 0 && (static_cast<unsigned char>(value[end]) & 0xC0) == 0x80) --end;
  scratch.assign(value.substr(0, end));
  scratch += "...[" + std::to_string(value.size() - end) + " more bytes]";
  return scratch;
}

}  // namespace

std::string FormatDecisionLine(const ReviewOutcome& outcome, std::chrono::nanoseconds latency) {
  std::string line;
  line.reserve(320);
  line += R"({"ts":")";
  line += Timestamp();
  line += R"(","level":"info","msg":"decision")";
  const auto key = [&line](std::string_view name) {
    line += ",\"";
    line += name;
    line += "\":";
  };
  std::string scratch;
  const auto text = [&](std::string_view name, std::string_view value,
                        size_t limit = kMaxEchoedBytes) {
    key(name);
    AppendJsonString(line, Cut(value, limit, scratch));
  };
  if (outcome.request) {
    const AdmissionRequest& request = *outcome.request;
    text("uid", request.uid);
    text("resource", request.ResourcePath());
    text("operation", ToString(request.operation));
    text("namespace", request.namespace_name);
    text("name", request.name);
    text("verdict", ToString(outcome.decision.verdict));
    text("reason", outcome.decision.reason);
    if (outcome.decision.would_deny) line += R"(,"wouldDeny":true)";
    if (!outcome.decision.message.empty()) {
      text("message", outcome.decision.message, kMaxMessageBytes);
    }
    if (!outcome.decision.warnings.empty()) {
      key("warnings");
      line += '[';
      for (size_t i = 0; i < outcome.decision.warnings.size(); ++i) {
        if (i > 0) line += ',';
        AppendJsonString(line, Cut(outcome.decision.warnings[i], kMaxMessageBytes, scratch));
      }
      line += ']';
    }
    if (request.dry_run) line += R"(,"dryRun":true)";
  } else {
    text("verdict", "bad-request");
    text("reason", outcome.bad_request_reason);
  }
  key("httpStatus");
  line += std::to_string(outcome.http_status);
  key("latencyMicros");
  line += std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(latency).count());
  line += "}\n";
  return line;
}

void LogDecision(const ReviewOutcome& outcome, std::chrono::nanoseconds latency) {
  Writer().Append(FormatDecisionLine(outcome, latency));
}

}  // namespace cgpu
