#pragma once
// The backends behind parallel::Comm, each compiled only when the build has its library.
#include <memory>

#include "parallel/comm.h"

namespace lethe::parallel {

// MPI_COMM_WORLD after MPI_Init_thread; nullptr in a build without MPI.
std::unique_ptr<Transport> open_mpi(int& argc, char**& argv);

// Sums of device buffers over NCCL, for the ranks of an MPI world (the unique id goes out from
// rank 0 over `broadcast`). Opened on first use, so runs on the CPU never touch NCCL.
class NcclGroup {
 public:
  virtual ~NcclGroup() = default;
  virtual void allreduce_sum(std::span<const DeviceBuffer> buffers) = 0;
};
// nullptr in a build without NCCL.
std::unique_ptr<NcclGroup> open_nccl(Transport& world);

}  // namespace lethe::parallel
