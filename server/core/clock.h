// Clock: where the code that waits and measures time reads it from, so that tests can run it on
// time they move themselves (in the spirit of LevelDB's Env and Envoy's TimeSource).
//
// Now() reads a steady (monotonic) time. WaitUntil() blocks on the caller's condition variable
// until the caller's condition holds or the clock reaches a deadline: the caller keeps its own
// wake-ups (a Cancel() that notifies its condition variable), and only the passing of time comes
// from the clock. SystemClock() is std::chrono::steady_clock and a plain wait_until; it is the
// default everywhere. Implementations are thread-safe: one Clock serves any number of threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace cgpu {

using SteadyTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime Now() const = 0;
  // With `lock` held (on entry and on return): waits on `cv` until `done()` or Now() >= deadline,
  // and returns done(). `done` is evaluated with `lock` held; whoever makes it true notifies `cv`.
  virtual bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         SteadyTime deadline, const std::function<bool()>& done) const = 0;
};

// std::chrono::steady_clock. A process-wide instance that lives forever.
const Clock& SystemClock();

}  // namespace cgpu
