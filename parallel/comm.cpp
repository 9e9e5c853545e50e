#include "parallel/comm.h"

#include <dirent.h>

#include <cstdlib>
#include <string_view>

#include "parallel/backends.h"

namespace lethe::parallel {

Comm::Comm(std::unique_ptr<Transport> transport) : t_(std::move(transport)) {
  rank_ = t_->rank();
  size_ = t_->size();
  local_rank_ = t_->local_rank();
}

Comm::~Comm() = default;
Comm::Comm(Comm&&) noexcept = default;
Comm& Comm::operator=(Comm&&) noexcept = default;

void Comm::close() {
  if (t_) t_->finalize();
}

const char* Comm::backend() const { return t_ ? t_->name() : "single process"; }

void Comm::agree(bool failing) {
  if (failed_) throw RemoteFailure(failure_.rank, failure_.exit_code, failure_.message);
  int flag = failing ? 1 : 0;
  t_->allreduce(&flag, 1, Transport::Type::I32, Transport::Op::Max);
  if (flag == 0) return;
  resolve(false, {}, 0);
  throw RemoteFailure(failure_.rank, failure_.exit_code, failure_.message);
}

// Every rank takes part: the lowest failing rank is found, and its exit code and message are
// broadcast from it.
FailureReport Comm::resolve(bool failing, const std::string& message, int exit_code) {
  int first = failing ? rank_ : size_;
  t_->allreduce(&first, 1, Transport::Type::I32, Transport::Op::Min);
  std::string text = rank_ == first ? message : std::string();
  int64_t head[2] = {rank_ == first ? exit_code : 0, static_cast<int64_t>(text.size())};
  t_->broadcast(head, sizeof head, first);
  text.resize(static_cast<size_t>(head[1]));
  if (!text.empty()) t_->broadcast(text.data(), text.size(), first);
  failed_ = true;
  failure_ = {first, static_cast<int>(head[0]), text};
  return failure_;
}

FailureReport Comm::fail(const std::string& message, int exit_code) {
  if (!t_) return {0, exit_code, message};
  if (failed_) return failure_;
  int flag = 1;
  t_->allreduce(&flag, 1, Transport::Type::I32, Transport::Op::Max);
  return resolve(true, message, exit_code);
}

void Comm::finish() {
  if (!t_ || finished_) return;
  finished_ = true;
  if (!failed_) agree(false);
}

void Comm::allreduce_sum(std::span<double> v) {
  if (!t_) return;
  agree(false);
  if (!v.empty()) t_->allreduce(v.data(), v.size(), Transport::Type::F64, Transport::Op::Sum);
}

void Comm::allreduce_sum(std::span<float> v) {
  if (!t_) return;
  agree(false);
  if (!v.empty()) t_->allreduce(v.data(), v.size(), Transport::Type::F32, Transport::Op::Sum);
}

void Comm::allreduce_sum(std::span<int64_t> v) {
  if (!t_) return;
  agree(false);
  if (!v.empty()) t_->allreduce(v.data(), v.size(), Transport::Type::I64, Transport::Op::Sum);
}

bool Comm::allreduce_sum_device(std::span<const DeviceBuffer> buffers) {
  if (!t_) return true;  // one process: the sum over one rank is the buffer itself
  agree(false);
  return t_->allreduce_device(buffers);
}

std::vector<char> Comm::allgather_bytes(const void* data, size_t bytes) {
  if (!t_) {
    const char* p = static_cast<const char*>(data);
    return std::vector<char>(p, p + bytes);
  }
  agree(false);
  std::vector<size_t> counts;
  return t_->allgather(data, bytes, counts);
}

void Comm::broadcast(void* data, size_t bytes, int root) {
  if (!t_) return;
  agree(false);
  t_->broadcast(data, bytes, root);
}

void Comm::broadcast(std::string& s, int root) {
  if (!t_) return;
  int64_t n = static_cast<int64_t>(s.size());
  broadcast(&n, sizeof n, root);
  s.resize(static_cast<size_t>(n));
  if (n) t_->broadcast(s.data(), s.size(), root);
}

void Comm::barrier() {
  if (!t_) return;
  agree(false);
  t_->barrier();
}

void Comm::abort(int exit_code) {
  if (t_) t_->abort(exit_code);
  std::_Exit(exit_code);
}

Comm& comm() {
  static Comm c;
  return c;
}

WorkAlone::WorkAlone() : run_(std::move(comm())) { comm() = Comm(); }
WorkAlone::~WorkAlone() { comm() = std::move(run_); }

namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return end && *end == '\0' && x > 0 && x < (1 << 30) ? static_cast<int>(x) : 0;
}

// GPUs the driver lists, without starting the CUDA runtime (which would fix the visible set).
int driver_gpu_count() {
  DIR* d = ::opendir("/proc/driver/nvidia/gpus");
  if (!d) return 0;
  int n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// One GPU a rank: CUDA_VISIBLE_DEVICES narrowed to entry local_rank mod (entries), before any
// CUDA call, so that device 0 of the process (the one lethe's CUDA context takes) is the rank's.
void choose_gpu(int local_rank) {
  std::vector<std::string> ids;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) {
    std::string_view s(v);
    while (!s.empty()) {
      const size_t comma = s.find(',');
      ids.emplace_back(s.substr(0, comma));
      s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    }
  } else {
    for (int i = 0; i < driver_gpu_count(); ++i) ids.push_back(std::to_string(i));
  }
  if (ids.size() <= 1) return;
  ::setenv("CUDA_VISIBLE_DEVICES", ids[static_cast<size_t>(local_rank) % ids.size()].c_str(), 1);
}

}  // namespace

int launched_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"})
    if (const int n = env_int(name)) return n;
  // SLURM_NTASKS alone is set in a batch script's own shell too; SLURM_STEP_ID marks a task of srun.
  if (std::getenv("SLURM_STEP_ID") && std::getenv("SLURM_PROCID"))
    if (const int n = env_int("SLURM_STEP_NUM_TASKS") ? env_int("SLURM_STEP_NUM_TASKS") : env_int("SLURM_NTASKS")) return n;
  return 1;
}

void start(int& argc, char**& argv) {
  const int n = launched_size();
  if (n <= 1) return;
  std::unique_ptr<Transport> t = open_mpi(argc, argv);
  if (!t)
    fail("started as one of {} ranks, but this lethe was built without MPI (rebuild with -DLETHE_MPI=ON, "
         "or run it alone)", n);
  if (t->size() > 1) choose_gpu(t->local_rank());
  comm() = Comm(std::move(t));
}

}  // namespace lethe::parallel
