"""The communicator without a launcher: the local (one-process) communicator, argument checks at the
binding, mlpcore.distributed without mpi4py (a clear error naming the extra) and a world of one
process (no mpiexec) through mpi4py."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlpcore as mc
import numpy as np
import pytest
from mlpcore import distributed
from mpi_launch import require_mpi4py


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_local_communicator_is_rank_0_of_1():
    c = mc._core.local_communicator()
    assert (c.rank, c.size) == (0, 1)
    a = np.arange(7, dtype=np.float32)
    c.allreduce_sum(a)
    c.broadcast(a, root=0)
    c.barrier()
    assert np.array_equal(a, np.arange(7, dtype=np.float32))
    assert "local" in repr(c)


@pytest.mark.parametrize("bad, err", [
    ([1.0, 2.0], TypeError),                                    # not an array
    (np.arange(4), TypeError),                                  # int64
    (np.ones(4, np.float16), TypeError),
    (np.ones(4, ">f8"), TypeError),                             # byte-swapped
    (np.ones((4, 4), np.float32)[:, 1], ValueError),            # not contiguous
    (np.ones((4, 4), np.float64, order="F"), ValueError),
])
def test_allreduce_refuses_buffers_it_cannot_reduce_in_place(bad, err):
    with pytest.raises(err, match="buf"):
        mc._core.local_communicator().allreduce_sum(bad)


def test_allreduce_refuses_read_only_buffers():
    a = np.ones(4, np.float32)
    a.setflags(write=False)
    with pytest.raises(ValueError, match="writable"):
        mc._core.local_communicator().allreduce_sum(a)
    with pytest.raises(ValueError, match="root"):
        mc._core.local_communicator().broadcast(np.ones(4), root=1)


_HANDLES = dict(comm=0x44000000, float32=0x4C00040A, float64=0x4C00080B, op_sum=0x58000003, in_place=-1)


def test_mpi_communicator_refuses_unusable_handles_and_libraries(tmp_path):
    with pytest.raises(ValueError, match="handle_bytes"):
        mc._core.mpi_communicator(library="x", handle_bytes=2, **_HANDLES)
    with pytest.raises(ValueError, match="does not fit an MPI handle of 4 bytes"):
        mc._core.mpi_communicator(library="x", handle_bytes=4, **{**_HANDLES, "comm": 1 << 33})
    with pytest.raises(ValueError, match="does not fit"):
        mc._core.mpi_communicator(library="x", handle_bytes=8, **{**_HANDLES, "comm": -(1 << 64)})
    with pytest.raises(ValueError, match="is not loaded in this process"):
        mc._core.mpi_communicator(library=str(tmp_path / "libmpi.so.12"), handle_bytes=4, **_HANDLES)
    # A loaded library that is not MPI (the core itself): refused by name, nothing is called.
    with pytest.raises(ValueError, match="MPI_Initialized not found"):
        mc._core.mpi_communicator(library=mc._core.__file__, handle_bytes=4, **_HANDLES)


def test_import_mlpcore_does_not_load_mpi():
    r = _python("""
        import sys
        import mlpcore as mc
        assert "mpi4py" not in sys.modules and not mc.distributed.is_initialized()
        print("OK")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr


def test_without_mpi4py_init_names_the_extra(monkeypatch):
    monkeypatch.setattr(distributed, "_state", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    with pytest.raises(ImportError, match=r'pip install "mlpcore\[mpi\]"'):
        distributed.init()


def test_rank_before_init_says_to_call_init(monkeypatch):
    monkeypatch.setattr(distributed, "_state", None)
    for f in (distributed.rank, distributed.world_size, distributed.is_main, distributed.communicator):
        with pytest.raises(RuntimeError, match=r"mlpcore.distributed.init\(\)"):
            f()


def test_world_of_one_process_without_a_launcher():
    require_mpi4py()
    r = _python("""
        import sys
        import numpy as np
        import mlpcore as mc
        from mpi4py import MPI
        c = mc.distributed.init()
        assert mc.distributed.init() is c and mc.distributed.init(MPI.COMM_WORLD) is c
        assert (mc.distributed.rank(), mc.distributed.world_size(), mc.distributed.is_main()) == (0, 1, True)
        assert sys.excepthook is sys.__excepthook__  # one process: exceptions end it as usual
        a = np.arange(5.0)
        c.allreduce_sum(a)
        assert a.tolist() == [0, 1, 2, 3, 4]
        assert mc.distributed.allreduce_sum(2.5).tolist() == 2.5
        try:
            mc.distributed.init(MPI.COMM_SELF)
        except RuntimeError as e:
            assert "another communicator" in str(e)
        else:
            raise AssertionError("a second communicator was accepted")
        try:
            mc.distributed.init("world")
        except TypeError as e:
            assert "mpi4py" in str(e)
        print("OK", "int handles" in repr(c))
    """)
    assert r.returncode == 0 and r.stdout.split() == ["OK", "True"], r.stderr


def test_derived_communicators_join_and_a_later_plain_init_keeps_them():
    """A Dup / Split of COMM_WORLD (mpi4py reports MPICH's derived handles sign-extended to 64 bits)
    is accepted; a later ``init()`` (as ``Trainer(distributed=True)`` makes) returns the communicator
    the job joined with instead of refusing it as another one."""
    require_mpi4py()
    r = _python("""
        import numpy as np
        import mlpcore as mc
        from mpi4py import MPI
        sub = MPI.COMM_WORLD.Split(0, 0)
        c = mc.distributed.init(sub)
        assert mc.distributed.init() is c and mc.distributed.init(sub) is c
        a = np.arange(3.0)
        c.allreduce_sum(a)
        assert a.tolist() == [0, 1, 2]
        X = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
        y = (X[:, 0] > 0).astype(int)
        m = mc.Sequential(mc.Linear(3, 2, seed=0))
        mc.Trainer(m, distributed=True, batch_size=8).fit(X, y, epochs=1, verbose=0)
        d = MPI.COMM_WORLD.Dup()
        h = MPI._handleof(d)
        print("OK", h > 2**32)
    """)
    assert r.returncode == 0 and r.stdout.split()[0] == "OK", r.stderr
