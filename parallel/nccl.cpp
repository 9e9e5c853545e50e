// NCCL for device buffers: one communicator over the MPI world, one GPU a rank (chosen by local
// rank in parallel::start), sums on a stream of its own. Compiled when the build has CUDA and
// NCCL; it runs only where GPUs are.
#include "parallel/backends.h"

#if LETHE_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

namespace lethe::parallel {
namespace {

void check_cuda(cudaError_t e, const char* call) {
  if (e != cudaSuccess) fail("{} failed: {}", call, cudaGetErrorString(e));
}
void check_nccl(ncclResult_t r, const char* call) {
  if (r != ncclSuccess) fail("{} failed: {}", call, ncclGetErrorString(r));
}

class Nccl final : public NcclGroup {
 public:
  explicit Nccl(Transport& world) {
    ncclUniqueId id{};
    if (world.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    world.broadcast(&id, sizeof id, 0);
    int device = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    check_nccl(ncclCommInitRank(&comm_, world.size(), id, world.rank()), "ncclCommInitRank");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  }
  ~Nccl() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  // The caller's work on the buffers may be queued on any stream: the device is synchronised
  // first, and the sums are complete when this returns. The buffers go as one NCCL group (one
  // launch), so a model's many small gradients cost one collective's latency, not one each.
  void allreduce_sum(std::span<const DeviceBuffer> buffers) override {
    check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    for (const DeviceBuffer& b : buffers)
      check_nccl(ncclAllReduce(b.data, b.data, b.count, ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce");
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

 private:
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<NcclGroup> open_nccl(Transport& world) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    return nullptr;
  }
  return std::make_unique<Nccl>(world);
}

bool built_with_nccl() { return true; }

}  // namespace lethe::parallel

#else

namespace lethe::parallel {
std::unique_ptr<NcclGroup> open_nccl(Transport&) { return nullptr; }
bool built_with_nccl() { return false; }
}  // namespace lethe::parallel

#endif
