#pragma once
// The clock lethe times its stages with, and the seconds since a point of it.
#include <chrono>

namespace lethe {

using Clock = std::chrono::steady_clock;

inline double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace lethe
