#pragma once
// MNIST in its distribution format: pairs of IDX files (big-endian header, then raw bytes).
// Every malformed input is reported as a lethe::Error naming the file; nothing is trusted from a
// header until the file's size agrees with it.
#include <cstdint>
#include <string>
#include <vector>

namespace lethe::data {

// A labelled image set held in memory, pixels row-major NCHW.
struct ImageSet {
  int64_t n = 0, channels = 1, height = 0, width = 0;
  std::vector<float> pixels;    // n*channels*height*width values; [0,1] until mean subtraction
  std::vector<int32_t> labels;  // n values in [0, num_classes)
  int32_t num_classes = 10;
  // Position of each example in the file it was read from, kept through subsets so that scores
  // and noise masks can always be traced back to the original example.
  std::vector<int64_t> source_index;

  int64_t image_size() const { return channels * height * width; }
  // No bounds check: the hot paths go through gather_batch, which checks indices once per batch.
  const float* image(int64_t i) const { return pixels.data() + i * image_size(); }
  float* image(int64_t i) { return pixels.data() + i * image_size(); }
};

// Reads an IDX image file (magic 0x00000803, N x rows x cols unsigned bytes) and its IDX label
// file (magic 0x00000801, N unsigned bytes, each 0..9). Pixels are scaled to [0,1].
ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path);

enum class Split { Train, Test };

// The file names of the standard (uncompressed) MNIST distribution.
std::string mnist_images_file(Split split);  // train-images-idx3-ubyte / t10k-images-idx3-ubyte
std::string mnist_labels_file(Split split);  // train-labels-idx1-ubyte / t10k-labels-idx1-ubyte

// Reads one split from a folder holding the four plain IDX files.
ImageSet read_mnist(const std::string& dir, Split split);

}  // namespace lethe::data
