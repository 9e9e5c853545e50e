#pragma once
// CIFAR-10 in its binary distribution (cifar-10-binary.tar.gz, extracted): data_batch_1.bin …
// data_batch_5.bin (the training split, in that order) and test_batch.bin, each a run of
// 3073-byte records: one label byte 0..9, then the 32x32 red, green and blue planes, row-major.
// Every malformed input is a lethe::Error naming the file (and the record, where one is at fault).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/mnist.h"

namespace lethe::data {

inline constexpr int64_t kCifar10Side = 32;
inline constexpr int64_t kCifar10Channels = 3;
inline constexpr int32_t kCifar10Classes = 10;
inline constexpr int64_t kCifar10RecordBytes = 1 + kCifar10Channels * kCifar10Side * kCifar10Side;  // 3073

// airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck (batches.meta.txt).
const std::vector<std::string>& cifar10_class_names();

// The batch files of a split, in the order their records are numbered.
std::vector<std::string> cifar10_files(Split split);

// Decodes `size` bytes of CIFAR-10 records into a 3x32x32 ImageSet with pixels in [0,1] and
// source_index 0..n-1. Takes bytes rather than a file so that a fuzz target can call it
// directly; `origin` names the bytes in errors (the file path). Throws a lethe::Error when the
// size is zero or not a whole number of records, or a label is outside 0..9 (naming the first
// such record and its byte offset).
ImageSet parse_cifar10_records(const unsigned char* bytes, size_t size, const std::string& origin);

// Reads one batch file.
ImageSet read_cifar10_file(const std::string& path);

// The folder that holds the batch files: `dir` itself, or `dir`/cifar-10-batches-bin (how the
// archive extracts). Throws naming what is missing, with a hint when the folder holds the
// Python or MATLAB distribution or the unextracted archive instead.
std::string find_cifar10_folder(const std::string& dir);

// Reads one split: the training split is the five data batches concatenated (source_index
// 0..49999 in file order), the test split test_batch.bin. Every file of the split is checked
// before any is converted, so a bad fifth batch fails before 150 MB of floats are built.
ImageSet read_cifar10(const std::string& dir, Split split);

}  // namespace lethe::data
