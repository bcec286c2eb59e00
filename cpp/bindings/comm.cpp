// bindings/comm.cpp — mlpcore._core.Communicator: the local and the MPI communicator
// (mlpcore/comm.h). Validates at the edge (array dtype, layout, writability; handle ranges;
// root), releases the GIL around every collective. mlpcore/distributed.py is the public face.
#include <string>

#include "input.h"
#include "mlpcore/comm.h"

namespace mc_py {

namespace {

// A float32/float64, native-order, C-contiguous, writable numpy array, used in place.
struct HostVector {
  DType dt;
  void* data;
  int64_t n;
};

HostVector host_vector(py::handle obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw mc::TypeError(std::string(name) + ": expected a numpy array, got " +
                        std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(obj);
  const py::dtype d = a.dtype();
  DType dt;
  if (d.kind() == 'f' && d.itemsize() == 4)
    dt = DType::f32;
  else if (d.kind() == 'f' && d.itemsize() == 8)
    dt = DType::f64;
  else
    throw mc::TypeError(std::string(name) + ": expected float32 or float64, got " + std::string(py::str(d)));
  if (!d.attr("isnative").cast<bool>())
    throw mc::TypeError(std::string(name) + ": expected native byte order, got " + std::string(py::str(d)));
  if (!(a.flags() & py::array::c_style))
    throw mc::ValueError(std::string(name) + ": expected a C-contiguous array (it is reduced in place)");
  if (!a.writeable()) throw mc::ValueError(std::string(name) + ": expected a writable array (it is reduced in place)");
  return {dt, a.mutable_data(), int64_t(a.size())};
}

// A Python int as the bits of an MPI handle of `bytes` bytes: signed or unsigned values of that
// width are accepted (mpi4py reports int handles as C ints, which may be negative).
uint64_t handle_bits(const py::int_& v, int bytes, const char* name) {
  auto refuse = [&]() {
    return mc::ValueError(std::string(name) + ": " + std::string(py::str(v)) + " does not fit an MPI handle of " +
                          std::to_string(bytes) + " bytes");
  };
  int overflow = 0;
  const long long s = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (overflow < 0) throw refuse();
  if (overflow > 0) {  // above LLONG_MAX: only an unsigned 64-bit handle fits
    const unsigned long long u = PyLong_AsUnsignedLongLong(v.ptr());
    if (PyErr_Occurred()) {
      PyErr_Clear();
      throw refuse();
    }
    // mpi4py reports MPICH's derived handles (Dup, Split: 0x84000000 and up) sign-extended to 64
    // bits as unsigned values, e.g. 0xffffffff84000000: the low 32 bits are the handle.
    if (bytes == 4 && u >= 0xFFFFFFFF80000000ULL) return uint64_t(uint32_t(u));
    if (bytes != 8) throw refuse();
    return uint64_t(u);
  }
  if (bytes == 4) {
    if (s < -2147483648LL || s > 4294967295LL) throw refuse();
    return uint64_t(uint32_t(s));
  }
  return uint64_t(s);
}

}  // namespace

void bind_comm(py::module_& m) {
  py::class_<Communicator, std::shared_ptr<Communicator>>(
      m, "Communicator",
      "The processes of a data-parallel job (mlpcore/comm.h). Build with local_communicator() or, under "
      "mpiexec, through mlpcore.distributed.init().")
      .def_property_readonly("rank", &Communicator::rank)
      .def_property_readonly("size", &Communicator::size)
      .def("allreduce_sum", [](Communicator& c, py::handle buf) {
        const HostVector v = host_vector(buf, "buf");
        c.check_usable();
        py::gil_scoped_release nogil;
        c.allreduce_sum(v.dt, v.data, v.n);
      }, py::arg("buf"), "buf (any shape, float32/float64, C-contiguous): in place, the sum over ranks.")
      .def("broadcast", [](Communicator& c, py::handle buf, int root) {
        const HostVector v = host_vector(buf, "buf");
        if (root < 0 || root >= c.size())
          throw mc::ValueError("root: expected a rank in [0, " + std::to_string(c.size()) + "), got " +
                               std::to_string(root));
        c.check_usable();
        py::gil_scoped_release nogil;
        c.broadcast(v.dt, v.data, v.n, root);
      }, py::arg("buf"), py::arg("root") = 0, "buf (float32/float64, C-contiguous): in place, root's values.")
      .def("barrier", [](Communicator& c) {
        c.check_usable();
        py::gil_scoped_release nogil;
        c.barrier();
      })
      .def("__repr__", [](const Communicator& c) {
        return "Communicator(rank=" + std::to_string(c.rank()) + ", size=" + std::to_string(c.size()) + ", " +
               c.describe() + ")";
      });
  m.def("local_communicator", &communicator_local, "The communicator of a one-process job (rank 0 of 1).");
  m.def("mpi_communicator", [](const std::string& library, int handle_bytes, const py::int_& comm,
                               const py::int_& float32, const py::int_& float64, const py::int_& op_sum,
                               const py::int_& in_place) {
    if (handle_bytes != 4 && handle_bytes != 8)
      throw mc::ValueError("handle_bytes: expected 4 (MPICH ABI) or 8 (MPI-5 standard ABI, Open MPI), got " +
                           std::to_string(handle_bytes));
    MpiHandles h;
    h.library = library;
    h.handle_bytes = handle_bytes;
    h.comm = handle_bits(comm, handle_bytes, "comm");
    h.float32 = handle_bits(float32, handle_bytes, "float32");
    h.float64 = handle_bits(float64, handle_bytes, "float64");
    h.op_sum = handle_bits(op_sum, handle_bytes, "op_sum");
    h.in_place = handle_bits(in_place, 8, "in_place");
    return communicator_mpi(h);
  }, py::arg("library"), py::arg("handle_bytes"), py::arg("comm"), py::arg("float32"), py::arg("float64"),
     py::arg("op_sum"), py::arg("in_place"),
     "An MPI communicator over a library already loaded and initialised (mlpcore.distributed.init() builds it "
     "from mpi4py): library = that library or a module linked to it; the rest are handles of its ABI.");
}

}  // namespace mc_py
