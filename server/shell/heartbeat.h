// A liveness signal through the file system, for a loop that serves nothing a probe could ask.
//
// The loop calls Beat() each time it turns; Beat() creates the file or sets its mtime to now.
// CheckHeartbeat() is the other end, run as a separate process by an exec liveness probe
// (`cgpu-guard node-facts --alive`: the same binary, so the probe needs nothing else from the
// image): it passes while the mtime is recent. A file says the loop turns, nothing more: a loop
// that keeps failing its passes but keeps handling the failures is alive. Neither is thread-safe;
// each Heartbeat belongs to the one loop that beats it.
#pragma once

#include <chrono>
#include <string>

#include "core/status.h"

namespace cgpu {

class Heartbeat {
 public:
  explicit Heartbeat(std::string path);  // empty: no heartbeat, Beat() does nothing

  // Never blocks (a FIFO at the path is an error, not a wait for a reader) and never throws. A
  // failure is logged when it starts and when it clears, not at every beat: the probe failing
  // is the signal, the log says why.
  void Beat();

 private:
  std::string path_;
  std::string failing_;  // the last beat's error; empty while beats succeed
};

// How long ago the file at `path` was last written, as seen at `now`: ok when within `max_age`
// (either side of `now`: a clock set back must not hide a stopped loop for as long as it was set
// back), else NotFound (no file), Unavailable (unreadable) or DeadlineExceeded (too old), each
// with a message naming the file.
StatusOr<std::chrono::milliseconds> CheckHeartbeat(const std::string& path,
                                                   std::chrono::milliseconds max_age,
                                                   std::chrono::system_clock::time_point now);

}  // namespace cgpu
