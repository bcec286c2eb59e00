// test_comm.cpp — the communicator without MPI: the local communicator is rank 0 of 1 and leaves
// buffers as they are; communicator_mpi refuses handle sizes no MPI ABI has and libraries that are
// not loaded or are not MPI, before calling anything. (MPI itself is tested from Python, in 2-rank
// jobs under mpiexec: tests/distributed.)
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <vector>

#include "mlpcore/comm.h"

using namespace mc;

TEST(Comm, LocalIsRankZeroOfOneAndLeavesBuffersAsTheyAre) {
  auto c = communicator_local();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  std::vector<float> f{1.5f, -2.f, 3.f};
  std::vector<double> d{0.25, 7.0};
  c->allreduce_sum(DType::f32, f.data(), int64_t(f.size()));
  c->allreduce_sum(d.data(), int64_t(d.size()));
  c->broadcast(DType::f64, d.data(), int64_t(d.size()), 0);
  c->barrier();
  c->check_usable();
  EXPECT_EQ(f, (std::vector<float>{1.5f, -2.f, 3.f}));
  EXPECT_EQ(d, (std::vector<double>{0.25, 7.0}));
  EXPECT_EQ(c->describe(), "local");
}

TEST(Comm, MpiRefusesHandleSizesOfNoAbi) {
  MpiHandles h;
  h.library = "libc.so.6";
  for (int bytes : {0, 2, 16}) {
    h.handle_bytes = bytes;
    EXPECT_THROW(communicator_mpi(h), ValueError) << bytes;
  }
}

TEST(Comm, MpiRefusesLibrariesNotLoadedOrNotMpi) {
  MpiHandles h;
  h.handle_bytes = 4;
  h.library = "libmlpcore-no-such-library.so";
  EXPECT_THROW(communicator_mpi(h), ValueError);
  h.library = "libc.so.6";  // loaded in every process, and no MPI in it
  try {
    communicator_mpi(h);
    FAIL() << "libc accepted as an MPI library";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("MPI_Initialized not found"), std::string::npos) << e.what();
  }
}
