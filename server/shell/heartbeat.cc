#include "shell/heartbeat.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shell/log.h"

namespace cgpu {
namespace {

// "312.4s": ages and limits are seconds to minutes; a tenth is enough to compare them.
std::string Seconds(std::chrono::milliseconds duration) {
  const long long tenths = duration.count() / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
}

}  // namespace

Heartbeat::Heartbeat(std::string path) : path_(std::move(path)) {}

void Heartbeat::Beat() {
  if (path_.empty()) return;
  // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader, stopping the very
  // loop this proves is turning. futimens(nullptr) sets the mtime to now even when the file
  // already existed.
  const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0644);
  std::string error;
  if (fd < 0 || futimens(fd, nullptr) != 0) error = std::strerror(errno);
  if (fd >= 0) close(fd);
  if (error == failing_) return;
  if (error.empty()) {
    LogInfo("heartbeat file written again", {{"file", path_}});
  } else {
    LogError("cannot write the heartbeat file: the liveness probe will fail",
             {{"file", path_}, {"error", error}});
  }
  failing_ = error;
}

StatusOr<std::chrono::milliseconds> CheckHeartbeat(const std::string& path,
                                                   std::chrono::milliseconds max_age,
                                                   std::chrono::system_clock::time_point now) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT) {
      return NotFound("no heartbeat file " + path +
                      ": the agent has not started its loop, or writes another --heartbeat-file");
    }
    return Unavailable("cannot read heartbeat file " + path + ": " + std::strerror(error));
  }
  const auto modified = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(info.st_mtim.tv_sec) +
          std::chrono::nanoseconds(info.st_mtim.tv_nsec)));
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - modified);
  if (age > max_age) {
    return DeadlineExceeded("heartbeat file " + path + " was last written " + Seconds(age) +
                            " ago, more than --max-age " + Seconds(max_age) +
                            ": the agent's loop has stopped turning");
  }
  if (-age > max_age) {
    return DeadlineExceeded("heartbeat file " + path + " is dated " + Seconds(-age) +
                            " in the future, more than --max-age " + Seconds(max_age) +
                            ": the clock was set back and the agent has not written it since");
  }
  return age;
}

}  // namespace cgpu
