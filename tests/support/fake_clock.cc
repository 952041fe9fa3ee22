#include "support/fake_clock.h"

#include <algorithm>

namespace cgpu::testing {

using namespace std::chrono_literals;

// An arbitrary start far from zero, so that "time since" arithmetic never meets the epoch.
FakeClock::FakeClock() : now_(SteadyTime() + std::chrono::hours(1000)) {}

SteadyTime FakeClock::Now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

bool FakeClock::WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                          SteadyTime deadline, const std::function<bool()>& done) const {
  Sleeper sleeper{deadline, &cv};
  {
    std::lock_guard<std::mutex> own(mu_);
    sleepers_.push_back(&sleeper);
    waits_.push_back(deadline - now_);
  }
  changed_.notify_all();
  while (!done() && Now() < deadline) {
    // Advance() notifies `cv` without holding the caller's mutex, so its notification can fall
    // between the check above and this wait: the short real-time bound picks that case up. It
    // delays the waiter, never decides the outcome.
    cv.wait_for(lock, 2ms);
  }
  {
    std::lock_guard<std::mutex> own(mu_);
    sleepers_.erase(std::find(sleepers_.begin(), sleepers_.end(), &sleeper));
  }
  changed_.notify_all();
  return done();
}

void FakeClock::Advance(std::chrono::nanoseconds by) {
  std::lock_guard<std::mutex> lock(mu_);
  now_ += by;
  // Under mu_: a sleeper leaves sleepers_ (under mu_) before its condition variable can go.
  for (Sleeper* sleeper : sleepers_) {
    if (sleeper->deadline <= now_) sleeper->cv->notify_all();
  }
  changed_.notify_all();
}

int FakeClock::sleepers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(sleepers_.size());
}

bool FakeClock::WaitForSleepers(int count, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, timeout,
                           [&] { return static_cast<int>(sleepers_.size()) >= count; });
}

std::chrono::nanoseconds FakeClock::AdvanceToNextDeadline() {
  std::chrono::nanoseconds by{0};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (sleepers_.empty()) return by;
    SteadyTime earliest = SteadyTime::max();
    for (const Sleeper* sleeper : sleepers_) earliest = std::min(earliest, sleeper->deadline);
    by = std::max(std::chrono::nanoseconds(0), earliest - now_);
  }
  Advance(by);
  return by;
}

std::vector<std::chrono::nanoseconds> FakeClock::waits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waits_;
}

}  // namespace cgpu::testing
