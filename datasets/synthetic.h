#pragma once
// A synthetic CIFAR-10 in the real binary format (datasets/cifar10.h), for measuring lethe at
// CIFAR-10's scale where the real dataset cannot be downloaded: what a pass over D costs depends
// on the number and shape of the images, not on their pixels.
//
// Each image is dim noise (bytes 0..47 in every plane) with, for a class k image, a bright bar
// (bytes 200..255) on rows 3+2k and 4+2k, columns 3..28, of plane k % 3: a network learns the
// classes within an epoch, and a horizontal flip keeps the class as it does a photo's. A share
// of the images ("blank") carries no bar, its label drawn like the others': no model can do
// better than chance on those, so a trained model still has test failures (about 90% of the
// blank test images) for EWC-influence's Fq, as a real model's errors would give it.
#include <cstdint>
#include <string>

namespace lethe::data {

struct SyntheticCifar10 {
  int64_t n_train = 50000;      // split over data_batch_1.bin ... data_batch_5.bin as evenly as possible
  int64_t n_test = 10000;       // test_batch.bin
  double blank_fraction = 0.1;  // share of each split's images with no bar
  uint64_t seed = 0;
};

// Throws a UsageError (naming the flag of `lethe make-data`) for fewer than 5 training images
// (one per batch file), no test image, or a blank fraction outside [0, 1].
void validate(const SyntheticCifar10& spec);

// The records of one split (3073 bytes each: label, then the red, green and blue planes). The
// labels of a split are balanced, as CIFAR-10's are (each class n/10 times, the first n % 10
// classes once more), in a seeded order; exactly round(blank_fraction * n) images are blank.
// The same spec gives the same bytes on every machine.
std::string synthetic_cifar10_records(const SyntheticCifar10& spec, bool train);

// Writes the split's batch files into `dir` (created if missing), each atomically, the test
// batch last, so a folder holding test_batch.bin is complete. Refuses (an Error naming the file)
// a folder that already holds any CIFAR-10 batch file, so it never overwrites a real copy.
void write_synthetic_cifar10(const std::string& dir, const SyntheticCifar10& spec);

}  // namespace lethe::data
