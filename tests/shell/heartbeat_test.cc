// Heartbeat and CheckHeartbeat on a real file, with the probe's "now" given: no waiting.
#include "shell/heartbeat.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "support/test_certificates.h"

namespace cgpu {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

// A fixed wall-clock instant the tests date files at (2001-09-09).
const Clock::time_point kThen = Clock::time_point(1'000'000'000s);

void SetMtime(const std::string& path, Clock::time_point when) {
  const auto since_epoch =
      std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch());
  const timespec times[2] = {{since_epoch.count(), 0}, {since_epoch.count(), 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

long long MtimeSeconds(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(stat(path.c_str(), &info), 0) << path;
  return info.st_mtim.tv_sec;
}

class HeartbeatTest : public ::testing::Test {
 protected:
  std::string path_ = testing::MakeTempDir() + "/heartbeat";
};

TEST_F(HeartbeatTest, BeatCreatesTheFileThenRefreshesItsTime) {
  Heartbeat heartbeat(path_);
  heartbeat.Beat();
  SetMtime(path_, kThen);
  heartbeat.Beat();
  EXPECT_GT(MtimeSeconds(path_), 1'000'000'000) << "an existing file's mtime moves to now";
}

TEST_F(HeartbeatTest, AnEmptyPathBeatsNothing) {
  Heartbeat heartbeat("");
  heartbeat.Beat();  // nothing to check but that it neither fails nor writes
}

TEST_F(HeartbeatTest, BeatNeitherBlocksNorThrowsWhereItCannotWrite) {
  // A FIFO would block an open for writing until a reader came: this test would hang.
  ASSERT_EQ(mkfifo(path_.c_str(), 0600), 0);
  Heartbeat(path_).Beat();
  Heartbeat(path_ + "-missing-dir/heartbeat").Beat();
}

TEST_F(HeartbeatTest, AMissingFileIsNotAlive) {
  const auto age = CheckHeartbeat(path_, 3min, kThen);
  ASSERT_FALSE(age.ok());
  EXPECT_EQ(age.status().code(), StatusCode::kNotFound);
  EXPECT_NE(age.status().message().find("no heartbeat file " + path_), std::string::npos)
      << age.status().message();
}

TEST_F(HeartbeatTest, AFileWrittenWithinMaxAgeIsAliveAndSaysHowOld) {
  Heartbeat(path_).Beat();
  SetMtime(path_, kThen);
  const auto age = CheckHeartbeat(path_, 3min, kThen + 10s);
  ASSERT_TRUE(age.ok()) << age.status().message();
  EXPECT_EQ(*age, 10s);
  EXPECT_TRUE(CheckHeartbeat(path_, 3min, kThen + 3min).ok()) << "the limit itself is alive";
}

TEST_F(HeartbeatTest, AFileOlderThanMaxAgeIsNotAliveAndSaysHowOld) {
  Heartbeat(path_).Beat();
  SetMtime(path_, kThen);
  const auto age = CheckHeartbeat(path_, 3min, kThen + 3min + 1s);
  ASSERT_FALSE(age.ok());
  EXPECT_EQ(age.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(age.status().message(),
            "heartbeat file " + path_ +
                " was last written 181.0s ago, more than --max-age 180.0s: the agent's loop has "
                "stopped turning");
}

TEST_F(HeartbeatTest, AFileFarInTheFutureIsNotAlive) {
  // The clock was set back an hour: a stopped loop must not pass for that hour.
  Heartbeat(path_).Beat();
  SetMtime(path_, kThen + 1h);
  EXPECT_TRUE(CheckHeartbeat(path_, 3min, kThen + 1h - 1min).ok());
  const auto age = CheckHeartbeat(path_, 3min, kThen);
  ASSERT_FALSE(age.ok());
  EXPECT_NE(age.status().message().find("3600.0s in the future"), std::string::npos)
      << age.status().message();
}

}  // namespace
}  // namespace cgpu
