#pragma once
// Clean stops on SIGINT and SIGTERM. The handler only records the signal; long loops call
// check_interrupt() between steps (never inside a parallel region), which throws Interrupted so
// the stack unwinds normally: a file being written is finished or discarded by write_file_atomic,
// never left half-written, and the last complete checkpoint stays in place. A second signal of
// the same kind ends the process at once, the default way.
#include <string>
#include <string_view>

#include "util/error.h"

namespace lethe {

class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& what) : Error(what), signal_(signal) {}
  int signal() const { return signal_; }
  // The shell's convention for a process ended by a signal: 128 + its number (130, 143).
  int exit_code() const { return 128 + signal_; }

 private:
  int signal_;
};

// Installs the SIGINT and SIGTERM handlers, and ignores SIGXFSZ so that a write beyond a file
// size limit fails with EFBIG (reported, the temporary file removed) instead of killing lethe.
void install_interrupt_handlers();

// The signal received since the handlers were installed (or the last clear), else 0.
int pending_interrupt();

// Throws Interrupted ("interrupted by SIGINT <where>") for the pending signal.
[[noreturn]] void throw_interrupted(std::string_view where);

// Throws Interrupted when a signal is pending; `where` ("at epoch {}, batch {}") is formatted
// only then, so the check costs one atomic load.
template <typename... Args>
void check_interrupt(fmt::format_string<Args...> where, Args&&... args) {
  if (pending_interrupt() != 0) throw_interrupted(fmt::format(where, std::forward<Args>(args)...));
}

// For tests: pretend `signal` arrived, or forget a pending one.
void request_interrupt(int signal);
void clear_interrupt();

// "SIGINT", "SIGTERM", else "signal N".
std::string signal_name(int signal);

}  // namespace lethe
