#pragma once
// Reading and writing the scores of Step I: a CSV a person can open (index in D, index in the
// source file, label, whether noise corrupted it, score, rank), a safetensors array for
// programs, and a PNG grid of the top causes.
#include <string>
#include <string_view>
#include <vector>

#include "datasets/mnist.h"
#include "repair/identify.h"

namespace lethe::cli {

void write_scores_csv(const std::string& path, const data::ImageSet& train, const std::vector<double>& scores,
                      const std::vector<uint8_t>* noisy);
// Reads the score column back, checking the file covers exactly examples 0..n-1 of D.
std::vector<double> read_scores_csv(const std::string& path, int64_t n_train);
// The same on text already in memory (a fuzzing target); `name` names it in errors.
std::vector<double> parse_scores_csv(std::string_view text, const std::string& name, int64_t n_train);
void write_scores_array(const std::string& path, const repair::IdentifyResult& r);
void write_cause_grid(const std::string& path, const data::ImageSet& train, const std::vector<double>& scores,
                      const std::vector<uint8_t>* noisy, int64_t count, const std::string& title);

}  // namespace lethe::cli
