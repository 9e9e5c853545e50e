// Every CUDA kernel against its CPU twin on the same random inputs (odd sizes included), with an
// absolute + relative tolerance: |cuda - cpu| <= atol + rtol * |cpu|, NaN matching NaN. A
// failure prints the first mismatches. Tolerances, by kind of op:
//   - pure data movement and gathers that add in the CPU's order (im2col, col2im, pooling,
//     relu, nll): exact (0, 0);
//   - elementwise arithmetic: nvcc may fuse a*b + c into one FMA where the CPU rounds twice, a
//     difference of an ulp or two: rtol 1e-6 with a tiny atol for results near zero;
//   - sums accumulated in double on both sides (sum, sum_rows, bias gradients): only the final
//     rounding to float can differ: rtol 1e-6;
//   - float dot products (gemm, conv): the two backends add in different orders, each partial
//     sum rounding at ~6e-8 relative; over K terms of magnitude <= 1 the error bound grows like
//     K * 6e-8, so atol 1e-4 covers K in the hundreds with a wide margin, and rtol 1e-4 the
//     larger outputs;
//   - exp/log in the losses: CUDA's expf is within 2 ulp, glibc's within 1: rtol 1e-5;
//   - BatchNorm: statistics in double on both sides, then a few float operations that the CPU
//     partly does in double (dx = k (dy − Σdy/m − x̂ Σdy x̂/m) cancels near 0): atol = rtol = 1e-5.
//
// The file builds in both configurations: without LETHE_WITH_CUDA one test skips with the
// reason, so the suite reports the CUDA backend as skipped rather than silently absent.
#include <gtest/gtest.h>

#include "kernels/device.h"

#ifndef LETHE_WITH_CUDA

TEST(CudaKernels, SkippedWithoutCudaBackend) { GTEST_SKIP() << lethe::device::cuda_unavailable_reason(); }

#else

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv.h"
#include "kernels/backend.h"
#include "kernels/cpu/per_example.h"
#include "kernels/cuda/kernels.h"
#include "util/error.h"
#include "util/rng.h"

namespace {

namespace dev = lethe::device;
using lethe::Conv2dShape;
using lethe::Pool2dShape;

std::vector<float> random_floats(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  lethe::Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

std::vector<int32_t> random_labels(int64_t n, int64_t k, uint64_t seed) {
  lethe::Rng rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& x : v) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(k)));
  return v;
}

// A device array for one test, freed on scope exit. Outputs start as NaN so that an element a
// kernel forgot to write shows up as a mismatch instead of a lucky zero.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : size_(host.size()) {
    ptr_ = static_cast<T*>(dev::cuda_alloc(bytes()));
    dev::copy_host_to_cuda(ptr_, host.data(), bytes());
  }
  static DeviceArray poisoned(size_t size) {
    return DeviceArray(std::vector<T>(size, std::numeric_limits<T>::quiet_NaN()));
  }
  ~DeviceArray() { dev::cuda_free(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& other) noexcept : ptr_(other.ptr_), size_(other.size_) { other.ptr_ = nullptr; }

  T* get() const { return ptr_; }
  std::vector<T> to_host() const {
    std::vector<T> host(size_);
    dev::copy_cuda_to_host(host.data(), ptr_, bytes());
    return host;
  }

 private:
  size_t bytes() const { return size_ * sizeof(T); }
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

using DeviceFloats = DeviceArray<float>;

::testing::AssertionResult all_close(const std::vector<float>& cpu, const std::vector<float>& cuda, double atol,
                                     double rtol) {
  if (cpu.size() != cuda.size())
    return ::testing::AssertionFailure() << "sizes differ: cpu " << cpu.size() << ", cuda " << cuda.size();
  constexpr int kShown = 8;
  int64_t mismatches = 0;
  std::ostringstream first;
  first.precision(9);
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double a = cpu[i], b = cuda[i];
    const bool both_nan = std::isnan(a) && std::isnan(b);
    const bool same_inf = std::isinf(a) && a == b;
    if (both_nan || same_inf || std::abs(a - b) <= atol + rtol * std::abs(a)) continue;
    if (mismatches++ < kShown)
      first << "\n  [" << i << "] cpu " << a << "  cuda " << b << "  |diff| " << std::abs(a - b);
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << mismatches << " of " << cpu.size() << " elements differ (atol " << atol
                                       << ", rtol " << rtol << "); first:" << first.str();
}

std::string describe(const Conv2dShape& s) {
  std::ostringstream out;
  out << "n=" << s.n << " c=" << s.c << " h=" << s.h << " w=" << s.w << " co=" << s.co << " k=" << s.kh << "x" << s.kw
      << " stride=" << s.stride << " pad=" << s.pad;
  return out.str();
}

Conv2dShape conv_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t co, int64_t kh, int64_t kw, int64_t stride,
                       int64_t pad) {
  Conv2dShape s;
  s.n = n, s.c = c, s.h = h, s.w = w, s.co = co, s.kh = kh, s.kw = kw, s.stride = stride, s.pad = pad;
  return s;
}

// The convolution shapes every conv test runs: the odd strided, padded case first.
std::vector<Conv2dShape> conv_shapes() {
  return {conv_shape(3, 5, 11, 9, 7, 3, 3, 2, 1), conv_shape(2, 3, 8, 8, 4, 1, 1, 1, 0),
          conv_shape(4, 6, 13, 10, 5, 5, 5, 1, 2), conv_shape(1, 2, 7, 12, 3, 3, 2, 3, 0),
          conv_shape(5, 1, 28, 28, 8, 5, 5, 1, 0)};
}

constexpr double kDotAtol = 1e-4, kDotRtol = 1e-4;

