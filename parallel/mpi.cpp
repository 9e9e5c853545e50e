// The MPI backend: MPI_COMM_WORLD, its collectives on host memory, NCCL for device memory.
#include "parallel/backends.h"

#if LETHE_WITH_MPI
// The C interface only: Open MPI's deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <numeric>

namespace lethe::parallel {
namespace {

void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(status, text, &len);
  fail("{} failed: {}", call, std::string(text, static_cast<size_t>(len)));
}

MPI_Datatype mpi_type(Transport::Type t) {
  switch (t) {
    case Transport::Type::I32: return MPI_INT32_T;
    case Transport::Type::I64: return MPI_INT64_T;
    case Transport::Type::F32: return MPI_FLOAT;
    case Transport::Type::F64: return MPI_DOUBLE;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(Transport::Op op) {
  switch (op) {
    case Transport::Op::Sum: return MPI_SUM;
    case Transport::Op::Max: return MPI_MAX;
    case Transport::Op::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

// MPI counts are int: large buffers go in pieces of at most 2^30 elements.
constexpr size_t kPiece = size_t{1} << 30;

class MpiTransport final : public Transport {
 public:
  MpiTransport() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm host;  // the ranks sharing this host's memory: local rank for the GPU choice
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &host);
    MPI_Comm_rank(host, &local_rank_);
    MPI_Comm_free(&host);
  }
  const char* name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }

  void allreduce(void* data, size_t count, Type type, Op op) override {
    const size_t width = type == Type::I32 || type == Type::F32 ? 4 : 8;
    char* p = static_cast<char*>(data);
    for (size_t done = 0; done < count; done += kPiece) {
      const int n = static_cast<int>(std::min(kPiece, count - done));
      check(MPI_Allreduce(MPI_IN_PLACE, p + done * width, n, mpi_type(type), mpi_op(op), MPI_COMM_WORLD), "MPI_Allreduce");
    }
  }

  std::vector<char> allgather(const void* data, size_t bytes, std::vector<size_t>& counts) override {
    int64_t mine = static_cast<int64_t>(bytes);
    std::vector<int64_t> all(static_cast<size_t>(size_));
    check(MPI_Allgather(&mine, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, MPI_COMM_WORLD), "MPI_Allgather");
    counts.assign(all.begin(), all.end());
    const int64_t total = std::accumulate(all.begin(), all.end(), int64_t{0});
    if (total > INT_MAX) fail("all-gather of {} bytes: more than MPI's int counts reach in one call", total);
    std::vector<int> cnt(all.begin(), all.end()), displ(static_cast<size_t>(size_), 0);
    for (int r = 1; r < size_; ++r) displ[r] = displ[r - 1] + cnt[r - 1];
    std::vector<char> out(static_cast<size_t>(total));
    check(MPI_Allgatherv(data, static_cast<int>(bytes), MPI_BYTE, out.data(), cnt.data(), displ.data(), MPI_BYTE,
                         MPI_COMM_WORLD),
          "MPI_Allgatherv");
    return out;
  }

  void broadcast(void* data, size_t bytes, int root) override {
    char* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes; done += kPiece)
      check(MPI_Bcast(p + done, static_cast<int>(std::min(kPiece, bytes - done)), MPI_BYTE, root, MPI_COMM_WORLD),
            "MPI_Bcast");
  }

  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

  void finalize() override {
    nccl_.reset();
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }

  bool allreduce_device(std::span<const DeviceBuffer> buffers) override {
    if (!nccl_tried_) {
      nccl_tried_ = true;
      nccl_ = open_nccl(*this);
    }
    if (!nccl_) return false;
    nccl_->allreduce_sum(buffers);
    return true;
  }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  bool nccl_tried_ = false;
  std::unique_ptr<NcclGroup> nccl_;
};

}  // namespace

std::unique_ptr<Transport> open_mpi(int& argc, char**& argv) {
  int provided = 0;
  // Collectives are called from the main thread only (never inside an OpenMP region).
  check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  return std::make_unique<MpiTransport>();
}

bool built_with_mpi() { return true; }

}  // namespace lethe::parallel

#else

namespace lethe::parallel {
std::unique_ptr<Transport> open_mpi(int&, char**&) { return nullptr; }
bool built_with_mpi() { return false; }
}  // namespace lethe::parallel

#endif
