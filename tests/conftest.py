"""pytest configuration shared by the suite: global-state fixtures and the error report."""

import helpers  # tests/ is on sys.path (pytest's default "prepend" import mode, no __init__.py)
import pytest

import mlpcore as mc


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Tests may switch finiteness checks off or change the thread count: restore both (a pinned
    count, or the automatic policy)."""
    check, threads, pinned = mc.get_check_finite(), mc.get_num_threads(), mc._core.num_threads_pinned()
    yield
    mc.set_check_finite(check)
    mc.set_num_threads(threads if pinned else None)


@pytest.fixture
def one_thread():
    """One core thread for the test (``pytest.mark.usefixtures("one_thread")``): small problems gain
    nothing from more, and spinning BLAS threads are slow on a busy 2-core machine.
    _restore_global_state puts the count (or the automatic policy) back afterwards."""
    mc.set_num_threads(1)


@pytest.fixture(scope="module")
def torch_one_thread():
    """One PyTorch thread for a module's tests (``pytest.mark.usefixtures("torch_one_thread")``):
    tiny tensors, and a busy machine makes more threads ~20x slower."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_terminal_summary(terminalreporter):
    """Print the largest relative error seen against PyTorch (per dtype), against finite
    differences, and of exported ONNX graphs under onnxruntime, as recorded by
    helpers.assert_close_torch / assert_close_fd and tests/io/test_onnx.py."""
    rows = [("PyTorch", k, v) for k, v in sorted(helpers.MAX_REL_ERR.items())]
    rows += [("finite differences", k, v) for k, v in sorted(helpers.MAX_FD_ERR.items())]
    rows += [("onnxruntime", k, v) for k, v in sorted(helpers.MAX_ONNX_ERR.items())]
    if not rows:
        return
    terminalreporter.section("mlpcore: largest relative error (max|got-want| / max|want|)")
    for oracle, dtype, (err, where) in rows:
        terminalreporter.write_line(f"vs {oracle:<18} {dtype:<8} {err:.3e}   at {where}")