// The JL matrix is bits, not arithmetic: the device's block equals the CPU's exactly. The
// projection is float GEMMs over blocks of R summed in double: the dot-product tolerance. Blocks
// of 256 rows (three over p = 600) and the default (one block) both.
TEST(CudaKernels, JlProjectionMatchesCpuForASeed) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const int64_t k : {1, 63, 64, 100, 2048}) {
    const int64_t rows = 37, row0 = 1000;
    std::vector<float> cpu_block(static_cast<size_t>(rows * k));
    lethe::cpu::jl_block(42, row0, rows, k, cpu_block.data());
    auto cuda_block = DeviceFloats::poisoned(static_cast<size_t>(rows * k));
    lethe::cuda::jl_block(42, row0, rows, k, cuda_block.get());
    EXPECT_TRUE(all_close(cpu_block, cuda_block.to_host(), 0, 0)) << "k=" << k;
  }
  const int64_t n = 5, p = 600, ld_g = 610, k = 130, ld_out = 140;  // strided rows
  const auto g = random_floats(n * ld_g, 3);
  for (const int64_t block_rows : {int64_t{256}, int64_t{0}}) {
    std::vector<float> cpu_out(static_cast<size_t>(n * ld_out), 0.5f);
    lethe::cpu::jl_project(g.data(), n, p, ld_g, k, 9, cpu_out.data(), ld_out, /*accumulate=*/true, block_rows);
    DeviceFloats dg(g);
    DeviceFloats dout(std::vector<float>(static_cast<size_t>(n * ld_out), 0.5f));
    lethe::cuda::jl_project(dg.get(), n, p, ld_g, k, 9, dout.get(), ld_out, /*accumulate=*/true, block_rows);
    EXPECT_TRUE(all_close(cpu_out, dout.to_host(), kDotAtol, kDotRtol)) << "block rows " << block_rows;
  }
}
constexpr double kMapAtol = 1e-7, kMapRtol = 1e-6;
constexpr double kSumRtol = 1e-6;
constexpr double kExpAtol = 1e-6, kExpRtol = 1e-5;

// ---- backend and memory -------------------------------------------------------------------------

// Runs on every machine, GPU or not: the probe must answer, not throw, and say why not.
TEST(CudaBackend, ReportsWhetherAGpuIsUsable) {
  if (dev::cuda_available()) {
    EXPECT_STREQ(dev::cuda_unavailable_reason(), "");
  } else {
    EXPECT_NE(std::string(dev::cuda_unavailable_reason()).find("no CUDA device found"), std::string::npos)
        << dev::cuda_unavailable_reason();
    EXPECT_THROW(dev::cuda_alloc(16), lethe::Error);
  }
}

TEST(CudaAllocator, ReusesAFreedBlockOfTheSameBucket) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  void* first = dev::cuda_alloc(1000);
  dev::cuda_free(first);
  const auto before = lethe::cuda::memory_stats();
  void* second = dev::cuda_alloc(1000);
  const auto after = lethe::cuda::memory_stats();
  EXPECT_EQ(second, first);
  EXPECT_EQ(after.cache_hits, before.cache_hits + 1);
  EXPECT_EQ(after.device_mallocs, before.device_mallocs);
  dev::cuda_free(second);
}

// The high-water marks identify reports: a block handed out raises the in-use peak to cover it,
// its bytes stay reserved after it is freed, so the same request again is a cache hit that
// leaves the reserved peak where it was; kernels/device.h reads the same two figures.
TEST(CudaAllocator, PeaksCoverWhatWasHandedOutAndHeld) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const size_t bytes = (size_t{3} << 20) + 12345;
  const auto before = lethe::cuda::memory_stats();
  void* first = dev::cuda_alloc(bytes);
  const auto held = lethe::cuda::memory_stats();
  EXPECT_GE(held.in_use_bytes, before.in_use_bytes + bytes);
  EXPECT_GE(held.peak_in_use_bytes, held.in_use_bytes);
  EXPECT_GE(held.peak_reserved_bytes, held.in_use_bytes + held.cached_bytes);
  dev::cuda_free(first);
  void* second = dev::cuda_alloc(bytes);
  const auto again = lethe::cuda::memory_stats();
  EXPECT_EQ(again.cache_hits, held.cache_hits + 1);
  EXPECT_EQ(again.peak_reserved_bytes, held.peak_reserved_bytes) << "a cache hit reserved more";
  const auto peak = dev::cuda_memory_peak();
  EXPECT_EQ(peak.in_use_bytes, again.peak_in_use_bytes);
  EXPECT_EQ(peak.reserved_bytes, again.peak_reserved_bytes);
  dev::cuda_free(second);
}

TEST(CudaAllocator, OutOfMemoryNamesTheRequestedSize) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const size_t huge = size_t{1} << 50;  // a petabyte: no device has it
  try {
    dev::cuda_alloc(huge);
    FAIL() << "allocating 1 PiB succeeded";
  } catch (const lethe::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(std::to_string(huge)), std::string::npos) << what;
    EXPECT_NE(what.find("free"), std::string::npos) << what;
  }
  // The allocator still works after the failure.
  void* p = dev::cuda_alloc(64);
  EXPECT_NE(p, nullptr);
  dev::cuda_free(p);
}

TEST(CudaCopies, RoundTripHostDeviceDeviceHost) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const auto host = random_floats(12345, 1);
  DeviceFloats a(host);
  auto b = DeviceFloats::poisoned(host.size());
  dev::copy_cuda_to_cuda(b.get(), a.get(), host.size() * sizeof(float));
  EXPECT_TRUE(all_close(host, b.to_host(), 0, 0));
}

TEST(CudaCopies, AnUploadLeavesTheHostBufferFreeOnReturn) {
  // copy_host_to_cuda does not wait for the stream (device_cuda.cpp): the host overwrites or
  // frees its pageable buffer at once, which is safe only while the driver has taken the bytes
  // before returning. The stream is kept busy first (GEMMs of a few ms), so an upload that
  // still read the buffer later would read the overwritten values.
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t busy = 2048;
  const auto a = random_floats(busy * busy, 30);
  DeviceFloats a_d(a), c_d(a);
  for (const int64_t n : {int64_t{1000}, int64_t{1} << 18, int64_t{1} << 26}) {
    SCOPED_TRACE(::testing::Message() << n << " floats");
    const auto want = random_floats(n, 31 + static_cast<uint64_t>(n));
    auto host = want;
    auto d = DeviceFloats::poisoned(static_cast<size_t>(n));
    for (int r = 0; r < 4; ++r)
      lethe::cuda::gemm(false, false, busy, busy, busy, 1.0f, a_d.get(), busy, a_d.get(), busy, 0.0f, c_d.get(), busy);
    dev::copy_host_to_cuda(d.get(), host.data(), static_cast<size_t>(n) * sizeof(float));
    std::fill(host.begin(), host.end(), -7.0f);
    EXPECT_TRUE(all_close(want, d.to_host(), 0, 0));
  }
}

// ---- gemm ---------------------------------------------------------------------------------------

