#pragma once
// A private folder for the targets whose parser reads files: made once, removed at exit.
// It goes in $TMPDIR when that is set, else in memory (/dev/shm) when the machine has it, else in
// /tmp: a target writes and removes files for every input, and on a disk file system (ext4
// mounted with discard, on a busy 2-core machine) that held mnist_idx to 200 inputs a second.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace lethe::fuzz {

// The name lives in a static array, not a std::string: the cleanup runs at exit, after static
// objects constructed later than its registration have been destroyed.
inline const char* temp_folder() {
  static char dir[4096];
  static const bool made = [] {
    const char* base = std::getenv("TMPDIR");
    if (!base || !*base) base = ::access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    if (std::snprintf(dir, sizeof dir, "%s/lethe-fuzz-XXXXXX", base) >= static_cast<int>(sizeof dir)) std::abort();
    if (!::mkdtemp(dir)) std::abort();
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    });
    return true;
  }();
  (void)made;
  return dir;
}

// Writes `size` bytes to `path`, aborting (a harness failure, not a finding) when it cannot.
inline void write_file(const std::string& path, const unsigned char* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size != 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  if (std::fclose(f) != 0) std::abort();
}

}  // namespace lethe::fuzz
