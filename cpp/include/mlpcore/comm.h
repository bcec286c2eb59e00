// mlpcore/comm.h — the communicator: what data-parallel training needs from the other processes
// (ranks) of a job. It sits beside the Backend, not inside it: a Backend computes on one device,
// a Communicator moves host memory between processes. The compiled epoch calls it once per step
// on each flat gradient arena, between backward and the finite check + optimizer step.
//
// Two implementations:
//  - communicator_local(): one process (rank 0 of 1); every call is a no-op.
//  - communicator_mpi(...): MPI, reached at run time through the MPI library that mpi4py has
//    already loaded (src/comm/mpi_comm.cpp says why, and how the MPI ABIs are told apart).
//
// Contract shared by both:
//  - buffers are host memory (a CUDA caller stages through the host);
//  - every rank calls the same collectives in the same order with the same n; a collective on
//    one rank waits for the others (a rank that never comes is the launcher's job to end: see
//    mlpcore/distributed.py);
//  - allreduce_sum leaves the element-wise sum over ranks in `buf`, the same bits on every rank;
//  - errors are std::runtime_error carrying the MPI library's message.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "mlpcore/check.h"

namespace mc {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // buf (n,) of dt, host memory, in place: buf = sum over ranks of buf.
  virtual void allreduce_sum(DType dt, void* buf, int64_t n) = 0;
  // buf (n,) of dt, host memory, in place: every rank receives root's buf.
  virtual void broadcast(DType dt, void* buf, int64_t n, int root) = 0;
  virtual void barrier() = 0;
  // Throws std::runtime_error when the communicator can no longer be used (MPI finalized);
  // called once per public entry point, not per step.
  virtual void check_usable() const = 0;
  // "local" or "mpi (<library path>)": for messages and repr.
  virtual std::string describe() const = 0;

  // A few float64 host values (loss sums, metric counts; counts are exact below 2^53).
  void allreduce_sum(double* values, int64_t n) { allreduce_sum(DType::f64, values, n); }
};

std::shared_ptr<Communicator> communicator_local();

// What communicator_mpi needs to call an MPI library it has not linked: where to find the
// functions and the handles to pass them. The Python layer (mlpcore/distributed.py) fills it from
// mpi4py, which initialised MPI and knows its ABI.
struct MpiHandles {
  std::string library;     // a loaded shared object through which MPI_* resolve (mpi4py's MPI extension)
  int handle_bytes = 0;    // sizeof(MPI_Comm) == sizeof(MPI_Datatype) == sizeof(MPI_Op): 4 or 8
  uint64_t comm = 0;       // the communicator (e.g. MPI_COMM_WORLD)
  uint64_t float32 = 0;    // MPI_FLOAT
  uint64_t float64 = 0;    // MPI_DOUBLE
  uint64_t op_sum = 0;     // MPI_SUM
  uint64_t in_place = 0;   // the address MPI_IN_PLACE stands for
};

// Binds the MPI functions in handles.library (which must already be loaded: nothing is loaded
// here) and checks that MPI is initialised and the communicator answers. ValueError for handles
// that cannot be used, RuntimeError when MPI is not (or no longer) initialised.
std::shared_ptr<Communicator> communicator_mpi(const MpiHandles& handles);

}  // namespace mc
