"""Smoke test of bench/compare.py: it runs end to end (--quick, tiny config, a few peers, each in its
own worker process) and writes the JSON the README table and a future `mlpcore bench` rely on.
Timings are never asserted; only that they exist and are consistent with the reported throughput."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import mlpcore as mc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "compare.py")


def _load_compare():
    spec = importlib.util.spec_from_file_location("mlpcore_bench_compare", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _have(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_import_has_no_side_effects_and_counts_flops():
    mod = _load_compare()  # importing runs nothing: no workers, no output file
    assert callable(mod.main)
    names = [c.name for c in mod.CONFIGS]
    assert names == ["tiny_ce", "tiny_mse", "mnist_b128", "wide_b256", "gemm_bound", "infer_b1", "mnist_bn_b128",
                     "mnist_ln_b128"]
    assert mod.CONFIG_BY_NAME["mnist_bn_b128"].norm == "bn" and "+BN" in mod.CONFIG_BY_NAME["mnist_bn_b128"].label()
    cfg = mod.CONFIG_BY_NAME["mnist_b128"]
    assert cfg.flops == 6 * 128 * (784 * 256 + 256 * 256 + 256 * 10)
    assert mod.CONFIG_BY_NAME["infer_b1"].flops == 2 * (784 * 256 + 256 * 256 + 256 * 10)
    assert mod.CONFIG_BY_NAME["mnist_b128"].threads == (1, 2)
    s = mod._summary([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s["median_s"], s["p25_s"], s["p75_s"], s["min_s"], s["max_s"]) == (3.0, 2.0, 4.0, 1.0, 5.0)


def test_budget_evaluation():
    mod = _load_compare()
    cfg = mod.CONFIG_BY_NAME["tiny_ce"]
    raw = [{"peer": p, "samples": {"wall": [t] * 3, "cpu": [t / 2] * 3}}
           for p, t in (("mlpcore", 1e-5), ("torch", 3e-4), ("numpy", 1.5e-5))]
    raw.append({"peer": "jax", "error": "ModuleNotFoundError: No module named 'jax'"})
    rows = mod._rows_for(cfg, 1, raw, "wall")
    by = {r["peer"]: r for r in rows}
    assert by["jax"]["median_s"] is None and "jax" in by["jax"]["error"]
    assert by["mlpcore"]["cpu"]["median_s"] == pytest.approx(0.5e-5)
    assert by["mlpcore"]["vs_torch"] == pytest.approx(30.0)
    assert by["mlpcore"]["best_peer"] == "numpy" and by["mlpcore"]["vs_best"] == pytest.approx(1.5)
    for r in rows:
        mod._evaluate_budget(cfg, r)
    assert by["mlpcore"]["budget_met"] is False  # 30x PyTorch but only 1.5x numpy (needs 2x)
    assert "1.50x numpy (need 2x)" in by["mlpcore"]["budget_detail"]
    assert by["torch"]["budget_met"] is None     # budgets apply to mlpcore rows only


def test_unknown_config_is_refused():
    mod = _load_compare()
    with pytest.raises(SystemExit, match="--configs: unknown"):
        mod.main(["--configs", "nope"])
    with pytest.raises(SystemExit, match="--peers: unknown"):
        mod.main(["--peers", "mlpcore,tensorflow"])


@pytest.mark.timeout(180)
def test_quick_run_writes_json(tmp_path, capsys):
    peers = ["mlpcore", "numpy"] + (["torch"] if _have("torch") else [])
    out = tmp_path / "r.json"
    env = dict(os.environ)
    # The workers import mlpcore the way this test did (installed or a development checkout).
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(mc.__file__)))
    old = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent, *old])
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--quick", "--configs", "tiny_ce", "--peers", ",".join(peers),
         "--threads", "1", "--sgemm-n", "256", "--quiet", "--out", str(out)],
        check=False, capture_output=True, text=True, env=env, timeout=170, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| [2,16,16,2] B64 CE | 1 | mlpcore |" in proc.stdout
    res = json.loads(out.read_text())
    assert set(res) == {"meta", "configs", "peak", "groups", "rows"}
    assert res["meta"]["quick"] is True
    assert res["peak"]["1"]["median_gflops"] > 0 and res["peak"]["1"]["n"] == 256
    # The peak is sampled once per round of the workload, in rotation with the peers.
    (group,) = res["groups"]
    assert (group["config"], group["threads"], group["n"]) == ("tiny_ce", 1, 256)
    assert len(group["samples_s"]["wall"]) == len(group["samples_s"]["cpu"]) == 2
    assert [c["name"] for c in res["configs"]] == ["tiny_ce"]
    rows = {r["peer"]: r for r in res["rows"]}
    assert sorted(rows) == sorted(peers)
    for peer, r in rows.items():
        assert r.get("error") is None, (peer, r.get("error"))
        for key in ("median_s", "p25_s", "p75_s", "min_s", "max_s", "median_ms", "samples_per_s", "gflops",
                    "peak_share", "vs_best", "vs_fastest", "budget", "budget_met", "threads", "n_samples",
                    "samples", "wall", "cpu"):
            assert key in r, (peer, key)
        assert r["wall"]["median_s"] == r["median_s"]  # the table's clock is wall by default
        assert r["cpu"]["median_s"] > 0
        assert r["peak_gflops"] == group["median_gflops"]
        assert r["peak_share"] == pytest.approx(r["gflops"] / group["median_gflops"])
        assert r["min_s"] <= r["p25_s"] <= r["median_s"] <= r["p75_s"] <= r["max_s"]
        assert r["samples_per_s"] == pytest.approx(64 / r["median_s"])
        assert r["gflops"] == pytest.approx(6 * 64 * (2 * 16 + 16 * 16 + 16 * 2) / r["median_s"] / 1e9)
        assert r["n_samples"] == 2 and r["threads"] == 1
    assert rows["mlpcore"]["budget"].startswith(">= 20x PyTorch")
    if "torch" in rows:
        assert rows["torch"]["vs_torch"] == pytest.approx(1.0)
        assert rows["mlpcore"]["budget_met"] in (True, False)
    assert res["meta"]["workers"]["mlpcore/1"]["versions"]["mlpcore"] == mc.__version__

    # The saved run re-analysed on the other clock: same rows, CPU-time medians.
    mod = _load_compare()
    assert mod.main(["--show", str(out), "--clock", "cpu"]) == 0
    shown = capsys.readouterr().out
    cpu_ms = rows["mlpcore"]["cpu"]["median_s"] * 1e3
    assert f"| [2,16,16,2] B64 CE | 1 | mlpcore | {cpu_ms:.3f} ms" in shown
    assert "CPU time of each peer's process" in shown


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_hand_written_peers_compute_the_same_sgd_step_as_torch(loss):
    """The from-scratch peers (NumPy, hand-written PyTorch, JAX if installed, and mlpcore) must do the
    same work as PyTorch autograd + SGD, or the comparison would be meaningless: one step from the same
    weights gives the same weights."""
    torch = pytest.importorskip("torch")
    import numpy as np

    mod = _load_compare()
    cfg = mod.Config("t", (5, 7, 6, 3), 4, loss, pool=1)
    ref = mod._TorchRunner(cfg, torch)
    W0 = [ref.model[2 * i].weight.detach().numpy().copy() for i in range(3)]   # (out, in)
    b0 = [(0.1 * np.arange(w.shape[0], dtype=np.float32)) for w in W0]
    with torch.no_grad():
        for i in range(3):
            ref.model[2 * i].bias.copy_(torch.from_numpy(b0[i]))
    ref.run(1)
    W1 = [ref.model[2 * i].weight.detach().numpy() for i in range(3)]
    b1 = [ref.model[2 * i].bias.detach().numpy() for i in range(3)]

    def check(name, Ws, bs):
        for i in range(3):
            dW_ref, dW = W1[i] - W0[i], Ws[i] - W0[i]
            assert np.abs(dW_ref).max() > 0
            np.testing.assert_allclose(dW, dW_ref, atol=1e-3 * np.abs(dW_ref).max(), err_msg=f"{name} W{i}")
            db_ref, db = b1[i] - b0[i], bs[i] - b0[i]
            np.testing.assert_allclose(db, db_ref, atol=1e-3 * np.abs(db_ref).max() + 1e-9,
                                       err_msg=f"{name} b{i}")

    man = mod._TorchManualRunner(cfg, torch)
    for i in range(3):
        man.W[i].copy_(torch.from_numpy(W0[i]))
        man.b[i].copy_(torch.from_numpy(b0[i]))
    man.run(1)
    check("torch-manual", [w.numpy() for w in man.W], [b.numpy() for b in man.b])

    npr = mod._NumpyRunner(cfg)
    for i in range(3):
        npr.W[i][...] = W0[i].T
        npr.b[i][...] = b0[i]
    npr.run(1)
    check("numpy", [w.T for w in npr.W], npr.b)

    mcr = mod._MlpcoreRunner(cfg, mc, epoch=False)
    lin = [m for m in mcr.model if isinstance(m, mc.Linear)]
    for i in range(3):
        lin[i].weight.data[...] = W0[i]
        lin[i].bias.data[...] = b0[i]
    mcr.run(1)
    check("mlpcore", [m.weight.data.copy() for m in lin], [m.bias.data.copy() for m in lin])

    if _have("jax"):
        import jax

        jr = mod._JaxRunner(cfg, jax)
        jr.params = [(jax.numpy.asarray(W0[i].T), jax.numpy.asarray(b0[i])) for i in range(3)]
        jr.run(1)
        check("jax", [np.asarray(W).T for W, _ in jr.params], [np.asarray(b) for _, b in jr.params])


@pytest.mark.parametrize("norm", ["bn", "ln"])
def test_normalised_peers_compute_the_same_step_as_torch(norm):
    """The BatchNorm / LayerNorm workloads: mlpcore and JAX (if installed) take the same SGD step as
    PyTorch eager from the same weights (the norm layers start at weight 1, bias 0 everywhere)."""
    torch = pytest.importorskip("torch")
    import numpy as np

    mod = _load_compare()
    cfg = mod.Config("t", (5, 7, 6, 3), 8, "ce", pool=1, norm=norm)
    ref = mod._TorchRunner(cfg, torch)
    lin_t = [m for m in ref.model if isinstance(m, torch.nn.Linear)]
    W0 = [m.weight.detach().numpy().copy() for m in lin_t]
    b0 = [m.bias.detach().numpy().copy() for m in lin_t]
    ref.run(1)
    W1 = [m.weight.detach().numpy() for m in lin_t]
    mcr = mod._MlpcoreRunner(cfg, mc, epoch=False)
    lin = [m for m in mcr.model if isinstance(m, mc.Linear)]
    for i in range(3):
        lin[i].weight.data[...] = W0[i]
        lin[i].bias.data[...] = b0[i]
    mcr.run(1)
    for i in range(3):
        np.testing.assert_allclose(lin[i].weight.data, W1[i], rtol=1e-5, atol=1e-7, err_msg=f"mlpcore W{i}")
    if _have("jax"):
        import jax

        jr = mod._JaxRunner(cfg, jax)
        jr.params = [(jax.numpy.asarray(W0[i].T), jax.numpy.asarray(b0[i])) for i in range(3)]
        jr.run(1)
        for i in range(3):
            np.testing.assert_allclose(np.asarray(jr.params[i][0]).T, W1[i], rtol=1e-4, atol=1e-6, err_msg=f"jax W{i}")
