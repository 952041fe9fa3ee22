#include "core/backoff.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DoublesFromTheFirstUpToTheCapAndTakesTheDrawsShare) {
  const milliseconds first(100), max(1'000);
  EXPECT_EQ(BackoffDelay(first, max, 0, 1.0), milliseconds(100));
  EXPECT_EQ(BackoffDelay(first, max, 1, 1.0), milliseconds(200));
  EXPECT_EQ(BackoffDelay(first, max, 3, 1.0), milliseconds(800));
  EXPECT_EQ(BackoffDelay(first, max, 4, 1.0), milliseconds(1'000));    // capped
  EXPECT_EQ(BackoffDelay(first, max, 500, 1.0), milliseconds(1'000));  // no overflow
  EXPECT_EQ(BackoffDelay(first, max, 3, 0.5), milliseconds(400));      // full jitter
  EXPECT_EQ(BackoffDelay(first, max, 3, 0.0), milliseconds(0));
  EXPECT_EQ(BackoffDelay(first, max, 3, 7.0), milliseconds(800));  // a draw out of range is clamped
  EXPECT_EQ(BackoffDelay(first, max, -2, 1.0), milliseconds(100));
}

TEST(BackoffTest, InMicrosecondsAShareOfAMillisecondIsKept) {
  using std::chrono::microseconds;
  const microseconds first = milliseconds(1), max = milliseconds(16);
  EXPECT_EQ(BackoffDelay(first, max, 0, 0.5), microseconds(500));
  EXPECT_EQ(BackoffDelay(first, max, 2, 0.25), microseconds(1'000));
  EXPECT_EQ(BackoffDelay(first, max, 9, 0.75), microseconds(12'000));  // capped at 16 ms
  // The same draw in milliseconds rounds a share of the first step down to nothing.
  EXPECT_EQ(BackoffDelay(milliseconds(1), milliseconds(16), 0, 0.5), milliseconds(0));
}

}  // namespace
}  // namespace cgpu
