// How long to wait before retrying, for every retry loop of cgpu-guard (the informers, the
// node-facts agent, the Event recorder, the chart's helper commands): exponential back-off with
// full jitter. The n-th retry (n = 0 for the first) waits a random share of
// min(first * 2^n, max), so that many clients that failed together do not retry in step.
// Pure: the random draw is passed in. In milliseconds for the retry loops, or in microseconds for
// waits of a few milliseconds that must not round to nothing (the claims' compare-and-swap).
#pragma once

#include <chrono>

namespace cgpu {

// `unit`: the random draw, in [0, 1] (1: the whole ceiling; values outside are clamped).
std::chrono::milliseconds BackoffDelay(std::chrono::milliseconds first,
                                       std::chrono::milliseconds max, int retry, double unit);
std::chrono::microseconds BackoffDelay(std::chrono::microseconds first,
                                       std::chrono::microseconds max, int retry, double unit);

}  // namespace cgpu