TEST(CudaGemm, MatchesCpuForEveryTransposeWithPaddedLeadingDimensions) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t m = 37, n = 29, k = 53, pad = 3;
  const float alpha = 0.75f, beta = 0.5f;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "trans_a=" << ta << " trans_b=" << tb);
      // Row-major storage of op(A)'s source: [m, k] or [k, m], each row padded by `pad`.
      const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, lda = a_cols + pad;
      const int64_t b_rows = tb ? n : k, b_cols = tb ? k : n, ldb = b_cols + pad;
      const int64_t ldc = n + pad;
      const auto a = random_floats(a_rows * lda, 10);
      const auto b = random_floats(b_rows * ldb, 11);
      auto c_cpu = random_floats(m * ldc, 12);
      DeviceFloats a_d(a), b_d(b), c_d(c_cpu);
      lethe::cpu::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c_cpu.data(), ldc);
      lethe::cuda::gemm(ta, tb, m, n, k, alpha, a_d.get(), lda, b_d.get(), ldb, beta, c_d.get(), ldc);
      // The padding columns of C must be left alone: comparing all of C checks that too.
      EXPECT_TRUE(all_close(c_cpu, c_d.to_host(), kDotAtol, kDotRtol));
    }
}

// ---- elementwise --------------------------------------------------------------------------------

TEST(CudaElementwise, MapsMatchCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t n = 100003;
  const auto a = random_floats(n, 20), b = random_floats(n, 21);
  DeviceFloats a_d(a), b_d(b);
  std::vector<float> y(static_cast<size_t>(n));

  auto y_d = DeviceFloats::poisoned(a.size());
  lethe::cpu::fill(n, 2.5f, y.data());
  lethe::cuda::fill(n, 2.5f, y_d.get());
  EXPECT_TRUE(all_close(y, y_d.to_host(), 0, 0)) << "fill";

  y = b;
  DeviceFloats axpy_d(b);
  lethe::cpu::axpy(n, -0.3f, a.data(), y.data());
  lethe::cuda::axpy(n, -0.3f, a_d.get(), axpy_d.get());
  EXPECT_TRUE(all_close(y, axpy_d.to_host(), kMapAtol, kMapRtol)) << "axpy";

  lethe::cpu::scale(n, 1.7f, a.data(), y.data());
  lethe::cuda::scale(n, 1.7f, a_d.get(), y_d.get());
  EXPECT_TRUE(all_close(y, y_d.to_host(), 0, 0)) << "scale";

  lethe::cpu::add(n, a.data(), b.data(), y.data());
  lethe::cuda::add(n, a_d.get(), b_d.get(), y_d.get());
  EXPECT_TRUE(all_close(y, y_d.to_host(), 0, 0)) << "add";

  lethe::cpu::sub(n, a.data(), b.data(), y.data());
  lethe::cuda::sub(n, a_d.get(), b_d.get(), y_d.get());
  EXPECT_TRUE(all_close(y, y_d.to_host(), 0, 0)) << "sub";

  lethe::cpu::mul(n, a.data(), b.data(), y.data());
  lethe::cuda::mul(n, a_d.get(), b_d.get(), y_d.get());
  EXPECT_TRUE(all_close(y, y_d.to_host(), 0, 0)) << "mul";

  lethe::cpu::relu_forward(n, a.data(), y.data());
  lethe::cuda::relu_forward(n, a_d.get(), y_d.get());
  EXPECT_TRUE(all_close(y, y_d.to_host(), 0, 0)) << "relu_forward";

  std::vector<float> dx(static_cast<size_t>(n));
  auto dx_d = DeviceFloats::poisoned(a.size());
  lethe::cpu::relu_backward(n, y.data(), b.data(), dx.data());
  lethe::cuda::relu_backward(n, y_d.get(), b_d.get(), dx_d.get());
  EXPECT_TRUE(all_close(dx, dx_d.to_host(), 0, 0)) << "relu_backward";
}

TEST(CudaElementwise, AddRowBiasMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{37, 11}, {1, 1000}, {513, 3}}) {
    SCOPED_TRACE(::testing::Message() << rows << "x" << cols);
    auto y = random_floats(rows * cols, 30);
    const auto bias = random_floats(cols, 31);
    DeviceFloats y_d(y), bias_d(bias);
    lethe::cpu::add_row_bias(rows, cols, bias.data(), y.data());
    lethe::cuda::add_row_bias(rows, cols, bias_d.get(), y_d.get());
    EXPECT_TRUE(all_close(y, y_d.to_host(), 0, 0));
  }
}

// ---- reductions ---------------------------------------------------------------------------------

TEST(CudaReduce, SumMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{1000003}}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    const auto x = random_floats(std::max<int64_t>(n, 1), 40, -1.0, 3.0);
    DeviceFloats x_d(x);
    auto out_d = DeviceFloats::poisoned(1);
    std::vector<float> out(1);
    lethe::cpu::sum(n, x.data(), out.data());
    lethe::cuda::sum(n, x_d.get(), out_d.get());
    EXPECT_TRUE(all_close(out, out_d.to_host(), 0, kSumRtol));
  }
}

TEST(CudaReduce, SumRowsMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const auto& [rows, cols] :
       std::vector<std::pair<int64_t, int64_t>>{{1000, 37}, {3, 5000}, {1, 1}, {0, 7}, {100003, 10}}) {
    SCOPED_TRACE(::testing::Message() << rows << "x" << cols);
    const auto dy = random_floats(std::max<int64_t>(rows * cols, 1), 41);
    DeviceFloats dy_d(dy);
    auto db_d = DeviceFloats::poisoned(static_cast<size_t>(cols));
    std::vector<float> db(static_cast<size_t>(cols));
    lethe::cpu::sum_rows(rows, cols, dy.data(), db.data());
    lethe::cuda::sum_rows(rows, cols, dy_d.get(), db_d.get());
    EXPECT_TRUE(all_close(db, db_d.to_host(), 1e-6, kSumRtol));
  }
}

TEST(CudaReduce, AllFiniteFindsEveryKindOfNonFinite) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t n = 300007;
  auto x = random_floats(n, 42);
  {
    DeviceFloats x_d(x);
    EXPECT_EQ(lethe::cuda::all_finite(n, x_d.get()), lethe::cpu::all_finite(n, x.data()));
    EXPECT_TRUE(lethe::cuda::all_finite(n, x_d.get()));
    EXPECT_TRUE(lethe::cuda::all_finite(0, x_d.get()));
  }
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const auto& [where, value] : std::vector<std::pair<int64_t, float>>{{n - 1, nan}, {0, inf}, {n / 2, -inf}}) {
    SCOPED_TRACE(::testing::Message() << "x[" << where << "] = " << value);
    auto bad = x;
    bad[static_cast<size_t>(where)] = value;
    DeviceFloats bad_d(bad);
    EXPECT_EQ(lethe::cuda::all_finite(n, bad_d.get()), lethe::cpu::all_finite(n, bad.data()));
    EXPECT_FALSE(lethe::cuda::all_finite(n, bad_d.get()));
  }
}

