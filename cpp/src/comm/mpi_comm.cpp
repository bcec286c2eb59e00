// comm/mpi_comm.cpp — the MPI communicator, bound to the MPI library at run time.
//
// How the core reaches MPI, and why this way:
//  - The core must build and import where there is no MPI at all (CI's default install, the
//    wheels), and `pip install "mlpcore[mpi]"` (mpi4py + the mpich wheel) must then work with no
//    compiler flag and no rebuild. So the core neither includes mpi.h nor links libmpi. Linking
//    would make libmpi a load-time dependency of _core; a second extension compiled against mpi.h
//    would need a compiler at install time, or one wheel per MPI implementation.
//  - mpi4py already does the hard part: it finds the MPI library, initialises MPI (thread level
//    MULTIPLE), finalises it at exit, and knows the library's ABI. We take from it only handles
//    (communicator, datatypes, MPI_SUM, MPI_IN_PLACE) and the file name of its extension module.
//    The MPI functions are looked up with dlopen(RTLD_NOLOAD) + dlsym in the dependency scope of
//    that module, so they are exactly the functions mpi4py calls: the same library instance
//    (nothing is loaded here, a second copy of MPI is never opened).
//  - The training step then calls MPI_Allreduce from C++ with the GIL released; it never returns
//    to Python per step.
//
// ABIs. MPI handles are ints in the MPICH ABI (MPICH, Intel MPI, MVAPICH, Cray MPICH; the mpich
// wheel's libmpi.so.12) and pointers in the MPI-5 standard ABI (libmpi_abi.so) and in Open MPI.
// The functions used here have the same prototypes in all of them up to the handle type, and
// return int error codes, so the communicator is a template over the handle type, chosen from
// handle_bytes = sizeof(MPI_Comm) (4: int handles, 8: pointer handles); any other size is refused.
// Constants (MPI_FLOAT, MPI_SUM, MPI_IN_PLACE) differ between ABIs: they come from mpi4py (or,
// for a library used without mpi4py, from that library's own header), never from a table here.
#if defined(_WIN32)
#define MLPCORE_NO_DLOPEN 1  // no dlopen/dlsym: the MPI communicator is refused at run time
#else
#include <dlfcn.h>
#endif

#include <algorithm>
#include <climits>
#include <type_traits>
#include <vector>

#include "mlpcore/comm.h"

namespace mc {

#if defined(MLPCORE_NO_DLOPEN)
std::shared_ptr<Communicator> communicator_mpi(const MpiHandles&) {
  MC_CHECK(false, "communicator: MPI is not supported on this platform (no dlopen)");
  return nullptr;
}
#else
namespace {

// Counts are C ints in MPI's classic interface: larger buffers go in pieces of this many elements.
constexpr int64_t kMaxCount = int64_t(1) << 30;

// H: the handle type of the library's ABI (int32_t or void*).
template <class H>
struct MpiFunctions {
  int (*initialized)(int*) = nullptr;
  int (*finalized)(int*) = nullptr;
  int (*comm_rank)(H, int*) = nullptr;
  int (*comm_size)(H, int*) = nullptr;
  int (*allreduce)(const void*, void*, int, H, H, H) = nullptr;
  int (*bcast)(void*, int, H, int, H) = nullptr;
  int (*barrier)(H) = nullptr;
  int (*error_string)(int, char*, int*) = nullptr;
};

template <class H>
H handle_cast(uint64_t bits) {
  if constexpr (std::is_pointer_v<H>)
    return reinterpret_cast<H>(uintptr_t(bits));
  else
    return H(uint32_t(bits));  // the low 32 bits, as the ABI's int
}

// Holds one reference to an already loaded shared object (RTLD_NOLOAD) for the communicator's
// lifetime, so that the bound function pointers stay valid.
class LoadedLibrary {
 public:
  explicit LoadedLibrary(const std::string& path) {
    handle_ = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    MC_CHECK_VALUE(handle_ != nullptr, "communicator: '", path,
                   "' is not loaded in this process (it must be the MPI library in use, or a module "
                   "linked to it, such as mpi4py.MPI after `from mpi4py import MPI`)");
  }
  ~LoadedLibrary() {
    if (handle_) dlclose(handle_);
  }
  LoadedLibrary(const LoadedLibrary&) = delete;
  LoadedLibrary& operator=(const LoadedLibrary&) = delete;

