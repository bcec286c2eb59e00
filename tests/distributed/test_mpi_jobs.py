"""The communicator in real 2-rank jobs (mpiexec -n 2, loopback only, hard timeout): rank and size,
all-reduce and broadcast results, both MPI ABIs (int handles through mpi4py, pointer handles through
the MPI-5 standard ABI library), and a failing rank ending the whole job within seconds."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
from mpi_launch import run_mpi, wait_gone

# A failing rank must end the job this fast (measured from the failure; typically about 1 s).
FAIL_FAST_S = 20


def test_rank_size_and_is_main(tmp_path):
    job = run_mpi(tmp_path, """
        import mlpcore as mc
        c = mc.distributed.init()
        assert mc.distributed.init() is c  # idempotent
        say("RANK", mc.distributed.rank(), mc.distributed.world_size(), mc.distributed.is_main(), c.size)
    """)
    assert job.returncode == 0, job.stderr
    assert sorted(job.lines("RANK")) == ["0 2 True 2", "1 2 False 2"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_allreduce_sum_is_exact_and_identical_on_every_rank(tmp_path, dtype):
    # Small integers times (rank + 1): every partial sum is exact in float32, so the expected sum is
    # known bit for bit; sizes cover one element, odd sizes and a gradient-arena-sized buffer.
    job = run_mpi(tmp_path, f"""
        import hashlib
        import numpy as np
        import mlpcore as mc
        c = mc.distributed.init()
        for n in (1, 3, 1000, 65537, 1863690):
            base = (np.arange(n) % 251 - 125).astype(np.{dtype})
            a = base * (c.rank + 1)
            c.allreduce_sum(a)
            want = base * sum(r + 1 for r in range(c.size))
            assert a.dtype == np.{dtype} and np.array_equal(a, want), (n, a[:5], want[:5])
            b = np.random.default_rng(n + c.rank).standard_normal(n).astype(np.{dtype})
            c.allreduce_sum(b)
            say("SUM", n, hashlib.sha256(b.tobytes()).hexdigest())
        m = np.ones((3, 4), np.{dtype}) * (c.rank + 1)  # any C-contiguous shape
        c.allreduce_sum(m)
        assert (m == 3).all()
        say("OK", c.rank)
    """)
    assert job.returncode == 0, job.stderr
    assert sorted(job.lines("OK")) == ["0", "1"]
    sums = job.lines("SUM")
    assert len(sums) == 10 and len(set(sums)) == 5  # random values: the same bits on both ranks


def test_broadcast_barrier_and_float64_helper(tmp_path):
    job = run_mpi(tmp_path, """
        import numpy as np
        import mlpcore as mc
        c = mc.distributed.init()
        a = np.full(100001, float(c.rank), np.float32)
        c.broadcast(a, root=1)
        assert (a == 1).all()
        c.barrier()
        total = mc.distributed.allreduce_sum([c.rank, 1, 0.5])
        assert total.dtype == np.float64 and total.tolist() == [1.0, 2.0, 1.0]
        try:
            c.broadcast(a, root=2)
        except ValueError as e:
            assert "root" in str(e)
        else:
            raise AssertionError("root out of range accepted")
        say("OK", c.rank)
    """)
    assert job.returncode == 0, job.stderr
    assert sorted(job.lines("OK")) == ["0", "1"]


def _mpich_file(name: str):
    try:
        files = importlib.metadata.files("mpich") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == name:
            return f.locate()
    return None


def test_standard_abi_pointer_handles(tmp_path):
    # The MPI-5 standard ABI (pointer handles) through the same core code: the mpich wheel ships it as
    # libmpi_abi.so with its header; MPI is initialised by hand here, the constants read from the header.
    lib, header = _mpich_file("libmpi_abi.so.1"), _mpich_file("mpi_abi.h")
    if lib is None or header is None:
        pytest.skip("the installed mpich wheel has no MPI-5 standard ABI library")
    job = run_mpi(tmp_path, """
        import ctypes, os, re, sys
        import numpy as np
        import mlpcore as mc
        lib, header = sys.argv[1], open(sys.argv[2]).read()
        def const(name):  # #define MPI_FLOAT ((MPI_Datatype)0x00000210)
            pattern = r"#define\\s+%s\\s+\\(\\(\\w+\\*?\\)\\s*(0x[0-9a-fA-F]+|\\d+)\\)" % name
            return int(re.search(pattern, header).group(1), 0)
        mpi = ctypes.CDLL(lib, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
        assert mpi.MPI_Init(None, None) == 0
        c = mc._core.mpi_communicator(library=lib, handle_bytes=8, comm=const("MPI_COMM_WORLD"),
                                      float32=const("MPI_FLOAT"), float64=const("MPI_DOUBLE"),
                                      op_sum=const("MPI_SUM"), in_place=const("MPI_IN_PLACE"))
        for dt in (np.float32, np.float64):
            a = np.arange(70000, dtype=dt) * (c.rank + 1)
            c.allreduce_sum(a)
            assert np.array_equal(a, np.arange(70000, dtype=dt) * 3)
        say("OK", c.rank, c.size, "pointer handles" in repr(c))
        del c
        mpi.MPI_Finalize()
    """, args=(lib, header))
    assert job.returncode == 0, job.stderr
    assert sorted(job.lines("OK")) == ["0 2 True", "1 2 True"]


# Rank 0 waits in an all-reduce (inside C++, GIL released) that rank 1 never joins.
_FAILING_RANK = """
    import os, signal, sys, time
    import numpy as np
    import mlpcore as mc
    c = mc.distributed.init()
    say("PID", c.rank, os.getpid())
    c.barrier()
    if c.rank == 1:
        time.sleep(0.5)  # rank 0 is inside the all-reduce by now
        say("FAIL_AT", time.time())
        if sys.argv[1] == "exception":
            raise ValueError("rank 1 failed on purpose")
        os.kill(os.getpid(), signal.SIGKILL)
    c.allreduce_sum(np.ones(10, np.float32))
    say("UNREACHABLE", c.rank)
"""


@pytest.mark.parametrize("how", ["exception", "sigkill"])
def test_failing_rank_ends_the_job_within_seconds(tmp_path, how):
    job = run_mpi(tmp_path, _FAILING_RANK, args=(how,), timeout=90)
    assert job.returncode != 0
    assert not job.lines("UNREACHABLE")
    (fail_at,) = map(float, job.lines("FAIL_AT"))
    assert job.ended - fail_at < FAIL_FAST_S, f"the job took {job.ended - fail_at:.1f} s to end"
    pids = [int(line.split()[1]) for line in job.lines("PID")]
    assert len(pids) == 2
    assert not wait_gone(pids, fail_at + FAIL_FAST_S), "a rank outlived the job"
    if how == "exception":
        assert "ValueError: rank 1 failed on purpose" in job.stderr
        assert re.search(r"uncaught ValueError on rank 1 of 2; aborting the job", job.stderr)