// Indices past 2^31 (8.6 GB of floats): skipped where the device has not that much free memory.
TEST(CudaReduce, IndicesPast32BitsReachEveryElement) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t n = (int64_t{1} << 31) + 7;
  float* x = nullptr;
  try {
    x = static_cast<float*>(dev::cuda_alloc(static_cast<size_t>(n) * sizeof(float)));
  } catch (const lethe::Error& e) {
    GTEST_SKIP() << "not enough device memory for the 64-bit index test: " << e.what();
  }
  lethe::cuda::fill(n, 1.0f, x);
  DeviceFloats total = DeviceFloats::poisoned(1);
  lethe::cuda::sum(n, x, total.get());
  EXPECT_EQ(total.to_host()[0], static_cast<float>(static_cast<double>(n)));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  dev::copy_host_to_cuda(x + (n - 2), &nan, sizeof(float));  // an element only a 64-bit index reaches
  EXPECT_FALSE(lethe::cuda::all_finite(n, x));
  dev::cuda_free(x);
  lethe::cuda::release_cached_memory();
}

// ---- convolution --------------------------------------------------------------------------------

TEST(CudaConv, Im2colAndCol2imMatchCpuExactly) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (Conv2dShape s : conv_shapes()) {
    s.n = 1;
    SCOPED_TRACE(describe(s));
    const int64_t image = s.c * s.h * s.w, col_size = s.col_rows() * s.col_cols();
    const auto x = random_floats(image, 50);
    DeviceFloats x_d(x);
    std::vector<float> col(static_cast<size_t>(col_size));
    auto col_d = DeviceFloats::poisoned(col.size());
    lethe::cpu::im2col(s, x.data(), col.data());
    lethe::cuda::im2col(s, x_d.get(), col_d.get());
    EXPECT_TRUE(all_close(col, col_d.to_host(), 0, 0)) << "im2col";

    const auto dcol = random_floats(col_size, 51);
    DeviceFloats dcol_d(dcol);
    std::vector<float> dx(static_cast<size_t>(image));
    auto dx_d = DeviceFloats::poisoned(dx.size());
    lethe::cpu::col2im(s, dcol.data(), dx.data());
    lethe::cuda::col2im(s, dcol_d.get(), dx_d.get());
    EXPECT_TRUE(all_close(dx, dx_d.to_host(), 0, 0)) << "col2im";
  }
}

TEST(CudaConv, ForwardMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const Conv2dShape& s : conv_shapes()) {
    SCOPED_TRACE(describe(s));
    const auto x = random_floats(s.n * s.c * s.h * s.w, 60);
    const auto w = random_floats(s.co * s.c * s.kh * s.kw, 61);
    const auto b = random_floats(s.co, 62);
    DeviceFloats x_d(x), w_d(w), b_d(b);
    const size_t out = static_cast<size_t>(s.n * s.co * s.ho() * s.wo());
    for (const bool with_bias : {true, false}) {
      SCOPED_TRACE(with_bias ? "with bias" : "without bias");
      std::vector<float> y(out);
      auto y_d = DeviceFloats::poisoned(out);
      lethe::cpu::conv2d_forward(s, x.data(), w.data(), with_bias ? b.data() : nullptr, y.data());
      lethe::cuda::conv2d_forward(s, x_d.get(), w_d.get(), with_bias ? b_d.get() : nullptr, y_d.get());
      EXPECT_TRUE(all_close(y, y_d.to_host(), kDotAtol, kDotRtol));
    }
  }
}

// The bias gradient db_c = Σ dy over an example's n·ho·wo positions of channel c: a float sum
// of m terms, which oneDNN (the CPU twin) and cuDNN add in different orders. Each order's
// rounding error is at most about log2(m)·u·Σ|dy| (blocked and tree sums; u = 2^-24), so the two
// may differ by twice that: at m = 2,880 terms of |dy| < 1 they differed by 1.2e-5 on 9.9 on an
// H200, past 1e-6 relative to the result but far inside this bound (~2e-3); a dropped or doubled
// term (|dy| ~ 0.5 on average) still fails it.
void expect_bias_grad_close(const Conv2dShape& s, const std::vector<float>& dy, const std::vector<float>& cpu,
                            const std::vector<float>& cuda, const char* what) {
  const int64_t hw = s.ho() * s.wo(), m = s.n * hw;
  const double u = std::ldexp(1.0, -24), levels = std::ceil(std::log2(static_cast<double>(m)));
  ASSERT_EQ(cuda.size(), cpu.size()) << what;
  for (int64_t c = 0; c < s.co; ++c) {
    double magnitude = 0;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t t = 0; t < hw; ++t) magnitude += std::abs(dy[static_cast<size_t>((i * s.co + c) * hw + t)]);
    const double tol = 1e-6 + 2 * levels * u * magnitude;
    EXPECT_NEAR(cuda[static_cast<size_t>(c)], cpu[static_cast<size_t>(c)], tol) << what << ", channel " << c;
  }
}

