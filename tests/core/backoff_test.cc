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

}  // namespace
}  // namespace cgpu
