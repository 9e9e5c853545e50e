#pragma once
// One exception type for everything lethe reports to a user. The message says what was wrong
// and where (file, flag, shape, call); the CLI prints it as one line `lethe: error: <what>`.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace lethe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A usage error (bad flag or flag value): the CLI exits 2 instead of 1.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace lethe

// Internal invariant: a failure here is a bug in lethe, reported with file and line.
#define LETHE_CHECK(cond, ...)                                                         \
  do {                                                                                 \
    if (!(cond))                                                                       \
      throw ::lethe::Error(fmt::format("{} ({}:{}: check `{}` failed)",                \
                                       fmt::format(__VA_ARGS__), __FILE__, __LINE__, #cond)); \
  } while (0)
