"""Run a Python script under ``mpiexec -n N`` for the distributed tests, on loopback only and with a
hard timeout: a hang fails the test (and the whole job is killed), it never holds up CI.

mpiexec is the one beside this interpreter (the mpich wheel installs it into the environment's
bin/, and it must match the MPI that mpi4py loaded), else the first on PATH. Tests skip when
mpi4py or mpiexec is missing (install the extra: pip install "mlpcore[mpi]"), and fail instead
when MLPCORE_REQUIRE_MPI=1 (CI sets it: there they must run).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# Hydra on this host only, its control connections on the loopback interface; ranks talk through
# shared memory (UCX intra-node transports) and never open a network address.
LOOPBACK = ["-hosts", "localhost", "-iface", "lo"]


def require_mpi4py() -> None:
    """Skip (or fail, under MLPCORE_REQUIRE_MPI=1) without mpi4py."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        _missing('mpi4py is not installed (pip install "mlpcore[mpi]")')


def _missing(why: str) -> None:
    if os.environ.get("MLPCORE_REQUIRE_MPI") == "1":
        pytest.fail(f"{why}; MLPCORE_REQUIRE_MPI=1 requires the distributed tests to run")
    pytest.skip(why)


def mpiexec() -> str:
    """The launcher to use, or skip the test."""
    require_mpi4py()
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if not found:
        _missing('mpiexec is not installed (pip install "mlpcore[mpi]" brings the mpich wheel)')
    return found


@dataclass
class Job:
    returncode: int
    stdout: str
    stderr: str
    ended: float  # time.time() when the job had ended

    def lines(self, prefix: str) -> list:
        """stdout lines starting with prefix, prefix removed (ranks print 'KEY value ...')."""
        return [ln[len(prefix):].strip() for ln in self.stdout.splitlines() if ln.startswith(prefix)]


# Jobs report with say(...): one line in one write(2), so that the lines of two ranks sharing
# mpiexec's stdout never interleave mid-line (print() writes the text and the newline separately).
_PRELUDE = """import os as _os
def say(*words):
    _os.write(1, (" ".join(map(str, words)) + "\\n").encode())
"""


def run_mpi(tmp_path: Path, code: str, n: int = 2, timeout: float = 120, args: tuple = ()) -> Job:
    """Run ``code`` (dedented; ``say(...)`` prints a line) as a script on ``n`` ranks; kill the job and
    fail after ``timeout`` s."""
    script = tmp_path / f"job_{time.monotonic_ns()}.py"
    script.write_text(_PRELUDE + textwrap.dedent(code))
    return run_mpi_command(tmp_path, [sys.executable, str(script), *map(str, args)], n, timeout)


def run_mpi_command(cwd: Path, argv: list, n: int = 2, timeout: float = 120) -> Job:
    """Run ``argv`` on ``n`` ranks in ``cwd``; kill the job and fail after ``timeout`` s."""
    launcher = mpiexec()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    cmd = [launcher, *LOOPBACK, "-n", str(n), *argv]
    # Own session: on a timeout the launcher, its proxies and every rank go down together.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(cwd), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec -n {n} did not end within {timeout} s (a hang); killed.\n"
                    f"--- stdout\n{out}\n--- stderr\n{err}")
    return Job(proc.returncode, out, err, time.time())


def pid_alive(pid: int) -> bool:
    """True when process pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list, deadline: float) -> list:
    """Poll until every pid has ended or time.time() passes deadline; returns those still alive."""
    while True:
        alive = [p for p in pids if pid_alive(p)]
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.05)
