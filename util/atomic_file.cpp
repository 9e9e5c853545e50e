#include "util/atomic_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fcntl.h>
#include <unistd.h>

#include "util/error.h"

namespace lethe {
namespace {

std::string temporary_name_for(const std::string& path) {
  std::random_device rd;
  return fmt::format("{}.tmp-{}-{:08x}", path, static_cast<long>(::getpid()), rd());
}

// Every failure says whether a file already at `path` survived (it always does; saying so
// spares the user from checking).
[[noreturn]] void write_failed(const std::string& path, const std::string& reason) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec))
    fail("cannot write '{}': {}; the existing file is unchanged", path, reason);
  fail("cannot write '{}': {}", path, reason);
}

bool g_file_writes = true;

}  // namespace

void set_file_writes(bool on) { g_file_writes = on; }
bool file_writes() { return g_file_writes; }

void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& writer) {
  if (!g_file_writes) return;
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (fs::is_directory(target)) fail("cannot write '{}': it is a directory", path);
  const std::string tmp = temporary_name_for(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) write_failed(path, std::strerror(errno));
  auto discard = [&] {
    if (f) std::fclose(f);
    f = nullptr;
    std::remove(tmp.c_str());
  };
  try {
    writer(f);
    if (std::fflush(f) != 0) write_failed(path, std::strerror(errno));
    if (::fsync(::fileno(f)) != 0) write_failed(path, std::strerror(errno));
    const int rc = std::fclose(f);
    f = nullptr;
    if (rc != 0) write_failed(path, std::strerror(errno));
  } catch (const Error& e) {
    discard();
    // A writer's own failure (its fwrite) gets the same note about the existing file.
    const std::string what = e.what();
    std::error_code ec;
    if (what.find("the existing file is unchanged") == std::string::npos && std::filesystem::is_regular_file(path, ec))
      throw Error(what + "; the existing file is unchanged");
    throw;
  } catch (...) {
    discard();
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    write_failed(path, fmt::format("rename failed: {}", std::strerror(err)));
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [&](std::FILE* f) {
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
      fail("cannot write '{}': {}", path, std::strerror(errno));
  });
}

std::string read_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("cannot read '{}': no such file", path);
  if (fs::is_directory(path, ec)) fail("cannot read '{}': it is a directory", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '{}': {}", path, std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("cannot read '{}': read error", path);
  return bytes;
}

}  // namespace lethe
