#include "util/interrupt.h"

#include <atomic>
#include <csignal>
#include <cstring>

namespace lethe {
namespace {

// Lock-free, so the handler may store to it (async-signal-safe).
std::atomic<int> g_pending{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void record_signal(int signal) { g_pending.store(signal, std::memory_order_relaxed); }

void install(int signal) {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = record_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: a read or write in progress completes instead of failing with EINTR.
  // SA_RESETHAND: the second signal finds the default action and ends the process.
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  if (sigaction(signal, &action, nullptr) != 0)
    fail("cannot install the {} handler: {}", signal_name(signal), std::strerror(errno));
}

}  // namespace

void install_interrupt_handlers() {
  install(SIGINT);
  install(SIGTERM);
  std::signal(SIGXFSZ, SIG_IGN);
}

int pending_interrupt() { return g_pending.load(std::memory_order_relaxed); }

void throw_interrupted(std::string_view where) {
  const int signal = pending_interrupt();
  throw Interrupted(signal, fmt::format("interrupted by {} {}", signal_name(signal), where));
}

void request_interrupt(int signal) { g_pending.store(signal, std::memory_order_relaxed); }
void clear_interrupt() { g_pending.store(0, std::memory_order_relaxed); }

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return fmt::format("signal {}", signal);
  }
}

}  // namespace lethe
