#pragma once
// Per-example requests whose arrays live on the host, run on the GPU: the device twins of the
// request's arrays for one call, and the copies both ways. A plain C++ header (host code only),
// present in a build with LETHE_WITH_CUDA.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/types.h"

namespace lethe::cuda {

class DeviceScratch;

// Query vectors uploaded once and reused by every request that names the same host array, q
// and stride (the caller promises the values do not change meanwhile).
class KeptQueries {
 public:
  // q rows of p floats, `ld` apart on the host, packed p apart on the device.
  KeptQueries(const float* host, int64_t q, int64_t p, int64_t ld);
  ~KeptQueries();
  KeptQueries(const KeptQueries&) = delete;
  KeptQueries& operator=(const KeptQueries&) = delete;
  bool serves(const PerExampleRequest& req) const {
    return req.queries == host_ && req.q == q_ && req.ld_queries == ld_;
  }
  const float* device() const;

 private:
  const float* host_;
  int64_t q_, ld_;
  std::unique_ptr<DeviceScratch> buf_;
};

// Zeroed device arrays of doubles standing in for host arrays for a whole pass: requests add
// into them batch after batch, and the host arrays get the sums once, at flush_into().
class ResidentTwins {
 public:
  ResidentTwins();
  ~ResidentTwins();
  void add(int64_t count);  // one more twin, of `count` zeros
  double* twin(size_t k) const;
  // host[0, count) += twin k, then twin k = 0 (waits for the device).
  void flush_into(size_t k, double* host, int64_t count);

 private:
  std::vector<std::unique_ptr<DeviceScratch>> twins_;
};

// Where a request's host array of doubles has a resident twin: the device address standing for
// host[0, extent), or null when it has none.
using ResidentLookup = std::function<double*(const double* host, int64_t extent)>;

// Host arrays of doubles that kernels add into, on the device for one call: each one's resident
// twin when `resident` knows it, else a zeroed scratch array whose sums finish() adds into the
// host array (waiting for the device only then, and only if some array was not resident).
class StagedSums {
 public:
  explicit StagedSums(ResidentLookup resident);
  ~StagedSums();
  StagedSums(const StagedSums&) = delete;
  StagedSums& operator=(const StagedSums&) = delete;
  double* on_device(double* host, int64_t count);  // null for a null host array
  void finish();

 private:
  struct Staged {
    double* host;
    int64_t count;
    std::unique_ptr<DeviceScratch> device;
  };
  ResidentLookup resident_;
  std::vector<Staged> staged_;
};

// A host request for one batch of n examples over a parameter vector of p values, mirrored on
// the device: the queries go up packed p apart (unless `kept` serves them); dots, squared norms
// and the sum of squares start at zero there, and finish() adds them into the host arrays; the
// gradients come back row by row into the host's rows (one copy when those are p apart too).
// The per-example kernels add into their layer's share, so one zeroed array serves every layer.
// Dots, squared norms or the sum of squares whose host array `resident` knows go straight into
// its twin instead, and finish() leaves them there.
class StagedRequest {
 public:
  StagedRequest(const PerExampleRequest& host, int64_t n, int64_t p, const KeptQueries* kept,
                const ResidentLookup& resident = nullptr);
  ~StagedRequest();
  StagedRequest(const StagedRequest&) = delete;
  StagedRequest& operator=(const StagedRequest&) = delete;
  // The request with device pointers, indexing the whole parameter vector.
  const PerExampleRequest& on_device() const { return dev_; }
  // Waits for the kernels (the copies follow them on the one stream) and delivers the results.
  void finish();

 private:
  PerExampleRequest host_, dev_;
  int64_t n_, p_;
  StagedSums sums_;  // dots, squared norms and the sum of squares
  std::unique_ptr<DeviceScratch> queries_, grads_;
};

}  // namespace lethe::cuda
