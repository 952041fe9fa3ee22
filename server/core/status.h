// Status and StatusOr<T>: errors as values.
//
// Every layer below the shell reports failure by returning a Status (or a StatusOr<T> carrying
// either a value or a Status); no exception crosses a layer boundary. A Status is ok() or holds a
// code and a message written for a person: the message names what was wrong and where.
// Both types are plain values, cheap to move, and safe to use from any thread.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace cgpu {

enum class StatusCode {
  kOk,
  kInvalidArgument,    // the input is malformed or violates a documented contract
  kNotFound,           // a named file, key or object does not exist
  kUnavailable,        // a peer (API server, file system) could not be reached; retrying may help
  kDeadlineExceeded,   // a peer did not answer before the caller's deadline
  kResourceExhausted,  // an answer larger than the caller's bound (it was not kept)
  kAborted,            // a compare-and-swap lost to another writer: read again, then retry
  kInternal,           // a bug: an invariant of ours did not hold
};

class Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}
inline Status NotFound(std::string message) {
  return Status(StatusCode::kNotFound, std::move(message));
}
inline Status Unavailable(std::string message) {
  return Status(StatusCode::kUnavailable, std::move(message));
}
inline Status DeadlineExceeded(std::string message) {
  return Status(StatusCode::kDeadlineExceeded, std::move(message));
}
inline Status ResourceExhausted(std::string message) {
  return Status(StatusCode::kResourceExhausted, std::move(message));
}
inline Status Aborted(std::string message) {
  return Status(StatusCode::kAborted, std::move(message));
}
inline Status Internal(std::string message) {
  return Status(StatusCode::kInternal, std::move(message));
}

// Holds either a T or a non-ok Status. Accessing value() of an error is a bug (asserted).
template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : state_(std::move(value)) {}        // NOLINT: implicit by design
  StatusOr(Status status) : state_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(state_).ok() && "StatusOr needs a value or an error");
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(state_);
  }
  const T& value() const& { return std::get<T>(state_); }
  T& value() & { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace cgpu