TEST(CudaConv, BackwardMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const Conv2dShape& s : conv_shapes()) {
    SCOPED_TRACE(describe(s));
    const int64_t in = s.n * s.c * s.h * s.w, weights = s.co * s.c * s.kh * s.kw, out = s.n * s.co * s.ho() * s.wo();
    const auto x = random_floats(in, 70), w = random_floats(weights, 71), dy = random_floats(out, 72);
    DeviceFloats x_d(x), w_d(w), dy_d(dy);
    std::vector<float> dx(static_cast<size_t>(in)), dw(static_cast<size_t>(weights)), db(static_cast<size_t>(s.co));
    lethe::cpu::conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());

    auto dx_d = DeviceFloats::poisoned(dx.size()), dw_d = DeviceFloats::poisoned(dw.size()),
         db_d = DeviceFloats::poisoned(db.size());
    lethe::cuda::conv2d_backward(s, x_d.get(), w_d.get(), dy_d.get(), dx_d.get(), dw_d.get(), db_d.get());
    EXPECT_TRUE(all_close(dx, dx_d.to_host(), kDotAtol, kDotRtol)) << "dx";
    EXPECT_TRUE(all_close(dw, dw_d.to_host(), kDotAtol, kDotRtol)) << "dw";
    expect_bias_grad_close(s, dy, db, db_d.to_host(), "db");

    // Each output alone (the others null): nothing else is touched, the asked one still right.
    auto dw_only = DeviceFloats::poisoned(dw.size());
    lethe::cuda::conv2d_backward(s, x_d.get(), w_d.get(), dy_d.get(), nullptr, dw_only.get(), nullptr);
    EXPECT_TRUE(all_close(dw, dw_only.to_host(), kDotAtol, kDotRtol)) << "dw alone";
    auto dx_only = DeviceFloats::poisoned(dx.size());
    lethe::cuda::conv2d_backward(s, x_d.get(), w_d.get(), dy_d.get(), dx_only.get(), nullptr, nullptr);
    EXPECT_TRUE(all_close(dx, dx_only.to_host(), kDotAtol, kDotRtol)) << "dx alone";
    auto db_only = DeviceFloats::poisoned(db.size());
    lethe::cuda::conv2d_backward(s, x_d.get(), w_d.get(), dy_d.get(), nullptr, nullptr, db_only.get());
    expect_bias_grad_close(s, dy, db, db_only.to_host(), "db alone");
  }
}

// ---- pooling ------------------------------------------------------------------------------------

// Inputs drawn from four values, so most windows hold ties and the first-maximum rule decides
// where each gradient goes; the gathers add in the CPU's order, so the match is exact.
TEST(CudaPool, MaxPoolMatchesCpuExactlyWithTies) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const auto& [k, stride] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {3, 2}, {3, 1}, {2, 3}}) {
    Pool2dShape s;
    s.n = 3, s.c = 5, s.h = 11, s.w = 9, s.k = k, s.stride = stride;
    SCOPED_TRACE(::testing::Message() << "k=" << k << " stride=" << stride);
    const int64_t in = s.n * s.c * s.h * s.w, out = s.n * s.c * s.ho() * s.wo();
    lethe::Rng rng(80);
    std::vector<float> x(static_cast<size_t>(in));
    for (float& v : x) v = static_cast<float>(rng.below(4));
    const auto dy = random_floats(out, 81);
    DeviceFloats x_d(x), dy_d(dy);
    std::vector<float> y(static_cast<size_t>(out)), dx(static_cast<size_t>(in));
    auto y_d = DeviceFloats::poisoned(y.size()), dx_d = DeviceFloats::poisoned(dx.size());
    lethe::cpu::maxpool2d_forward(s, x.data(), y.data());
    lethe::cuda::maxpool2d_forward(s, x_d.get(), y_d.get());
    EXPECT_TRUE(all_close(y, y_d.to_host(), 0, 0)) << "forward";
    lethe::cpu::maxpool2d_backward(s, x.data(), y.data(), dy.data(), dx.data());
    lethe::cuda::maxpool2d_backward(s, x_d.get(), y_d.get(), dy_d.get(), dx_d.get());
    EXPECT_TRUE(all_close(dx, dx_d.to_host(), 0, 0)) << "backward";
  }
}

// ---- losses -------------------------------------------------------------------------------------

// Shapes: a batch of 10-class rows, a few wide rows (more classes than a warp has lanes, many
// times over), and logits scaled up so that exp would overflow without the max subtracted.
struct LossCase {
  int64_t n, k;
  double scale;
};
const std::vector<LossCase> kLossCases = {{37, 10, 3.0}, {5, 1000, 3.0}, {64, 33, 80.0}, {1, 1, 1.0}};

TEST(CudaLoss, SoftmaxCrossEntropyMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const auto& c : kLossCases) {
    SCOPED_TRACE(::testing::Message() << "n=" << c.n << " k=" << c.k << " scale=" << c.scale);
    const auto logits = random_floats(c.n * c.k, 90, -c.scale, c.scale);
    const auto labels = random_labels(c.n, c.k, 91);
    const auto dloss = random_floats(c.n, 92);
    DeviceFloats logits_d(logits), dloss_d(dloss);
    DeviceArray<int32_t> labels_d(labels);
    std::vector<float> losses(static_cast<size_t>(c.n)), probs(static_cast<size_t>(c.n * c.k));
    auto losses_d = DeviceFloats::poisoned(losses.size()), probs_d = DeviceFloats::poisoned(probs.size());
    lethe::cpu::softmax_xent_forward(c.n, c.k, logits.data(), labels.data(), losses.data(), probs.data());
    lethe::cuda::softmax_xent_forward(c.n, c.k, logits_d.get(), labels_d.get(), losses_d.get(), probs_d.get());
    EXPECT_TRUE(all_close(losses, losses_d.to_host(), kExpAtol, kExpRtol)) << "losses";
    EXPECT_TRUE(all_close(probs, probs_d.to_host(), kExpAtol, kExpRtol)) << "probs";

    std::vector<float> dlogits(probs.size());
    auto dlogits_d = DeviceFloats::poisoned(probs.size());
    lethe::cpu::softmax_xent_backward(c.n, c.k, probs.data(), labels.data(), dloss.data(), dlogits.data());
    lethe::cuda::softmax_xent_backward(c.n, c.k, probs_d.get(), labels_d.get(), dloss_d.get(), dlogits_d.get());
    EXPECT_TRUE(all_close(dlogits, dlogits_d.to_host(), kExpAtol, kExpRtol)) << "dlogits";
  }
}

TEST(CudaLoss, LogSoftmaxMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const auto& c : kLossCases) {
    SCOPED_TRACE(::testing::Message() << "n=" << c.n << " k=" << c.k << " scale=" << c.scale);
    const auto x = random_floats(c.n * c.k, 100, -c.scale, c.scale);
    const auto dy = random_floats(c.n * c.k, 101);
    DeviceFloats x_d(x), dy_d(dy);
    std::vector<float> y(x.size()), dx(x.size());
    auto y_d = DeviceFloats::poisoned(x.size()), dx_d = DeviceFloats::poisoned(x.size());
    lethe::cpu::log_softmax_forward(c.n, c.k, x.data(), y.data());
    lethe::cuda::log_softmax_forward(c.n, c.k, x_d.get(), y_d.get());
    EXPECT_TRUE(all_close(y, y_d.to_host(), kExpAtol, kExpRtol)) << "forward";
    lethe::cpu::log_softmax_backward(c.n, c.k, y.data(), dy.data(), dx.data());
    lethe::cuda::log_softmax_backward(c.n, c.k, y_d.get(), dy_d.get(), dx_d.get());
    EXPECT_TRUE(all_close(dx, dx_d.to_host(), kExpAtol, kExpRtol)) << "backward";
  }
}

