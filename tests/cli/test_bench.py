"""Smoke test of bench/compare.py (and its compare_peers / compare_worker / compare_report files): it
runs end to end (--quick, tiny config, a few peers, each in its own worker process; mlpcore's
entry points; a baseline build) and writes the JSON the README tables and `mlpcore bench` rely on.
Timings are never asserted; only that they exist and are consistent with the reported throughput,
and that the budgets are evaluated as stated."""

import dataclasses
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
    assert names == ["tiny_ce", "tiny_mse", "mnist_b128", "wide_b256", "gemm_bound", "infer_b1", "infer_b64",
                     "infer_b1024", "mnist_bn_b128", "mnist_ln_b128"]
    bn = mod.CONFIG_BY_NAME["mnist_bn_b128"]
    assert bn.norm == "bn" and "+BN" in bn.label()
    cfg = mod.CONFIG_BY_NAME["mnist_b128"]
    assert cfg.flops == 6 * 128 * (784 * 256 + 256 * 256 + 256 * 10)
    assert mod.CONFIG_BY_NAME["infer_b1"].flops == 2 * (784 * 256 + 256 * 256 + 256 * 10)
    assert mod.CONFIG_BY_NAME["mnist_b128"].threads == (1, 2)
    assert mod.CONFIG_BY_NAME["infer_b64"].flops == 2 * 64 * (784 * 256 + 256 * 256 + 256 * 10)
    assert mod.CONFIG_BY_NAME["infer_b64"].label() == "[784,256,256,10] batch-64 inference"
    cfg = mod.CONFIG_BY_NAME["tiny_ce"]
    assert mod._config_from_dict(json.loads(json.dumps(mod._config_dict(cfg)))) == cfg
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


def test_entry_point_and_baseline_budgets():
    """train_on_batch <= 1.3x a batch inside fit; the manual loop >= 10x PyTorch eager; eval-mode
    model(x) <= 1.2x compiled predict and <= 0.6x NumPy; with a baseline build, the compiled rows
    must not be slower than it (beyond BASELINE_TOL)."""
    mod = _load_compare()
    cfg = mod.CONFIG_BY_NAME["tiny_ce"]
    times = {"mlpcore": 1.0, "mlpcore@base": 1.1, "mlpcore-epoch": 0.9, "mlpcore-epoch@base": 0.8,
             "mlpcore-fit": 1.0, "mlpcore-tob": 1.2, "mlpcore-loop": 2.0, "torch": 30.0, "numpy": 3.0}
    raw = [{"peer": p, "samples": {"wall": [t * 1e-5] * 3, "cpu": [t * 1e-5] * 3}} for p, t in times.items()]
    raw.append({"peer": "mlpcore-call", "error": "n/a here", "not_applicable": True})
    rows = mod._rows_for(cfg, 1, raw, "wall")
    for r in rows:
        mod._evaluate_budget(cfg, r)
    by = {r["peer"]: r for r in rows}
    assert by["mlpcore"]["best_peer"] == "numpy"  # no mlpcore row (baseline or entry point) is a peer
    tob, loop = by["mlpcore-tob"], by["mlpcore-loop"]
    assert tob["budget_met"] is True and "1.20x the time of mlpcore-fit" in tob["budget_detail"]
    assert loop["budget_met"] is True and "15.00x PyTorch (need 10x)" in loop["budget_detail"]
    assert by["mlpcore"]["budget_met"] is True and "baseline" in by["mlpcore"]["budget"]
    assert by["mlpcore-epoch"]["budget_met"] is False  # 1.125x its baseline twin
    assert "1.12x the time of mlpcore-epoch@base (need <= 1.05x)" in by["mlpcore-epoch"]["budget_detail"]
    assert by["mlpcore@base"]["budget_met"] is None and by["mlpcore-fit"]["budget"] is None
    table = mod.R._fmt_table(rows, {}, "wall")
    assert "mlpcore-call" not in table  # a workload an entry point does not measure: no row
    assert "| tiny" not in mod.R.fmt_budgets(rows) and "MISSED" in mod.R.fmt_budgets(rows)
    readme = mod.R.fmt_readme(rows)
    assert "| `train_on_batch` | 0.012 ms | 1.20× mlpcore-fit |" in readme
    assert "15.0× faster than PyTorch eager" in readme
    assert "| [2,16,16,2] B64 CE | 1 | mlpcore-epoch | 0.009 ms | 0.008 ms | 1.12× |" in readme

    infer = mod.CONFIG_BY_NAME["infer_b1"]
    raw = [{"peer": p, "samples": {"wall": [t * 1e-6] * 3, "cpu": [t * 1e-6] * 3}}
           for p, t in {"mlpcore": 10.0, "mlpcore-call": 11.0, "mlpcore-inv": 12.0, "numpy": 20.0}.items()]
    rows = mod._rows_for(infer, 1, raw, "wall")
    for r in rows:
        mod._evaluate_budget(infer, r)
    by = {r["peer"]: r for r in rows}
    assert by["mlpcore-call"]["budget_met"] is True
    detail = by["mlpcore-call"]["budget_detail"]
    assert "1.10x the time of mlpcore (need <= 1.2x); 0.55x the time of numpy" in detail
    assert "| 1 | 10.0 us | 12.0 us | 1.20× |" in mod.R.fmt_readme(rows)


