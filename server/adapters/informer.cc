#include "adapters/informer.h"

#include <algorithm>
#include <random>

#include "adapters/kube_client.h"
#include "core/backoff.h"

namespace cgpu {
namespace {

// A watch that delivered nothing and closed sooner than this counts as a failure for back-off,
// so a server that accepts and at once closes every watch is not hammered (client-go does the
// same with its "very short watch" check).
constexpr auto kHealthyWatch = std::chrono::seconds(1);

int64_t NanosOf(SteadyTime time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

std::string StringAt(const SimdjsonView& object, const char* outer, const char* inner) {
  return std::string(object.Member(outer).Member(inner).String());
}

// Parses `text` into `parser`'s document, which `document` then views. With `padded` (the
// caller's buffer has SIMDJSON_PADDING readable bytes past the end) the text is parsed in place;
// otherwise it is first copied into the parser's own padded buffer, kept for the next call. The
// parser grows a quarter beyond what is needed, so that pages of slightly varying size do not
// reallocate it each time. Error codes only.
simdjson::error_code Parse(simdjson::dom::parser& parser, std::string_view text, bool padded,
                           SimdjsonView& document) {
  if (parser.capacity() < text.size()) {
    if (auto code = parser.allocate(text.size() + text.size() / 4); code != simdjson::SUCCESS) {
      return code;
    }
  }
  simdjson::dom::element root;
  auto code = parser.parse(text.data(), text.size(), /*realloc_if_needed=*/!padded).get(root);
  if (code == simdjson::SUCCESS) document = SimdjsonView(root);
  return code;
}

// A std::string is padded when its spare capacity covers the padding (simdjson's own rule).
simdjson::error_code Parse(simdjson::dom::parser& parser, const std::string& text,
                           SimdjsonView& document) {
  return Parse(parser, text, text.capacity() - text.size() >= simdjson::SIMDJSON_PADDING, document);
}

}  // namespace

std::string InformerStats::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void InformerStats::SetLastError(std::string message) {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = std::move(message);
}

Informer::Informer(const KubeApi& client, InformerOptions options, WatchHandler& handler)
    : client_(client),
      options_(std::move(options)),
      handler_(handler),
      random_(options_.random),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock()),
      unwatched_since_ns_(NanosOf(clock_.Now())) {
  if (!random_) {
    random_ = [engine = std::mt19937_64(std::random_device{}()),
               uniform = std::uniform_real_distribution<double>(0.0, 1.0)]() mutable {
      return uniform(engine);
    };
  }
}

Informer::~Informer() { Stop(); }

void Informer::Start() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (thread_.joinable() || cancel_.cancelled()) return;
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  cancel_.Cancel();
  if (thread_.joinable()) thread_.join();
}

std::string Informer::resource_version() const {
  std::lock_guard<std::mutex> lock(rv_mu_);
  return shared_resource_version_;
}

void Informer::SetResourceVersion(std::string resource_version) {
  if (resource_version.empty() || resource_version == resource_version_) return;
  resource_version_ = std::move(resource_version);
  std::lock_guard<std::mutex> lock(rv_mu_);
  shared_resource_version_ = resource_version_;
}

std::string Informer::WithQuery(const std::string& query) const {
  const char separator = options_.collection_path.find('?') == std::string::npos ? '?' : '&';
  return options_.collection_path + separator + query;
}

std::chrono::milliseconds Informer::Backoff(int failures) {
  return BackoffDelay(options_.min_backoff, options_.max_backoff, failures, random_());
}

std::chrono::milliseconds Informer::time_without_watch() const {
  const int64_t since = unwatched_since_ns_;
  if (since == 0) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::nanoseconds(std::max<int64_t>(0, NanosOf(clock_.Now()) - since)));
}

Informer::Outcome Informer::Fail(Outcome outcome, const std::string& message) {
  ++stats_.errors;
  stats_.SetLastError(options_.collection_path + ": " + message);
  return outcome;
}

void Informer::Run() {
  bool need_list = true;
  while (!cancel_.cancelled()) {
    Outcome outcome;
    // The handler is someone else's code, and JSON access can throw: nothing leaves this thread.
    try {
      outcome = need_list ? List() : Watch();
    } catch (const std::exception& error) {
      outcome = Fail(Outcome::kRelist, std::string("unexpected exception: ") + error.what());
    } catch (...) {
      outcome = Fail(Outcome::kRelist, "unexpected exception");
    }
    watching_ = false;
    switch (outcome) {
      case Outcome::kCancelled:
        return;
      case Outcome::kListed:
        need_list = false;
        continue;  // watch at once: the list's resourceVersion is fresh
      case Outcome::kStreamEnded:
      case Outcome::kStreamDropped:
        ++stats_.watch_restarts;
        need_list = false;
        break;
      case Outcome::kGone:
        ++stats_.relists;
        need_list = true;
        break;
      case Outcome::kRetry:
        break;
      case Outcome::kRelist:
        need_list = true;
        break;
    }
    if (cancel_.WaitFor(Backoff(failures_), clock_)) return;
    failures_ = std::min(failures_ + 1, 30);
  }
}

