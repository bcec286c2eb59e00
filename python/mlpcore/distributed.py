"""mlpcore.distributed: data-parallel training over MPI (which process am I, how many are we).

Set-up and launch: every process (rank) runs the same script on the same data::

    pip install "mlpcore[mpi]"       # mpi4py and the MPICH wheel (mpiexec included)
    mpiexec -n 4 python train.py     # train.py: mc.Trainer(model, ..., distributed=True)

``Trainer(..., distributed=True)`` calls :func:`init` itself. Run without a launcher, the job is one
process (world size 1) and trains as it would without ``distributed=True``.

How the core reaches MPI: mpi4py (imported by :func:`init`, never by ``import mlpcore``) finds the
MPI library, initialises MPI and finalises it at exit. :func:`init` hands the C++ core the handles of
the communicator and of the datatypes it reduces, and the file of mpi4py's extension module; the core
looks the MPI functions up in the library that module already loaded and calls them with the GIL
released (``cpp/src/comm/mpi_comm.cpp`` says why, and how the MPICH ABI with int handles and the
MPI-5 standard ABI with pointer handles are both served). Nothing about MPI is compiled into mlpcore.

Failure: in a job of several ranks, an uncaught exception on any rank prints its traceback and calls
``MPI_Abort``, which ends every rank with a non-zero exit status within seconds, instead of leaving
the others waiting forever in the next collective. A rank killed by a signal ends the job too
(``mpiexec`` notices and stops the others). A rank that returns or calls ``sys.exit()`` early while
the others still train is a mismatched collective and hangs, as in any MPI program; run the script
as ``mpiexec -n 4 python -m mpi4py train.py`` to turn an early non-zero ``sys.exit`` into an abort
as well.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import numpy as np

from . import _core

__all__ = ["abort", "allgather_object", "allreduce_sum", "barrier", "broadcast_object", "communicator",
           "init", "is_initialized", "is_main", "local_world_size", "rank", "world_size"]

_MPI_EXTRA = 'pip install "mlpcore[mpi]" (mpi4py and the mpich wheel, which brings mpiexec)'


class _State:
    def __init__(self, comm: Any, core: "_core.Communicator") -> None:
        self.mpi_comm = comm  # the mpi4py communicator
        self.core = core  # the C++ communicator the compiled epoch calls


_state: Optional[_State] = None


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"mlpcore.distributed needs mpi4py and an MPI library: {_MPI_EXTRA}") from e
    return MPI


def _core_communicator(MPI: Any, comm: Any) -> "_core.Communicator":
    """The C++ communicator over mpi4py's MPI library and communicator ``comm``."""
    handle_bytes = MPI._sizeof(MPI.Comm)
    if MPI._sizeof(MPI.Datatype) != handle_bytes or MPI._sizeof(MPI.Op) != handle_bytes:
        raise RuntimeError(
            "mlpcore.distributed: this MPI library's handles differ in size between MPI_Comm, MPI_Datatype "
            f"and MPI_Op ({handle_bytes}, {MPI._sizeof(MPI.Datatype)}, {MPI._sizeof(MPI.Op)}); not supported")
    return _core.mpi_communicator(
        library=MPI.__file__, handle_bytes=handle_bytes, comm=MPI._handleof(comm),
        float32=MPI._handleof(MPI.FLOAT), float64=MPI._handleof(MPI.DOUBLE), op_sum=MPI._handleof(MPI.SUM),
        in_place=int(MPI.IN_PLACE))


def _install_abort_on_exception(MPI: Any) -> None:
    """sys.excepthook: print the traceback as usual, then MPI_Abort the whole job (exit status 1)."""
    previous = sys.excepthook

    def abort_job(exc_type, exc, tb):
        try:
            previous(exc_type, exc, tb)
            world = MPI.COMM_WORLD
            sys.stderr.write(f"mlpcore.distributed: uncaught {exc_type.__name__} on rank {world.Get_rank()} "
                             f"of {world.Get_size()}; aborting the job\n")
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            MPI.COMM_WORLD.Abort(1)

    sys.excepthook = abort_job


def init(comm: Any = None) -> "_core.Communicator":
    """Join the job: MPI through mpi4py (``MPI.COMM_WORLD`` unless ``comm``, an mpi4py communicator).

    Idempotent: later calls return the same communicator (``init()`` with no argument included, so
    a job that joined with a sub-communicator keeps it; a different ``comm`` is a RuntimeError).
    Without a launcher this is a job of one process. Returns the core's communicator (rank, size,
    in-place ``allreduce_sum`` of float32/float64 arrays, ``broadcast``, ``barrier``).
    """
    global _state
    MPI = _import_mpi()
    if comm is None:
        if _state is not None:  # joined already (with COMM_WORLD or the communicator given then)
            return _state.core
        comm = MPI.COMM_WORLD
    if not isinstance(comm, MPI.Comm):
        raise TypeError(f"comm: expected an mpi4py communicator (mpi4py.MPI.Comm), got {type(comm).__name__}")
    if _state is not None:
        if MPI.Comm.Compare(_state.mpi_comm, comm) != MPI.IDENT:
            raise RuntimeError("mlpcore.distributed is already initialised with another communicator")
        return _state.core
    if MPI.Is_finalized():
        raise RuntimeError("mlpcore.distributed.init: MPI has already been finalized in this process")
    core = _core_communicator(MPI, comm)
    if MPI.COMM_WORLD.Get_size() > 1:
        _install_abort_on_exception(MPI)
    _state = _State(comm, core)
    return core


def is_initialized() -> bool:
    """True after :func:`init`."""
    return _state is not None


def _initialized() -> _State:
    if _state is None:
        raise RuntimeError("mlpcore.distributed is not initialised: call mlpcore.distributed.init() first "
                           "(Trainer(..., distributed=True) does)")
    return _state


def communicator() -> "_core.Communicator":
    """The core's communicator of this job (RuntimeError before :func:`init`)."""
    return _initialized().core


def rank() -> int:
    """This process's rank in [0, world_size())."""
    return communicator().rank


def world_size() -> int:
    """The number of processes in the job."""
    return communicator().size


def is_main() -> bool:
    """True on rank 0, the rank that prints progress and writes checkpoints."""
    return communicator().rank == 0


def allreduce_sum(values: Any) -> np.ndarray:
    """Sum over ranks of ``values`` (scalar or array): a new float64 array, the same on every rank."""
    out = np.array(values, dtype=np.float64, order="C", copy=True)
    communicator().allreduce_sum(out)
    return out


def barrier() -> None:
    """Wait until every rank has called barrier()."""
    communicator().barrier()


def local_world_size() -> int:
    """The number of processes of this job on this machine (to split its cores between them:
    ``mc.set_num_threads(os.cpu_count() // local_world_size())``). A collective: every rank calls it."""
    from mpi4py import MPI

    local = _initialized().mpi_comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return local.Get_size()
    finally:
        local.Free()


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """Rank ``root``'s ``obj`` (any picklable object) on every rank."""
    return _initialized().mpi_comm.bcast(obj, root=root)


def allgather_object(obj: Any) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    return _initialized().mpi_comm.allgather(obj)


def abort(code: int = 1) -> None:
    """End every process of the job with exit status ``code`` (MPI_Abort): for an error that only
    some ranks may have hit, where returning would leave the others waiting. Does not return."""
    sys.stdout.flush()
    sys.stderr.flush()
    from mpi4py import MPI

    MPI.COMM_WORLD.Abort(code)