TEST(CudaLoss, NllMatchesCpuExactly) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t n = 53, k = 17;
  const auto logp = random_floats(n * k, 110, -5.0, 0.0);
  const auto labels = random_labels(n, k, 111);
  const auto dloss = random_floats(n, 112);
  DeviceFloats logp_d(logp), dloss_d(dloss);
  DeviceArray<int32_t> labels_d(labels);
  std::vector<float> losses(static_cast<size_t>(n)), dlogp(logp.size());
  auto losses_d = DeviceFloats::poisoned(losses.size()), dlogp_d = DeviceFloats::poisoned(dlogp.size());
  lethe::cpu::nll_forward(n, k, logp.data(), labels.data(), losses.data());
  lethe::cuda::nll_forward(n, k, logp_d.get(), labels_d.get(), losses_d.get());
  EXPECT_TRUE(all_close(losses, losses_d.to_host(), 0, 0)) << "forward";
  lethe::cpu::nll_backward(n, k, labels.data(), dloss.data(), dlogp.data());
  lethe::cuda::nll_backward(n, k, labels_d.get(), dloss_d.get(), dlogp_d.get());
  EXPECT_TRUE(all_close(dlogp, dlogp_d.to_host(), 0, 0)) << "backward";
}

// The CPU leaves an out-of-range label undefined; the CUDA kernels promise a NaN loss and no
// out-of-bounds access.
TEST(CudaLoss, OutOfRangeLabelGivesNaNLoss) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t n = 2, k = 3;
  DeviceFloats logits_d(random_floats(n * k, 120));
  DeviceArray<int32_t> labels_d(std::vector<int32_t>{1, 7});
  auto losses_d = DeviceFloats::poisoned(n), probs_d = DeviceFloats::poisoned(n * k);
  lethe::cuda::softmax_xent_forward(n, k, logits_d.get(), labels_d.get(), losses_d.get(), probs_d.get());
  const auto losses = losses_d.to_host();
  EXPECT_TRUE(std::isfinite(losses[0]));
  EXPECT_TRUE(std::isnan(losses[1]));
  lethe::cuda::nll_forward(n, k, logits_d.get(), labels_d.get(), losses_d.get());
  EXPECT_TRUE(std::isnan(losses_d.to_host()[1]));
}

// ---- optimisers ---------------------------------------------------------------------------------

TEST(CudaOptim, AdamMatchesCpuOverSeveralSteps) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t n = 10007;
  lethe::AdamHyper h;
  h.lr = 1e-2f, h.weight_decay = 1e-2f;
  auto param = random_floats(n, 130);
  std::vector<float> m(param.size(), 0.0f), v(param.size(), 0.0f);
  DeviceFloats param_d(param), m_d(m), v_d(v);
  for (int64_t step = 1; step <= 5; ++step) {
    const auto grad = random_floats(n, 131 + static_cast<uint64_t>(step));
    DeviceFloats grad_d(grad);
    lethe::cpu::adam_step(n, h, step, param.data(), grad.data(), m.data(), v.data());
    lethe::cuda::adam_step(n, h, step, param_d.get(), grad_d.get(), m_d.get(), v_d.get());
  }
  EXPECT_TRUE(all_close(param, param_d.to_host(), 1e-6, 1e-5)) << "param";
  EXPECT_TRUE(all_close(m, m_d.to_host(), 1e-7, 1e-5)) << "m";
  EXPECT_TRUE(all_close(v, v_d.to_host(), 1e-9, 1e-5)) << "v";
}

TEST(CudaOptim, SgdMatchesCpuWithAndWithoutMomentum) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  const int64_t n = 10007;
  for (const float momentum : {0.9f, 0.0f}) {
    SCOPED_TRACE(::testing::Message() << "momentum=" << momentum);
    lethe::SgdHyper h;
    h.lr = 0.05f, h.momentum = momentum, h.weight_decay = 1e-4f;
    auto param = random_floats(n, 140);
    std::vector<float> buf(param.size(), 0.0f);
    DeviceFloats param_d(param), buf_d(buf);
    for (int step = 0; step < 3; ++step) {
      const auto grad = random_floats(n, 141 + static_cast<uint64_t>(step));
      DeviceFloats grad_d(grad);
      // Without momentum the buffer is never read: the CPU gets none, so the CUDA side gets none.
      lethe::cpu::sgd_step(n, h, param.data(), grad.data(), momentum != 0.0f ? buf.data() : nullptr);
      lethe::cuda::sgd_step(n, h, param_d.get(), grad_d.get(), momentum != 0.0f ? buf_d.get() : nullptr);
    }
    EXPECT_TRUE(all_close(param, param_d.to_host(), kMapAtol, 1e-5)) << "param";
    if (momentum != 0.0f) {
      EXPECT_TRUE(all_close(buf, buf_d.to_host(), kMapAtol, 1e-5)) << "momentum buffer";
    }
  }
}

// ---- per-example quantities -----------------------------------------------------------------
// Sums of products over a layer's parameters (up to ~10^3 terms per tile position, in double on
// both sides) from float gradients: the float products round the same way on both backends up
// to FMA contraction, so rtol 1e-4 / atol 1e-6 leave a wide margin.

::testing::AssertionResult doubles_close(const std::vector<double>& cpu, const std::vector<double>& cuda) {
  std::vector<float> a(cpu.begin(), cpu.end()), b(cuda.begin(), cuda.end());
  return all_close(a, b, 1e-6, 1e-4);
}