def test_unknown_config_is_refused():
    mod = _load_compare()
    with pytest.raises(SystemExit, match="--configs: unknown"):
        mod.main(["--configs", "nope"])
    with pytest.raises(SystemExit, match="--peers: unknown"):
        mod.main(["--peers", "mlpcore,tensorflow"])


@pytest.mark.timeout(180)
def test_quick_run_writes_json(tmp_path, capsys):
    peers = ["mlpcore", "mlpcore-fit", "mlpcore-tob", "mlpcore-loop", "numpy"]
    peers += ["torch"] if _have("torch") else []
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
    assert rows["mlpcore-tob"]["budget"] == "<= 1.3x a batch inside fit"
    assert rows["mlpcore-tob"]["budget_met"] in (True, False)
    assert rows["mlpcore-fit"]["inner"] % 50 == 0  # whole fit epochs of 50 batches
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
    P, W = mod.bench_peers, mod.bench_worker
    ref = P._TorchRunner(cfg, torch)
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

    man = P._TorchManualRunner(cfg, torch)
    for i in range(3):
        man.W[i].copy_(torch.from_numpy(W0[i]))
        man.b[i].copy_(torch.from_numpy(b0[i]))
    man.run(1)
    check("torch-manual", [w.numpy() for w in man.W], [b.numpy() for b in man.b])

    npr = P._NumpyRunner(cfg)
    for i in range(3):
        npr.W[i][...] = W0[i].T
        npr.b[i][...] = b0[i]
    npr.run(1)
    check("numpy", [w.T for w in npr.W], npr.b)

    # mlpcore's compiled step and the entry points that take one step per call
    for kind in ("mlpcore", "mlpcore-tob", "mlpcore-loop"):
        mcr = W._MlpcoreRunner(dataclasses.replace(cfg, entry=("mlpcore-tob", "mlpcore-loop")), mc, kind)
        lin = [m for m in mcr.model if isinstance(m, mc.Linear)]
        for i in range(3):
            lin[i].weight.data[...] = W0[i]
            lin[i].bias.data[...] = b0[i]
        mcr.run(1)
        check(kind, [m.weight.data.copy() for m in lin], [m.bias.data.copy() for m in lin])

    if _have("jax"):
        import jax

        jr = P._JaxRunner(cfg, jax)
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
    ref = mod.bench_peers._TorchRunner(cfg, torch)
    lin_t = [m for m in ref.model if isinstance(m, torch.nn.Linear)]
    W0 = [m.weight.detach().numpy().copy() for m in lin_t]
    b0 = [m.bias.detach().numpy().copy() for m in lin_t]
    ref.run(1)
    W1 = [m.weight.detach().numpy() for m in lin_t]
    mcr = mod.bench_worker._MlpcoreRunner(cfg, mc, "mlpcore")
    lin = [m for m in mcr.model if isinstance(m, mc.Linear)]
    for i in range(3):
        lin[i].weight.data[...] = W0[i]
        lin[i].bias.data[...] = b0[i]
    mcr.run(1)
    for i in range(3):
        np.testing.assert_allclose(lin[i].weight.data, W1[i], rtol=1e-5, atol=1e-7, err_msg=f"mlpcore W{i}")
    if _have("jax"):
        import jax

        jr = mod.bench_peers._JaxRunner(cfg, jax)
        jr.params = [(jax.numpy.asarray(W0[i].T), jax.numpy.asarray(b0[i])) for i in range(3)]
        jr.run(1)
        for i in range(3):
            np.testing.assert_allclose(np.asarray(jr.params[i][0]).T, W1[i], rtol=1e-4, atol=1e-6,
                                       err_msg=f"jax W{i}")


