#pragma once
// Progress on stderr: a bar redrawn in place when stderr is a terminal, nothing per step
// otherwise (logs stay readable); whole lines (per epoch, per stage) always, unless quiet.
#include <chrono>
#include <string>

namespace lethe {

class Progress {
 public:
  explicit Progress(bool quiet);
  // Redraws "label [=====>    ] done/total eta" when stderr is a terminal.
  void update(const std::string& label, int64_t done, int64_t total);
  // Clears the bar and prints a whole line.
  void line(const std::string& text);
  bool quiet() const { return quiet_; }

 private:
  bool quiet_;
  bool tty_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point started_;
  std::string last_label_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace lethe
