#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace lethe {

Progress::Progress(bool quiet) : quiet_(quiet), tty_(::isatty(STDERR_FILENO) != 0) {}

void Progress::update(const std::string& label, int64_t done, int64_t total) {
  if (quiet_ || !tty_ || total <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (label != last_label_ || done <= 1) {
    last_label_ = label;
    started_ = now;
  } else if (done < total && now - last_draw_ < std::chrono::milliseconds(100)) {
    return;  // redraw at most ten times a second
  }
  last_draw_ = now;
  constexpr int kWidth = 30;
  const double frac = static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double eta = done > 0 ? elapsed * static_cast<double>(total - done) / static_cast<double>(done) : 0.0;
  std::fprintf(stderr, "\r%s [%s] %lld/%lld  eta %.0fs \x1b[K", label.c_str(), bar.c_str(), static_cast<long long>(done),
               static_cast<long long>(total), eta);
  std::fflush(stderr);
  bar_shown_ = true;
}

void Progress::line(const std::string& text) {
  if (quiet_) return;
  if (bar_shown_) std::fputs("\r\x1b[K", stderr);
  bar_shown_ = false;
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

}  // namespace lethe