// Runs one layer's request on both backends (q = 2 queries, every quantity, scale 0.5, starting
// from non-zero accumulators to check "adds to") and compares them.
template <class CpuFn, class CudaFn>
void expect_per_example_match(int64_t n, int64_t params, CpuFn cpu_fn, CudaFn cuda_fn) {
  const int64_t q = 2;
  const auto queries = random_floats(q * params, 150);
  std::vector<double> dots(static_cast<size_t>(n * q), 0.25), norms(static_cast<size_t>(n), 0.5),
      sq(static_cast<size_t>(params), 1.0);
  std::vector<float> grads(static_cast<size_t>(n * params), 0.0f);
  DeviceFloats queries_d(queries), grads_d(grads);
  DeviceArray<double> dots_d(dots), norms_d(norms), sq_d(sq);

  lethe::PerExampleRequest req;
  req.queries = queries.data(), req.q = q, req.ld_queries = params, req.dots = dots.data();
  req.sq_norms = norms.data(), req.sq_sum = sq.data(), req.grads = grads.data(), req.ld_grads = params;
  req.scale = 0.5f;
  cpu_fn(req);
  req.queries = queries_d.get(), req.dots = dots_d.get(), req.sq_norms = norms_d.get(), req.sq_sum = sq_d.get();
  req.grads = grads_d.get();
  cuda_fn(req);

  EXPECT_TRUE(all_close(grads, grads_d.to_host(), 1e-5, 1e-4)) << "per-example gradients";
  EXPECT_TRUE(doubles_close(dots, dots_d.to_host())) << "inner products";
  EXPECT_TRUE(doubles_close(norms, norms_d.to_host())) << "squared norms";
  EXPECT_TRUE(doubles_close(sq, sq_d.to_host())) << "sum of squares";
}

TEST(CudaPerExample, ConvMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const auto& s : conv_shapes()) {
    for (const bool bias : {true, false}) {
      SCOPED_TRACE(describe(s) + (bias ? " bias" : " no bias"));
      const int64_t params = s.co * s.col_rows() + (bias ? s.co : 0);
      const auto a = random_floats(s.n * s.c * s.h * s.w, 151);
      const auto d = random_floats(s.n * s.co * s.col_cols(), 152);
      DeviceFloats a_d(a), d_d(d);
      expect_per_example_match(
          s.n, params, [&](const lethe::PerExampleRequest& r) { lethe::cpu::conv2d_per_example(s, bias, a.data(), d.data(), r); },
          [&](const lethe::PerExampleRequest& r) { lethe::cuda::conv2d_per_example(s, bias, a_d.get(), d_d.get(), r); });
    }
  }
}

TEST(CudaPerExample, ConvWithMoreChannelsThanOneTile) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  // 70 output channels and 3*3*9 = 81 unfolded rows: three tiles each way, ragged edges.
  const Conv2dShape s = conv_shape(6, 9, 10, 10, 70, 3, 3, 1, 1);
  const int64_t params = s.co * s.col_rows() + s.co;
  const auto a = random_floats(s.n * s.c * s.h * s.w, 153);
  const auto d = random_floats(s.n * s.co * s.col_cols(), 154);
  DeviceFloats a_d(a), d_d(d);
  expect_per_example_match(
      s.n, params, [&](const lethe::PerExampleRequest& r) { lethe::cpu::conv2d_per_example(s, true, a.data(), d.data(), r); },
      [&](const lethe::PerExampleRequest& r) { lethe::cuda::conv2d_per_example(s, true, a_d.get(), d_d.get(), r); });
}

TEST(CudaPerExample, LinearMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "bias" : "no bias");
    const lethe::LinearDims dims{37, 129, 11, bias};
    const auto a = random_floats(dims.n * dims.in, 155);
    const auto d = random_floats(dims.n * dims.out, 156);
    DeviceFloats a_d(a), d_d(d);
    expect_per_example_match(
        dims.n, dims.params(), [&](const lethe::PerExampleRequest& r) { lethe::cpu::linear_per_example(dims, a.data(), d.data(), r); },
        [&](const lethe::PerExampleRequest& r) { lethe::cuda::linear_per_example(dims, a_d.get(), d_d.get(), r); });
  }
}

// ---- BatchNorm and global average pooling -------------------------------------------------------

std::vector<lethe::ChannelShape> channel_shapes() {
  // Odd sizes; one channel wide enough to be cut into several slices; a 1x1 plane (ResNet's last
  // stage at small inputs).
  return {{3, 5, 7}, {2, 16, 1024}, {6, 4, 1}, {1, 70, 9}};
}

constexpr double kNormTol = 1e-5;

TEST(CudaNorm, BatchNormTrainingForwardAndBackwardMatchCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const lethe::ChannelShape& s : channel_shapes()) {
    if (s.per_channel() < 2) continue;
    SCOPED_TRACE(::testing::Message() << "n=" << s.n << " c=" << s.c << " hw=" << s.hw);
    const int64_t total = s.n * s.c * s.hw;
    // An offset mean (|μ| ≫ σ for some channels) exercises the two-pass variance.
    const auto x = random_floats(total, 150, 2.0, 3.0), gamma = random_floats(s.c, 151, 0.5, 1.5),
               beta = random_floats(s.c, 152), dy = random_floats(total, 153);
    auto rm = random_floats(s.c, 154), rv = random_floats(s.c, 155, 0.5, 2.0);
    DeviceFloats x_d(x), g_d(gamma), b_d(beta), dy_d(dy), rm_d(rm), rv_d(rv);
    std::vector<float> y(static_cast<size_t>(total)), mean(static_cast<size_t>(s.c)), invstd(mean.size());
    lethe::cpu::batchnorm2d_forward_train(s, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f, y.data(), mean.data(),
                                          invstd.data(), rm.data(), rv.data());
    auto y_d = DeviceFloats::poisoned(y.size()), mean_d = DeviceFloats::poisoned(mean.size()),
         invstd_d = DeviceFloats::poisoned(mean.size());
    lethe::cuda::batchnorm2d_forward_train(s, x_d.get(), g_d.get(), b_d.get(), 1e-5f, 0.1f, y_d.get(), mean_d.get(),
                                           invstd_d.get(), rm_d.get(), rv_d.get());
    EXPECT_TRUE(all_close(y, y_d.to_host(), kNormTol, kNormTol)) << "y";
    EXPECT_TRUE(all_close(mean, mean_d.to_host(), 1e-7, kSumRtol)) << "saved mean";
    EXPECT_TRUE(all_close(invstd, invstd_d.to_host(), 1e-7, kNormTol)) << "saved invstd";
    EXPECT_TRUE(all_close(rm, rm_d.to_host(), 1e-7, kSumRtol)) << "running mean";
    EXPECT_TRUE(all_close(rv, rv_d.to_host(), 1e-7, kNormTol)) << "running var";

    std::vector<float> dx(static_cast<size_t>(total)), dg(static_cast<size_t>(s.c)), db(dg.size());
    lethe::cpu::batchnorm2d_backward_train(s, x.data(), gamma.data(), mean.data(), invstd.data(), dy.data(), dx.data(),
                                           dg.data(), db.data());
    DeviceFloats mean_in(mean), invstd_in(invstd);
    auto dx_d = DeviceFloats::poisoned(dx.size()), dg_d = DeviceFloats::poisoned(dg.size()),
         db_d = DeviceFloats::poisoned(db.size());
    lethe::cuda::batchnorm2d_backward_train(s, x_d.get(), g_d.get(), mean_in.get(), invstd_in.get(), dy_d.get(),
                                            dx_d.get(), dg_d.get(), db_d.get());
    EXPECT_TRUE(all_close(dx, dx_d.to_host(), kNormTol, kNormTol)) << "dx";
    EXPECT_TRUE(all_close(dg, dg_d.to_host(), kNormTol, kNormTol)) << "dgamma";
    EXPECT_TRUE(all_close(db, db_d.to_host(), 1e-6, kSumRtol)) << "dbeta";
    // dx alone: the parameter gradients are not needed for the input's.
    auto dx_only = DeviceFloats::poisoned(dx.size());
    lethe::cuda::batchnorm2d_backward_train(s, x_d.get(), g_d.get(), mean_in.get(), invstd_in.get(), dy_d.get(),
                                            dx_only.get(), nullptr, nullptr);
    EXPECT_TRUE(all_close(dx, dx_only.to_host(), kNormTol, kNormTol)) << "dx alone";
  }
}

