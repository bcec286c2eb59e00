"""Runs the Hypothesis fuzz cases (fuzz_cases_*.py beside it, harness in fuzz_support.py) in a
subprocess.

A crash of the core (segfault, abort: a negative return code) or any failing case fails this
test with the tail of the child's output. The child writes how many cases each fuzz test ran;
a CI run must execute at least 2,000. The cases are derandomized: every run is the same.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES_PER_TEST = 250  # about 3,000 cases in all (some tests run more or fewer, see fuzz_support.fuzz)
MIN_CASES = 2000


def test_fuzz_cases_in_a_subprocess(tmp_path):
    counts_file = tmp_path / "counts.json"
    env = dict(
        os.environ,
        MLPCORE_FUZZ_COUNTS=str(counts_file),
        MLPCORE_FUZZ_EXAMPLES=str(EXAMPLES_PER_TEST),
        PYTHONFAULTHANDLER="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(HERE.parent),
        str(HERE / "fuzz_cases_modules.py"),
        str(HERE / "fuzz_cases_training.py"),
    ]
    proc = subprocess.run(cmd, cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=600)
    tail = (proc.stdout + proc.stderr)[-6000:]
    if proc.returncode < 0:
        raise AssertionError(f"fuzz subprocess crashed with {signal.Signals(-proc.returncode).name}:\n{tail}")
    assert proc.returncode == 0, f"fuzz cases failed (exit {proc.returncode}):\n{tail}"
    counts = json.loads(counts_file.read_text())
    total = sum(counts.values())
    print(f"\nfuzz cases run: {total} {counts}")
    assert len(counts) == 14 and min(counts.values()) > 0, counts
    assert total >= MIN_CASES, f"only {total} fuzz cases ran: {counts}"


def test_the_harness_reports_a_crash(tmp_path):
    """The harness's crash detection works: a child that segfaults has a negative return code."""
    script = tmp_path / "crash.py"
    script.write_text("import ctypes\nctypes.string_at(0)\n")
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONFAULTHANDLER="1"),
    )
    if "AddressSanitizer" in proc.stderr:  # under the sanitizer run of CI, ASan reports the SEGV and exits 1
        assert proc.returncode != 0
    else:
        assert proc.returncode == -signal.SIGSEGV
        assert "Segmentation fault" in proc.stderr
