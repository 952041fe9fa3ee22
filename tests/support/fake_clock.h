// FakeClock: a Clock (core/clock.h) whose time moves only when the test says so.
//
// Now() starts at a fixed point and moves by Advance(). A WaitUntil() on it returns once its
// condition holds or Advance() has brought the time to its deadline, never because real time
// passed. A test synchronises with the code under test through sleepers(): WaitForSleepers(n)
// returns once n threads are waiting on the clock, i.e. the code has reached its wait (a back-off,
// an interval), and then Advance() lets them go. Every wait is remembered (waits()) with the
// duration asked for, so tests can assert exact back-off delays. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "core/clock.h"

namespace cgpu::testing {

class FakeClock final : public ::cgpu::Clock {
 public:
  FakeClock();

  SteadyTime Now() const override;
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 SteadyTime deadline, const std::function<bool()>& done) const override;

  // Moves the time on and wakes every waiter whose deadline it reaches.
  void Advance(std::chrono::nanoseconds by);
  // Threads inside WaitUntil() right now.
  int sleepers() const;
  // Waits (in real time, up to `timeout`) until at least `count` threads are inside WaitUntil().
  bool WaitForSleepers(int count,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // Advances to the earliest deadline of the threads waiting now (nothing when none is); returns
  // how far it moved.
  std::chrono::nanoseconds AdvanceToNextDeadline();
  // Every wait begun so far: how long each asked to wait (deadline - Now() at its start).
  std::vector<std::chrono::nanoseconds> waits() const;

 private:
  struct Sleeper {
    SteadyTime deadline;
    std::condition_variable* cv;
  };

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;              // sleepers_ or now_ changed
  SteadyTime now_;                                       // guarded by mu_
  mutable std::vector<Sleeper*> sleepers_;               // guarded by mu_
  mutable std::vector<std::chrono::nanoseconds> waits_;  // guarded by mu_
};

}  // namespace cgpu::testing
