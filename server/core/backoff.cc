#include "core/backoff.h"

#include <algorithm>
#include <cstdint>

namespace cgpu {
namespace {

int64_t DelayTicks(int64_t first, int64_t max, int retry, double unit) {
  const double ceiling = std::min(
      static_cast<double>(max),
      static_cast<double>(first) * static_cast<double>(uint64_t{1} << std::clamp(retry, 0, 30)));
  return static_cast<int64_t>(ceiling * std::clamp(unit, 0.0, 1.0));
}

}  // namespace

std::chrono::milliseconds BackoffDelay(std::chrono::milliseconds first,
                                       std::chrono::milliseconds max, int retry, double unit) {
  return std::chrono::milliseconds(DelayTicks(first.count(), max.count(), retry, unit));
}

std::chrono::microseconds BackoffDelay(std::chrono::microseconds first,
                                       std::chrono::microseconds max, int retry, double unit) {
  return std::chrono::microseconds(DelayTicks(first.count(), max.count(), retry, unit));
}

}  // namespace cgpu
