#include "core/backoff.h"

#include <algorithm>
#include <cstdint>

namespace cgpu {

std::chrono::milliseconds BackoffDelay(std::chrono::milliseconds first,
                                       std::chrono::milliseconds max, int retry, double unit) {
  const double ceiling = std::min(static_cast<double>(max.count()),
                                  static_cast<double>(first.count()) *
                                      static_cast<double>(uint64_t{1} << std::clamp(retry, 0, 30)));
  return std::chrono::milliseconds(static_cast<int64_t>(ceiling * std::clamp(unit, 0.0, 1.0)));
}

}  // namespace cgpu