TEST(CudaNorm, BatchNormEvaluationForwardAndBackwardMatchCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const lethe::ChannelShape& s : channel_shapes()) {
    SCOPED_TRACE(::testing::Message() << "n=" << s.n << " c=" << s.c << " hw=" << s.hw);
    const int64_t total = s.n * s.c * s.hw;
    const auto x = random_floats(total, 160), gamma = random_floats(s.c, 161, 0.5, 1.5), beta = random_floats(s.c, 162),
               dy = random_floats(total, 163), rm = random_floats(s.c, 164), rv = random_floats(s.c, 165, 0.5, 2.0);
    DeviceFloats x_d(x), g_d(gamma), b_d(beta), dy_d(dy), rm_d(rm), rv_d(rv);
    std::vector<float> y(static_cast<size_t>(total));
    lethe::cpu::batchnorm2d_forward_eval(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), 1e-5f, y.data());
    auto y_d = DeviceFloats::poisoned(y.size());
    lethe::cuda::batchnorm2d_forward_eval(s, x_d.get(), g_d.get(), b_d.get(), rm_d.get(), rv_d.get(), 1e-5f, y_d.get());
    EXPECT_TRUE(all_close(y, y_d.to_host(), kNormTol, kNormTol)) << "y";
    std::vector<float> dx(static_cast<size_t>(total)), dg(static_cast<size_t>(s.c)), db(dg.size());
    lethe::cpu::batchnorm2d_backward_eval(s, x.data(), gamma.data(), rm.data(), rv.data(), 1e-5f, dy.data(), dx.data(),
                                          dg.data(), db.data());
    auto dx_d = DeviceFloats::poisoned(dx.size()), dg_d = DeviceFloats::poisoned(dg.size()),
         db_d = DeviceFloats::poisoned(db.size());
    lethe::cuda::batchnorm2d_backward_eval(s, x_d.get(), g_d.get(), rm_d.get(), rv_d.get(), 1e-5f, dy_d.get(),
                                           dx_d.get(), dg_d.get(), db_d.get());
    EXPECT_TRUE(all_close(dx, dx_d.to_host(), kNormTol, kNormTol)) << "dx";
    EXPECT_TRUE(all_close(dg, dg_d.to_host(), kNormTol, kNormTol)) << "dgamma";
    EXPECT_TRUE(all_close(db, db_d.to_host(), 1e-6, kSumRtol)) << "dbeta";
  }
}

TEST(CudaNorm, GlobalAvgPoolMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  for (const lethe::ChannelShape& s : channel_shapes()) {
    SCOPED_TRACE(::testing::Message() << "n=" << s.n << " c=" << s.c << " hw=" << s.hw);
    const int64_t total = s.n * s.c * s.hw;
    const auto x = random_floats(total, 170), dy = random_floats(s.n * s.c, 171);
    DeviceFloats x_d(x), dy_d(dy);
    std::vector<float> y(static_cast<size_t>(s.n * s.c)), dx(static_cast<size_t>(total));
    lethe::cpu::global_avg_pool_forward(s, x.data(), y.data());
    lethe::cpu::global_avg_pool_backward(s, dy.data(), dx.data());
    auto y_d = DeviceFloats::poisoned(y.size()), dx_d = DeviceFloats::poisoned(dx.size());
    lethe::cuda::global_avg_pool_forward(s, x_d.get(), y_d.get());
    lethe::cuda::global_avg_pool_backward(s, dy_d.get(), dx_d.get());
    EXPECT_TRUE(all_close(y, y_d.to_host(), 1e-7, kSumRtol)) << "y";  // both sum in double, in order
    EXPECT_TRUE(all_close(dx, dx_d.to_host(), 0, 0)) << "dx";
  }
}

TEST(CudaPerExample, BatchNormMatchesCpu) {
  if (!lethe::device::cuda_available()) GTEST_SKIP() << lethe::device::cuda_unavailable_reason();
  // The norm shapes, plus one with more (example, channel) pairs than the grid has warps, so the
  // grid-stride loop comes round.
  auto shapes = channel_shapes();
  shapes.push_back({300, 128, 4});
  for (const lethe::ChannelShape& s : shapes) {
    SCOPED_TRACE(::testing::Message() << "n=" << s.n << " c=" << s.c << " hw=" << s.hw);
    const int64_t total = s.n * s.c * s.hw;
    const auto a = random_floats(total, 180, -1.0, 2.0), d = random_floats(total, 181);
    const auto rm = random_floats(s.c, 182, -0.3, 0.3), rv = random_floats(s.c, 183, 0.5, 2.0);
    DeviceFloats a_d(a), d_d(d), rm_d(rm), rv_d(rv);
    expect_per_example_match(
        s.n, 2 * s.c,
        [&](const lethe::PerExampleRequest& r) {
          lethe::cpu::batchnorm2d_per_example(s, a.data(), rm.data(), rv.data(), 1e-5f, d.data(), r);
        },
        [&](const lethe::PerExampleRequest& r) {
          lethe::cuda::batchnorm2d_per_example(s, a_d.get(), rm_d.get(), rv_d.get(), 1e-5f, d_d.get(), r);
        });
  }
}

}  // namespace

#endif  // LETHE_WITH_CUDA
