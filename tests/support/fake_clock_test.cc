// The tests' clock: time moves only when the test moves it, a wait ends at its deadline on that
// time or when its condition holds, and tests can see who is waiting and for how long.
#include "support/fake_clock.h"

#include <gtest/gtest.h>

#include <future>

namespace cgpu::testing {
namespace {

using namespace std::chrono_literals;

// A waiter on `clock` until `deadline_in` from now, or until Wake().
class ClockWaiter {
 public:
  ClockWaiter(const FakeClock& clock, std::chrono::nanoseconds deadline_in) {
    result_ = std::async(std::launch::async, [this, &clock, deadline_in] {
      std::unique_lock<std::mutex> lock(mu_);
      return clock.WaitUntil(lock, cv_, clock.Now() + deadline_in, [this] { return woken_; });
    });
  }
  void Wake() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      woken_ = true;
    }
    cv_.notify_all();
  }
  bool Ended() { return result_.wait_for(0s) == std::future_status::ready; }
  bool Result() { return result_.get(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  std::future<bool> result_;
};

TEST(FakeClockTest, TimeMovesOnlyByAdvance) {
  FakeClock clock;
  const SteadyTime start = clock.Now();
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(1500ms);
  EXPECT_EQ(clock.Now() - start, 1500ms);
}

TEST(FakeClockTest, AWaitEndsWhenTheTimeReachesItsDeadline) {
  FakeClock clock;
  ClockWaiter waiter(clock, 10s);
  ASSERT_TRUE(clock.WaitForSleepers(1));
  clock.Advance(9s);
  EXPECT_EQ(clock.sleepers(), 1);  // 1 s to go: still waiting
  EXPECT_FALSE(waiter.Ended());
  clock.Advance(1s);
  EXPECT_FALSE(waiter.Result());  // the time ran out, the condition never held
  EXPECT_EQ(clock.sleepers(), 0);
  EXPECT_EQ(clock.waits(), (std::vector<std::chrono::nanoseconds>{10s}));
}

TEST(FakeClockTest, AWaitEndsWhenItsConditionHoldsWithoutTimePassing) {
  FakeClock clock;
  const SteadyTime start = clock.Now();
  ClockWaiter waiter(clock, 1h);
  ASSERT_TRUE(clock.WaitForSleepers(1));
  waiter.Wake();
  EXPECT_TRUE(waiter.Result());
  EXPECT_EQ(clock.Now(), start);
}

TEST(FakeClockTest, AdvanceToNextDeadlineLetsTheEarliestWaiterGo) {
  FakeClock clock;
  const SteadyTime start = clock.Now();
  ClockWaiter soon(clock, 3s);
  ClockWaiter later(clock, 7s);
  ASSERT_TRUE(clock.WaitForSleepers(2));
  EXPECT_EQ(clock.AdvanceToNextDeadline(), 3s);
  EXPECT_FALSE(soon.Result());
  ASSERT_TRUE(clock.WaitForSleepers(1));
  EXPECT_FALSE(later.Ended());
  EXPECT_EQ(clock.AdvanceToNextDeadline(), 4s);
  EXPECT_FALSE(later.Result());
  EXPECT_EQ(clock.Now() - start, 7s);
  EXPECT_EQ(clock.AdvanceToNextDeadline(), 0s);  // nobody waits: the time stays
}

TEST(FakeClockTest, APastDeadlineDoesNotWait) {
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_FALSE(clock.WaitUntil(lock, cv, clock.Now() - 1s, [] { return false; }));
  EXPECT_TRUE(clock.WaitUntil(lock, cv, clock.Now() + 1h, [] { return true; }));
}

}  // namespace
}  // namespace cgpu::testing