def _run_quick(args, timeout=170):
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(mc.__file__)))
    old = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent, *old])
    return subprocess.run([sys.executable, SCRIPT, "--quick", "--quiet", "--sgemm-n", "128", *args],
                          check=False, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.mark.timeout(180)
def test_baseline_build_and_inference_entry_points(tmp_path):
    """--baseline DIR runs the compiled rows with DIR's mlpcore too (here a copy of this one, as a
    built package: sources and _core), and the inference workloads measure eval-mode model(x),
    no_grad and batch-invariant predict; --show --readme prints the README tables from the JSON."""
    import shutil

    base = tmp_path / "base"
    shutil.copytree(os.path.dirname(mc.__file__), base / "mlpcore",
                    ignore=shutil.ignore_patterns("__pycache__"))
    core = base / "mlpcore" / os.path.basename(mc._core.__file__)
    if not core.exists():  # an editable install keeps the extension elsewhere
        shutil.copy(mc._core.__file__, core)
    out = tmp_path / "r.json"
    proc = _run_quick(["--configs", "tiny_ce,infer_b1", "--peers", "mlpcore,mlpcore-call,mlpcore-nograd,"
                       "mlpcore-inv,numpy", "--threads", "1", "--baseline", str(base), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["meta"]["workers"]["mlpcore@base/1"]["versions"].get("mlpcore_path") == str(base / "mlpcore")
    rows = {(r["config"], r["peer"]): r for r in res["rows"]}
    assert rows[("tiny_ce", "mlpcore@base")]["median_s"] > 0
    assert "baseline" in rows[("tiny_ce", "mlpcore")]["budget"]
    assert rows[("tiny_ce", "mlpcore-call")]["not_applicable"]
    assert rows[("infer_b1", "mlpcore-call")]["median_s"] > 0
    assert rows[("infer_b1", "mlpcore-inv")]["info"]["batch_invariant"] is True
    assert rows[("infer_b1", "mlpcore")]["info"]["batch_invariant"] is False
    assert rows[("infer_b1", "mlpcore-nograd")]["budget"].startswith("<= 1.2x compiled predict")
    assert "Budgets (DESIGN.md)" in proc.stdout and "| tiny_ce" not in proc.stdout
    mod = _load_compare()
    shown = subprocess.run([sys.executable, SCRIPT, "--show", str(out), "--readme"], capture_output=True,
                           text=True, check=True, cwd=ROOT).stdout
    assert "| batch | predict (OpenBLAS) | batch-invariant | cost |" in shown
    assert "| [2,16,16,2] B64 CE | 1 | mlpcore | " in shown.split("README tables:")[1]
    assert callable(mod.main)
