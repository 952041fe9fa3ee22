// Structured logging: one JSON object per line on stderr.
//
// Lines are built whole by the calling thread and handed to one writer thread, which writes
// whatever has queued up (at most 20 ms' worth) with a single write: a request never waits for
// stderr, and lines from different threads never interleave. If stderr cannot keep up, lines past a
// bound (8 MiB queued) are dropped and the drop is reported in a later line rather than blocking
// requests. FlushLogs() (also run at exit) writes everything queued. The per-review line is written
// straight into a string (no JSON tree: it is the one line per request); FormatDecisionLine is
// pure so its shape can be tested.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "shell/review_handler.h"

namespace cgpu {

// Adds "ts" and "level", then writes the object as one line.
void LogJson(std::string_view level, nlohmann::ordered_json fields);
void LogInfo(std::string_view message,
             nlohmann::ordered_json fields = nlohmann::ordered_json::object());
void LogError(std::string_view message,
              nlohmann::ordered_json fields = nlohmann::ordered_json::object());
// Blocks until every line queued so far is written.
void FlushLogs();

// The one log line per answered review, newline included: ts, level, msg, then uid, resource,
// operation, namespace/name, verdict, reason, latency (or the bad-request reason and HTTP status).
std::string FormatDecisionLine(const ReviewOutcome& outcome, std::chrono::nanoseconds latency);
void LogDecision(const ReviewOutcome& outcome, std::chrono::nanoseconds latency);

}  // namespace cgpu
