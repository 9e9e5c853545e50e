#pragma once
// Outputs appear complete or not at all: bytes go to a temporary file beside the target, are
// flushed and fsync'ed, and only then renamed over it. A failure at any step removes the
// temporary file, leaves an existing target untouched and throws an Error naming the path.
#include <cstddef>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace lethe {

// Writes `bytes` to `path` atomically.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Streams into a temporary file through `writer` (called with a FILE*), then renames it into
// place. If `writer` throws, nothing is left behind and the exception propagates.
void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& writer);

// Whether this process keeps what it writes (default: yes). In a run of several ranks the CLI
// turns it off on every rank but 0, so that one process alone writes each output; the
// write_file_atomic calls above then write nothing and leave any existing file untouched.
void set_file_writes(bool on);
bool file_writes();

// file_writes() set to `on` for a scope, the previous setting restored after it (exceptions
// included). For a rank that writes a file of its own, one no other rank writes (the benchmark's
// models, each trained by one rank: docs/scale-out.md).
class ScopedFileWrites {
 public:
  explicit ScopedFileWrites(bool on) : was_(file_writes()) { set_file_writes(on); }
  ~ScopedFileWrites() { set_file_writes(was_); }
  ScopedFileWrites(const ScopedFileWrites&) = delete;
  ScopedFileWrites& operator=(const ScopedFileWrites&) = delete;

 private:
  bool was_;
};

// Reads a whole file; throws an Error naming the path if it cannot.
std::string read_file(const std::string& path);

}  // namespace lethe
