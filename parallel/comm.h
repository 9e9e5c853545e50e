#pragma once
// Collectives across the processes of one run. A run is one process (the default: every call
// below returns at once and behaviour is exactly that of a build without this module) or N
// ranks started by a launcher (mpirun, srun) in a build with MPI, all running the same command.
//
// Failures: a rank that throws must not leave the others waiting in a collective. Every
// collective therefore opens with a one-integer agreement on whether some rank has failed; a
// failing rank joins that agreement through fail() instead of the collective the others are in,
// and the lowest failing rank's message and exit code reach every rank. The others throw
// RemoteFailure from the collective they were in; rank 0 alone prints. A rank that dies without
// unwinding (SIGKILL, a crash) is the launcher's to report: it ends the job.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "util/error.h"

namespace lethe::parallel {

// Thrown on the ranks that did not fail, from the collective that learnt of another's failure.
class RemoteFailure : public Error {
 public:
  RemoteFailure(int rank, int exit_code, const std::string& what) : Error(what), rank_(rank), exit_code_(exit_code) {}
  int rank() const { return rank_; }
  int exit_code() const { return exit_code_; }

 private:
  int rank_, exit_code_;
};

// The first failure of a run, as every rank learns it.
struct FailureReport {
  int rank = 0;
  int exit_code = 1;
  std::string message;
};

// A float buffer in device memory.
struct DeviceBuffer {
  float* data = nullptr;
  size_t count = 0;
};

// What a backend moves; the Comm above it adds the failure agreement.
class Transport {
 public:
  enum class Type { I32, I64, F32, F64 };
  enum class Op { Sum, Max, Min };
  virtual ~Transport() = default;
  virtual const char* name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;
  virtual void allreduce(void* data, size_t count, Type type, Op op) = 0;
  // Every rank's `bytes` concatenated in rank order; `counts` receives each rank's byte count.
  virtual std::vector<char> allgather(const void* data, size_t bytes, std::vector<size_t>& counts) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  [[noreturn]] virtual void abort(int exit_code) = 0;
  virtual void finalize() = 0;
  // Sums of float buffers in device memory (NCCL, the buffers in one group); false when the
  // backend has no such path.
  virtual bool allreduce_device(std::span<const DeviceBuffer> buffers) { return false; }
};

class Comm {
 public:
  Comm() = default;  // one process
  explicit Comm(std::unique_ptr<Transport> transport);
  ~Comm();
  Comm(Comm&&) noexcept;
  Comm& operator=(Comm&&) noexcept;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  bool multi() const { return size_ > 1; }
  const char* backend() const;

  // In-place sums over ranks.
  void allreduce_sum(std::span<double> v);
  void allreduce_sum(std::span<float> v);
  void allreduce_sum(std::span<int64_t> v);
  // Device memory, every buffer summed in place: through NCCL when the build has it (true),
  // else false and the caller stages them through the host.
  bool allreduce_sum_device(std::span<const DeviceBuffer> buffers);
  // Every rank's block, concatenated in rank order (blocks may differ in length).
  template <typename T>
  std::vector<T> allgather(std::span<const T> block) {
    const auto bytes = allgather_bytes(block.data(), block.size() * sizeof(T));
    std::vector<T> out(bytes.size() / sizeof(T));
    if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }
  std::vector<char> allgather_bytes(const void* data, size_t bytes);
  void broadcast(void* data, size_t bytes, int root = 0);
  void broadcast(std::string& s, int root = 0);
  void barrier();
  // Ends every rank at once, through the launcher (MPI_Abort); for when unwinding is not possible.
  [[noreturn]] void abort(int exit_code);

  // Called by a rank that caught an exception it cannot recover from: joins the agreement the
  // others are in (or will reach) and returns the run's first failure (this rank's or a lower
  // one's). After it, or after a RemoteFailure, every collective throws at once.
  FailureReport fail(const std::string& message, int exit_code);
  // The last collective of a run that went well on this rank; throws RemoteFailure when another
  // failed. Then the backend is closed.
  void finish();
  bool failed() const { return failed_; }
  const FailureReport& failure() const { return failure_; }  // when failed()
  // Closes the backend (MPI_Finalize); every rank calls it last, whether the run went well or not.
  void close();

 private:
  void agree(bool failing);  // the failure agreement; throws RemoteFailure when some rank failed
  FailureReport resolve(bool failing, const std::string& message, int exit_code);

  std::unique_ptr<Transport> t_;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  bool failed_ = false, finished_ = false;
  FailureReport failure_;
};

// The process's communicator: one process until start() found a launcher.
Comm& comm();

// While one lives, this process works alone: comm() is a one-process communicator (rank 0 of 1,
// every collective returns its input at once), so a training run, an evaluation or a pass over D
// started inside it runs as in a run of one process, without a collective, and computes one
// process's bits (a split batch or a sharded pass would not: their sums associate differently).
// It is for work a rank does on its own between the run's collectives (the benchmark's models,
// one a rank: parallel/rounds.h). A guard rather than an option of each pass, because everything
// below reads comm(): one switch covers training, evaluation and whatever they call. The run's
// communicator, with what it knows of failures, is back when the guard ends (by an exception
// too, before main joins the failure agreement); a failure on another rank reaches this one at
// its next collective after that.
class WorkAlone {
 public:
  WorkAlone();
  ~WorkAlone();
  WorkAlone(const WorkAlone&) = delete;
  WorkAlone& operator=(const WorkAlone&) = delete;

 private:
  Comm run_;
};

// How the process was started: the world size a launcher announces in the environment
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_SIZE via the MPI library, SLURM_NTASKS with
// SLURM_PROCID), 1 when none does.
int launched_size();

// Chooses the backend: MPI when a launcher started this process as one of several ranks and the
// build has MPI; one process otherwise. Throws an Error when a launcher asked for several ranks
// and the build has no MPI (N copies would each write the same outputs). On a build with CUDA,
// each rank then takes GPU local_rank mod (GPUs on the host).
void start(int& argc, char**& argv);

// Which backends this build has, for `lethe info`.
bool built_with_mpi();
bool built_with_nccl();

}  // namespace lethe::parallel