ListResult ListCollection(const KubeApi& client, const ListRequest& request,
                          WatchHandler& handler) {
  ListResult result;
  auto cancelled = [&] { return request.cancel != nullptr && request.cancel->cancelled(); };
  auto fail = [&](ListResult::Outcome outcome, std::string error, int http_status,
                  StatusCode code) {
    result.outcome = outcome;
    result.error = std::move(error);
    result.http_status = http_status;
    result.code = code;
    return result;
  };
  const char separator = request.collection_path.find('?') == std::string::npos ? '?' : '&';
  std::string continue_token;
  std::string list_version;
  bool started = false;
  // One parser for all the pages of this list, freed when it is done: it holds ~15 bytes per byte
  // of the largest page, which the watch's small events do not need.
  simdjson::dom::parser parser;
  int limit = request.page_size;
  while (true) {
    std::string path = request.collection_path + separator + "limit=" + std::to_string(limit);
    if (!continue_token.empty()) path += "&continue=" + EscapeQueryValue(continue_token);
    StatusOr<KubeResponse> response =
        request.cancel == nullptr && request.deadline
            ? client.Get(path, *request.deadline, request.max_page_bytes)
            : client.Get(path, request.cancel, request.max_page_bytes);
    if (cancelled()) return fail(ListResult::Outcome::kCancelled, "", 0, StatusCode::kOk);
    if (!response.ok() && response.status().code() == StatusCode::kResourceExhausted && limit > 1) {
      limit = std::max(1, limit / 2);  // the same page again, smaller; later pages too
      ++result.smaller_pages;
      continue;
    }
    if (!response.ok()) {
      return fail(ListResult::Outcome::kFailed, "list: " + response.status().message(), 0,
                  response.status().code());
    }
    if (response->status == 410) {
      // An expired continue token (or a compacted list resourceVersion): the snapshot is gone and
      // the only consistent thing to do is to start the list again.
      return fail(ListResult::Outcome::kGone,
                  "list: " + DescribeHttpError(response->status, response->body), 410,
                  StatusCode::kOk);
    }
    if (response->status != 200) {
      return fail(ListResult::Outcome::kFailed,
                  "list: " + DescribeHttpError(response->status, response->body), response->status,
                  StatusCode::kOk);
    }
    SimdjsonView page;
    if (Parse(parser, response->body, page) != simdjson::SUCCESS || !page.is_object()) {
      return fail(ListResult::Outcome::kFailed, "list: the answer is not a Kubernetes list", 200,
                  StatusCode::kOk);
    }
    const SimdjsonView items = page.Member("items");
    if (!items.is_array() && !items.is_null()) {
      return fail(ListResult::Outcome::kFailed, "list: the answer is not a Kubernetes list", 200,
                  StatusCode::kOk);
    }
    if (!started) {
      handler.OnListStart();
      started = true;
    }
    bool all_objects = true;
    items.ForEachElement([&](const SimdjsonView& item) {
      if (!all_objects) return;
      if (!item.is_object()) {
        all_objects = false;
        return;
      }
      handler.OnObject(item);
      ++result.objects;
    });
    if (!all_objects) {
      return fail(ListResult::Outcome::kFailed, "list: an item is not an object", 200,
                  StatusCode::kOk);
    }
    ++result.pages;
    list_version = StringAt(page, "metadata", "resourceVersion");
    continue_token = StringAt(page, "metadata", "continue");
    if (continue_token.empty()) break;
    if (cancelled()) return fail(ListResult::Outcome::kCancelled, "", 0, StatusCode::kOk);
  }
  if (list_version.empty()) {
    return fail(ListResult::Outcome::kFailed,
                "list: the answer carries no metadata.resourceVersion", 200, StatusCode::kOk);
  }
  handler.OnListEnd();
  result.outcome = ListResult::Outcome::kListed;
  result.resource_version = std::move(list_version);
  return result;
}

