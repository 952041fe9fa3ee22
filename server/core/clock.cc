#include "core/clock.h"

namespace cgpu {
namespace {

class SteadyClock final : public Clock {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 SteadyTime deadline, const std::function<bool()>& done) const override {
    return cv.wait_until(lock, deadline, done);
  }
};

}  // namespace

const Clock& SystemClock() {
  static const SteadyClock* const clock = new SteadyClock();
  return *clock;
}

}  // namespace cgpu