  template <class F>
  void bind(F& fn, const char* name, const std::string& path) const {
    fn = reinterpret_cast<F>(dlsym(handle_, name));
    MC_CHECK_VALUE(fn != nullptr, "communicator: ", name, " not found through '", path,
                   "' (not an MPI library, nor linked to one)");
  }

 private:
  void* handle_ = nullptr;
};

template <class H>
class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const MpiHandles& h) : lib_(h.library), path_(h.library) {
    lib_.bind(fn_.initialized, "MPI_Initialized", path_);
    lib_.bind(fn_.finalized, "MPI_Finalized", path_);
    lib_.bind(fn_.comm_rank, "MPI_Comm_rank", path_);
    lib_.bind(fn_.comm_size, "MPI_Comm_size", path_);
    lib_.bind(fn_.allreduce, "MPI_Allreduce", path_);
    lib_.bind(fn_.bcast, "MPI_Bcast", path_);
    lib_.bind(fn_.barrier, "MPI_Barrier", path_);
    lib_.bind(fn_.error_string, "MPI_Error_string", path_);
    comm_ = handle_cast<H>(h.comm);
    float32_ = handle_cast<H>(h.float32);
    float64_ = handle_cast<H>(h.float64);
    sum_ = handle_cast<H>(h.op_sum);
    in_place_ = reinterpret_cast<void*>(uintptr_t(h.in_place));
    check_usable();
    check(fn_.comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(fn_.comm_size(comm_, &size_), "MPI_Comm_size");
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(DType dt, void* buf, int64_t n) override {
    char* p = static_cast<char*>(buf);
    for (int64_t done = 0; done < n;) {
      const int64_t count = std::min(kMaxCount, n - done);
      check(fn_.allreduce(in_place_, p + size_t(done) * dtype_size(dt), int(count), datatype(dt), sum_, comm_),
            "MPI_Allreduce");
      done += count;
    }
  }

  void broadcast(DType dt, void* buf, int64_t n, int root) override {
    char* p = static_cast<char*>(buf);
    for (int64_t done = 0; done < n;) {
      const int64_t count = std::min(kMaxCount, n - done);
      check(fn_.bcast(p + size_t(done) * dtype_size(dt), int(count), datatype(dt), root, comm_), "MPI_Bcast");
      done += count;
    }
  }

  void barrier() override { check(fn_.barrier(comm_), "MPI_Barrier"); }

  void check_usable() const override {
    int initialized = 0, finalized = 0;
    fn_.initialized(&initialized);
    fn_.finalized(&finalized);
    MC_CHECK(initialized && !finalized, "communicator: MPI is ", finalized ? "already finalized" : "not initialized",
             " (initialise it with mlpcore.distributed.init(); it is finalized at exit)");
  }

  std::string describe() const override {
    return std::string("mpi (") + (std::is_pointer_v<H> ? "pointer" : "int") + " handles, " + path_ + ")";
  }

 private:
  H datatype(DType dt) const { return dt == DType::f32 ? float32_ : float64_; }

  void check(int err, const char* what) const {
    if (err == 0) return;  // MPI_SUCCESS is 0 in every ABI
    char msg[8192] = {0};  // larger than MPI_MAX_ERROR_STRING of any implementation
    int len = 0;
    if (fn_.error_string(err, msg, &len) != 0) len = 0;
    MC_CHECK(false, "communicator: ", what, " failed with MPI error ", err, ": ",
             std::string(msg, size_t(std::clamp(len, 0, int(sizeof(msg))))));
  }

  LoadedLibrary lib_;
  std::string path_;
  MpiFunctions<H> fn_;
  H comm_{}, float32_{}, float64_{}, sum_{};
  void* in_place_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::shared_ptr<Communicator> communicator_mpi(const MpiHandles& h) {
  MC_CHECK_VALUE(!h.library.empty(), "communicator: library must name the loaded MPI library or mpi4py's module");
  MC_CHECK_VALUE(h.handle_bytes == 4 || h.handle_bytes == 8, "communicator: MPI handles of ", h.handle_bytes,
                 " bytes are not supported (4: MPICH ABI, int handles; 8: MPI-5 standard ABI or Open MPI, "
                 "pointer handles)");
  if (h.handle_bytes == 4) return std::make_shared<MpiCommunicator<int32_t>>(h);
  return std::make_shared<MpiCommunicator<void*>>(h);
}

#endif  // MLPCORE_NO_DLOPEN

}  // namespace mc