Informer::Outcome Informer::List() {
  ListRequest request;
  request.collection_path = options_.collection_path;
  request.page_size = options_.page_size;
  request.max_page_bytes = options_.max_page_bytes;
  request.cancel = &cancel_;
  const ListResult result = ListCollection(client_, request, handler_);
  stats_.smaller_pages += result.smaller_pages;
  switch (result.outcome) {
    case ListResult::Outcome::kCancelled:
      return Outcome::kCancelled;
    case ListResult::Outcome::kGone:
      stats_.SetLastError(options_.collection_path + ": " + result.error + " (listing again)");
      return Outcome::kGone;
    case ListResult::Outcome::kFailed:
      return Fail(Outcome::kRetry, result.error);
    case ListResult::Outcome::kListed:
      break;
  }
  SetResourceVersion(result.resource_version);
  ++stats_.lists;
  synced_ = true;
  return Outcome::kListed;
}

Informer::Outcome Informer::Watch() {
  const std::string path = WithQuery(
      "watch=1&resourceVersion=" + EscapeQueryValue(resource_version_) +
      "&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(options_.watch_timeout_seconds));
  int status = 0;
  std::string error_body;
  Outcome event_outcome = Outcome::kStreamEnded;  // replaced when an event stops the stream
  int delivered = 0;
  simdjson::dom::parser parser;  // reused for every event of this stream
  SteadyTime opened_at = clock_.Now();
  const Status result = client_.Stream(
      path,
      [&](std::string_view line) { return HandleEvent(line, parser, event_outcome, delivered); },
      &status, &error_body, &cancel_,
      [&](int code) {
        if (code != 200) return;
        opened_at = clock_.Now();
        ++stats_.watch_starts;
        watching_ = true;
        unwatched_since_ns_ = 0;
      });
  watching_ = false;
  if (unwatched_since_ns_ == 0) unwatched_since_ns_ = NanosOf(clock_.Now());
  if (cancel_.cancelled()) return Outcome::kCancelled;
  if (status == 410) {
    stats_.SetLastError(options_.collection_path +
                        ": watch: " + DescribeHttpError(status, error_body) + " (listing again)");
    return Outcome::kGone;
  }
  if (status != 200) {
    const std::string why = status == 0 ? result.message() : DescribeHttpError(status, error_body);
    return Fail(Outcome::kRetry, "watch: " + why);
  }
  if (delivered > 0 || clock_.Now() - opened_at >= kHealthyWatch) failures_ = 0;
  if (event_outcome != Outcome::kStreamEnded) return event_outcome;
  if (!result.ok()) return Fail(Outcome::kStreamDropped, "watch dropped: " + result.message());
  return Outcome::kStreamEnded;
}

// One line of a watch: {"type": ..., "object": {...}}. Returns false to end the stream, with
// `outcome` saying what to do next.
bool Informer::HandleEvent(std::string_view line, simdjson::dom::parser& parser, Outcome& outcome,
                           int& delivered) {
  SimdjsonView event;
  const bool parsed = Parse(parser, line, /*padded=*/false, event) == simdjson::SUCCESS;
  const SimdjsonView type = event.Member("type");
  const SimdjsonView object = event.Member("object");
  if (!parsed || !event.is_object() || type.TypeName() != "string" || !object.is_object()) {
    outcome = Fail(Outcome::kRelist, "watch: malformed event: " + std::string(line.substr(0, 200)));
    return false;
  }
  const std::string kind(type.String());
  try {
    if (kind == "ADDED" || kind == "MODIFIED") {
      handler_.OnObject(object);
    } else if (kind == "DELETED") {
      handler_.OnDelete(object);
    } else if (kind == "BOOKMARK") {
      ++stats_.bookmarks;
      ++delivered;
      SetResourceVersion(StringAt(object, "metadata", "resourceVersion"));
      return true;
    } else if (kind == "ERROR") {
      const SimdjsonView message_value = object.Member("message");
      const std::string message = message_value.TypeName() == "string"
                                      ? std::string(message_value.String())
                                      : object.Json().substr(0, 200);
      if (object.Member("code").Int() == 410) {
        stats_.SetLastError(options_.collection_path + ": watch: " + message + " (listing again)");
        outcome = Outcome::kGone;
      } else {
        // Watching again from the same resourceVersion is safe: the server replays what follows
        // it, or answers 410 if it cannot.
        outcome = Fail(Outcome::kRetry, "watch: ERROR event: " + message);
      }
      return false;
    } else {
      outcome = Fail(Outcome::kRelist, "watch: unknown event type \"" + kind + "\"");
      return false;
    }
  } catch (const std::exception& error) {
    outcome = Fail(Outcome::kRelist, "watch: the handler threw on " + kind + ": " + error.what());
    return false;
  } catch (...) {
    outcome = Fail(Outcome::kRelist, "watch: the handler threw on " + kind);
    return false;
  }
  ++stats_.events;
  ++delivered;
  SetResourceVersion(StringAt(object, "metadata", "resourceVersion"));
  return true;
}

}  // namespace cgpu
