"""Data-parallel training (Trainer(distributed=True), Network.train_epoch(comm=...)) in 2- and 3-rank
jobs (mpiexec on loopback, hard timeout): every rank ends with bitwise identical weights, equal to
one process's with the same seed and global batch (float64 <= 1e-10, float32 <= 1e-5 relative);
sample weights, class weights, gradient clipping, LayerNorm and metrics from the training outputs
included; reduced loss, metrics and callback decisions; rank-0-only files; resume; non-finite loss;
Ctrl-C on one rank; ranks called differently; BatchNorm1d refused; np.memmap read in place; a rank
failing mid-fit; world of one process."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import mlpcore as mc
import numpy as np
import pytest
from mpi_launch import require_mpi4py, run_mpi, run_mpi_command, wait_gone

# Shared by the jobs: a small model, data, one fit per rank and one single-process reference fit in
# the same process (the reference uses no communicator: Trainer(distributed=False)).
_COMMON = """
    import hashlib
    import numpy as np
    import mlpcore as mc
    mc.set_num_threads(1)
    comm = mc.distributed.init()
    R, P = comm.rank, comm.size

    def weights(model):
        return np.concatenate([p.data.ravel().astype(np.float64) for p in model.parameters()])

    def digest(a):
        return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]

    def model_for(dtype, seed, dropout=0.0, outputs=3, init_seed=None):
        layers = [mc.Linear(6, 16, seed=init_seed if init_seed is not None else seed, dtype=dtype), mc.Tanh()]
        if dropout:
            layers.append(mc.Dropout(dropout, seed=seed + 7))
        layers += [mc.Linear(16, outputs, seed=seed + 1, dtype=dtype)]
        return mc.Sequential(*layers)

    def data(n, dtype, kind="ce", outputs=3, seed=0):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, 6)).astype(dtype)
        if kind == "ce":
            return X, rng.integers(0, outputs, n)
        if kind == "bce":
            return X, (rng.random((n, outputs)) > 0.5).astype(dtype)
        return X, rng.standard_normal((n, outputs)).astype(dtype)
"""


def _job(tmp_path, body: str, n: int = 2, timeout: float = 180):
    job = run_mpi(tmp_path, textwrap.dedent(_COMMON) + textwrap.dedent(body), n=n, timeout=timeout)
    assert job.returncode == 0, f"--- stdout\n{job.stdout}\n--- stderr\n{job.stderr}"
    return job


@pytest.mark.parametrize("ranks", [2, 3])
def test_weights_identical_on_every_rank_and_equal_to_one_process(tmp_path, ranks):
    # float64 and float32; CE / BCE / MSE; SGD with momentum and Adam; shuffled and in order; a
    # ragged last batch (203 rows), a last batch with fewer rows than ranks (202 = 4 x 50 + 2 rows
    # with 3 ranks: one rank has none) and Dropout (the whole batch's masks); train_on_batch.
    job = _job(tmp_path, """
        cases = [("float64", "ce", "sgd", True, 0.0, 203), ("float64", "mse", "adam", False, 0.3, 202),
                 ("float64", "bce", "sgd", True, 0.3, 202), ("float32", "ce", "adam", True, 0.3, 203),
                 ("float32", "mse", "sgd", True, 0.0, 202)]
        losses = {"ce": mc.CrossEntropyLoss, "mse": mc.MSELoss, "bce": mc.BCEWithLogitsLoss}
        for dt, kind, opt_name, shuffle, p, n in cases:
            dtype = np.dtype(dt)
            X, y = data(n, dtype, kind)
            result = {}
            for distributed in (True, False):
                # distributed: each rank starts from its own init; fit takes rank 0's (init_seed 0)
                model = model_for(dtype, 0, p, init_seed=R if distributed else 0)
                opt = (mc.SGD(model.parameters(), lr=0.05, momentum=0.9) if opt_name == "sgd"
                       else mc.Adam(model.parameters(), lr=1e-2))
                tr = mc.Trainer(model, loss=losses[kind](), optimizer=opt, batch_size=50,
                                distributed=distributed)
                # 2 validation rows: with 3 ranks, one evaluates none of them
                h = tr.fit(X, y, epochs=3, shuffle=shuffle, seed=11, verbose=0,
                           validation_data=(X[:2], y[:2]))
                tr.train_on_batch(X[:7], y[:7])
                result[distributed] = (weights(model), h.history["loss"] + h.history["val_loss"])
            (w, loss), (w1, loss1) = result[True], result[False]
            rel = float(np.abs(w - w1).max() / np.abs(w1).max())
            lrel = max(abs(a - b) / abs(b) for a, b in zip(loss, loss1))
            say("CASE", dt, kind, opt_name, shuffle, p, n, digest(w), rel, lrel)
    """, n=ranks)
    cases = job.lines("CASE")
    assert len(cases) == 5 * ranks
    by_case: dict = {}
    for line in cases:
        *key, dig, rel, loss_rel = line.split()
        by_case.setdefault(tuple(key), []).append((dig, float(rel), float(loss_rel)))
    assert len(by_case) == 5
    for key, per_rank in by_case.items():
        assert len({dig for dig, _, _ in per_rank}) == 1, f"{key}: weights differ between ranks"
        _, rel, loss_rel = per_rank[0]
        tol = 1e-10 if key[0] == "float64" else 1e-5
        assert rel <= tol and loss_rel <= tol, (key, rel, loss_rel)


def test_weighted_losses_clipping_and_output_metrics_equal_one_process(tmp_path):
    # The loss divisor of a weighted batch is the whole batch's sum of weights (the reduced one), the
    # norm that clip_grad_norm clips is the reduced gradient's, and running metrics computed from the
    # training outputs see every rank's rows. Sample weights with zeros (a rank's share of a batch
    # may weigh nothing), class weights with label smoothing, validation weights, LayerNorm.
    job = _job(tmp_path, """
        cases = [("float64", "ce"), ("float64", "mse"), ("float32", "ce")]
        for dt, kind in cases:
            dtype = np.dtype(dt)
            X, y = data(211, dtype, kind, seed=3)
            rng = np.random.default_rng(4)
            w = rng.uniform(0.0, 2.0, 211)
            w[::4] = 0.0
            w[:20] = 0.0  # the first batch's first rows (in order): rank 0's share weighs nothing
            result = {}
            for distributed in (True, False):
                model = mc.Sequential(mc.Linear(6, 16, seed=R if distributed else 0, dtype=dtype),
                                      mc.LayerNorm(16, dtype=dtype), mc.Tanh(), mc.Linear(16, 3, seed=1, dtype=dtype))
                loss = (mc.CrossEntropyLoss(weight=[0.5, 2.0, 1.0], label_smoothing=0.1) if kind == "ce"
                        else mc.MSELoss())
                metrics = ["accuracy", "f1"] if kind == "ce" else ["mae", "r2"]
                tr = mc.Trainer(model, loss=loss, optimizer=mc.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                batch_size=40, metrics=metrics, clip_grad_norm=0.5, distributed=distributed)
                h = tr.fit(X, y, epochs=3, seed=2, shuffle=True, verbose=0, sample_weight=w,
                           validation_data=(X[:31], y[:31], w[:31]))
                tr.train_on_batch(X[:9], y[:9], sample_weight=w[40:49])
                logs = np.array([v for k in sorted(h.history) for v in h.history[k]])
                result[distributed] = (weights(model), logs, sorted(h.history))
            (wd, ld, kd), (w1, l1, k1) = result[True], result[False]
            assert kd == k1, (kd, k1)
            rel = float(np.abs(wd - w1).max() / np.abs(w1).max())
            lrel = float(np.max(np.abs(ld - l1) / np.maximum(np.abs(l1), 1e-12)))
            say("CASE", dt, kind, digest(wd), rel, lrel)
    """)
    cases = job.lines("CASE")
    assert len(cases) == 6
    by_case: dict = {}
    for line in cases:
        dt, kind, dig, rel, lrel = line.split()
        by_case.setdefault((dt, kind), []).append((dig, float(rel), float(lrel)))
    for key, per_rank in by_case.items():
        assert len({dig for dig, _, _ in per_rank}) == 1, f"{key}: weights differ between ranks"
        tol = 1e-10 if key[0] == "float64" else 1e-5
        assert per_rank[0][1] <= tol and per_rank[0][2] <= max(tol, 1e-9), (key, per_rank[0])


def test_batchnorm_is_refused_on_every_rank(tmp_path):
    # Each rank would normalise with its own share's statistics: the same ValueError on every rank,
    # before any step (the weights are rank 0's, as fit starts).
    job = _job(tmp_path, """
        X, y = data(64, np.float64, "ce")
        for track in (True, False):
            model = mc.Sequential(mc.Linear(6, 8, seed=0, dtype=np.float64),
                                  mc.BatchNorm1d(8, track_running_stats=track, dtype=np.float64),
                                  mc.ReLU(), mc.Linear(8, 3, seed=1, dtype=np.float64))
            opt = mc.SGD(model.parameters(), lr=0.1)
            tr = mc.Trainer(model, optimizer=opt, batch_size=16, distributed=True)
            try:
                tr.fit(X, y, epochs=1, verbose=0)
            except ValueError as e:
                say("REFUSED", track, "BatchNorm1d" in str(e) and "not supported" in str(e))
    """)
    assert sorted(job.lines("REFUSED")) == ["False True"] * 2 + ["True True"] * 2


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    # SIGINT reaches rank 1 alone, inside a compiled epoch: the stop flag travels with the step's
    # sums, so both ranks stop after the same step; rank 1 raises its KeyboardInterrupt, rank 0 one
    # naming rank 1; the weights are the same on both (a caught interrupt leaves a usable model).
    job = _job(tmp_path, """
        import os, signal, threading
        X, y = data(300000, np.float32, "ce")
        class InterruptRank1(mc.callbacks.Callback):  # epoch hooks only: one train_epoch call per epoch
            def on_epoch_begin(self, epoch, logs=None):
                if R == 1:
                    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        model = model_for(np.float32, 0)
        tr = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.01), batch_size=4, distributed=True)
        try:
            tr.fit(X, y, epochs=1, verbose=0, callbacks=[InterruptRank1()])
            say("FINISHED", R)
        except KeyboardInterrupt as e:
            steps = tr.optimizer.state_dict()["step"]
            named = "another rank" in str(e) and "rank 1" in str(e)
            say("INTERRUPTED", R, named, steps, digest(weights(model)))
    """, timeout=240)
    assert not job.lines("FINISHED"), job.stdout
    lines = sorted(line.split() for line in job.lines("INTERRUPTED"))
    assert len(lines) == 2, job.stdout
    (r0, named0, steps0, dig0), (r1, named1, steps1, dig1) = lines
    assert (r0, named0, r1, named1) == ("0", "True", "1", "False")
    assert steps0 == steps1 and 0 < int(steps0) < 75000 and dig0 == dig1


def test_logs_callbacks_and_files_agree_across_ranks(tmp_path):
    # Validation is sharded and reduced: every rank logs the same numbers as one process, and
    # EarlyStopping / ReduceLROnPlateau decide alike; only rank 0 prints progress and writes files
    # (verbose=1: rank 0's bars, the other rank makes the same train_epoch calls).
    job = _job(tmp_path, """
        import mlpcore.training.callbacks as cbmod
        import mlpcore.training.trainer as trmod
        saves, bars = [], []
        real_save, real_bar = cbmod._save, trmod._progress.make_progress
        cbmod._save = lambda path, trainer, e: (saves.append(path), real_save(path, trainer, e))
        trmod._progress.make_progress = lambda on, *a: (bars.append(on), real_bar(on, *a))[1]
        for kind in ("ce", "mse"):
            X, y = data(240, np.float64, kind, seed=1)
            Xv, yv = data(37, np.float64, kind, seed=2)
            hist = {}
            for distributed in (True, False):
                model = model_for(np.float64, 3)
                opt = mc.SGD(model.parameters(), lr=0.05 if kind == "mse" else 0.3, momentum=0.9)
                loss = mc.CrossEntropyLoss() if kind == "ce" else mc.MSELoss()
                tr = mc.Trainer(model, loss=loss, optimizer=opt, batch_size=32, distributed=distributed)
                tag = f"{kind}-{distributed}" + ("" if distributed else f"-{R}")  # one process: per rank
                cbs = [mc.callbacks.ReduceLROnPlateau(patience=0, factor=0.5),
                       mc.callbacks.EarlyStopping(patience=2, restore_best_weights=True),
                       mc.callbacks.ModelCheckpoint(f"ck-{tag}.safetensors"),
                       mc.callbacks.CSVLogger(f"log-{tag}.csv")]
                h = tr.fit(X, y, epochs=12, validation_data=(Xv, yv), seed=5, verbose=1, callbacks=cbs,
                           train_metrics=(kind == "mse"))
                hist[distributed] = (h.history, tr.evaluate(Xv, yv), weights(model), tr.is_main)
            (h, ev, w, main), (h1, ev1, w1, _) = hist[True], hist[False]
            assert list(h) == list(h1) and len(h["loss"]) == len(h1["loss"]), (list(h), len(h["loss"]))
            assert h["lr"] == h1["lr"], (h["lr"], h1["lr"])  # the same decisions as one process
            for k in h:
                assert np.allclose(h[k], h1[k], rtol=1e-9, atol=1e-12), (k, h[k], h1[k])
            for k in ev:
                assert abs(ev[k] - ev1[k]) <= 1e-9 * max(1.0, abs(ev1[k])), (k, ev[k], ev1[k])
            assert main == (R == 0)
            logged = np.array([v for k in sorted(h) for v in h[k]])
            say("LOGS", kind, digest(logged), len(h["loss"]), digest(w))
        say("FILES", R, sum(1 for s in saves if "True" in s), sum(1 for s in saves if "False" in s),
            [b for b in bars][::2])
    """, n=2)
    logs = job.lines("LOGS")
    assert len(logs) == 4 and len(set(logs)) == 2  # per loss: identical on both ranks
    assert all(int(line.split()[2]) < 12 for line in logs)  # EarlyStopping fired
    files = sorted(job.lines("FILES"))
    r0, r1 = files[0].split(maxsplit=3), files[1].split(maxsplit=3)
    assert r0[0] == "0" and int(r0[1]) > 0 and r0[1] == r0[2]  # rank 0 saved as often as one process
    assert r1[0] == "1" and r1[1] == "0"  # rank 1 never saved in the distributed fits
    assert r0[3] == "[1, 1]" and r1[3] == "[0, 0]"  # progress bars asked for on rank 0 only
    for kind in ("ce", "mse"):
        epochs_run = int(next(line for line in logs if line.startswith(kind)).split()[2])
        assert (tmp_path / f"log-{kind}-True.csv").read_text().count("\n") == epochs_run + 1


def test_resume_continues_exactly(tmp_path):
    # Interrupted after 2 of 5 epochs (rank 0's checkpoint), resumed on every rank: the same bits as
    # the uninterrupted distributed run, Dropout and Adam state included.
    job = _job(tmp_path, """
        X, y = data(150, np.float64, "ce")
        def run(epochs, resume=None, ck=None, init_seed=0):
            model = model_for(np.float64, 4, 0.2, init_seed=init_seed)
            opt = mc.Adam(model.parameters(), lr=1e-2)
            tr = mc.Trainer(model, optimizer=opt, batch_size=32, distributed=True)
            cbs = [mc.callbacks.ModelCheckpoint(ck)] if ck else []
            tr.fit(X, y, epochs=epochs, seed=9, verbose=0, resume_from=resume, callbacks=cbs)
            return weights(model)
        full = run(5)
        run(2, ck="half.safetensors")
        resumed = run(5, resume="half.safetensors", init_seed=100 + R)
        say("RESUME", R, digest(full), digest(resumed))
    """)
    lines = [line.split() for line in job.lines("RESUME")]
    assert len(lines) == 2 and len({d for _, a, b in lines for d in (a, b)}) == 1


def test_nonfinite_loss_on_one_rank_stops_every_rank_before_any_update(tmp_path):
    job = _job(tmp_path, """
        X, y = data(40, np.float64, "mse")
        y[30, 0] = 1e160  # row 30 of the first batch of 40 rows (in order): rank 1's half; its square is inf
        model = model_for(np.float64, 6)
        tr = mc.Trainer(model, loss=mc.MSELoss(), optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=40,
                        distributed=True)
        before = weights(model)
        try:
            tr.fit(X, y, epochs=2, shuffle=False, verbose=0)
        except RuntimeError as e:
            say("ERROR", R, str(e).split(" [")[0].replace(" ", "_"), digest(before), digest(weights(model)))
    """)
    lines = [line.split() for line in job.lines("ERROR")]
    assert len(lines) == 2 and lines[0][1:] == lines[1][1:], lines  # the same error, on both ranks
    assert "non-finite_loss" in lines[0][1] and "epoch_1,_batch_1" in lines[0][1]
    assert lines[0][2] == lines[0][3]  # no update


def test_ranks_called_differently_get_the_same_error(tmp_path):
    job = _job(tmp_path, """
        X, y = data(64 + R, np.float64, "ce")  # rank 1 has one more row
        model = model_for(np.float64, 2)
        tr = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=16, distributed=True)
        for call in ("fit", "train_epoch"):
            try:
                if call == "fit":
                    tr.fit(X, y, epochs=1, verbose=0)
                else:  # the core's own check, below fit's
                    model.compiled().train_epoch(tr.optimizer._core, tr.loss.kind, X, y.astype(np.int32), 16,
                                                 True, 1, comm=comm)
            except ValueError as e:
                say("MISMATCH", call, "rows" in str(e) and "different" in str(e))
    """)
    assert sorted(job.lines("MISMATCH")) == ["fit True"] * 2 + ["train_epoch True"] * 2


def test_memmap_is_read_in_place(tmp_path):
    # A contiguous float32 np.memmap goes to the core as it is: no rank copies it (tracemalloc sees
    # numpy's allocations; the data set is 8 MB, the model's state is about 10 kB).
    job = _job(tmp_path, """
        import tracemalloc
        n, f = 20000, 100
        path = "X.f32"
        if R == 0:
            X0 = np.lib.format.open_memmap(path + ".npy", mode="w+", dtype=np.float32, shape=(n, f))
            X0[:] = np.random.default_rng(0).standard_normal((n, f), dtype=np.float32)
            X0.flush()
            del X0
        mc.distributed.barrier()
        X = np.load(path + ".npy", mmap_mode="r")
        y = (np.arange(n) % 3).astype(np.int32)
        assert isinstance(X, np.memmap) and X.flags.c_contiguous
        model = mc.Sequential(mc.Linear(f, 8, seed=0), mc.ReLU(), mc.Linear(8, 3, seed=1))
        opt = mc.SGD(model.parameters(), lr=0.01)
        tr = mc.Trainer(model, optimizer=opt, batch_size=500, distributed=True)
        tracemalloc.start()
        tr.fit(X, y, epochs=2, validation_split=0.1, verbose=0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        say("PEAK", R, peak, X.nbytes)
    """)
    for line in job.lines("PEAK"):
        _, peak, nbytes = map(int, line.split())
        assert peak < nbytes // 8, f"a copy of the data set: peak {peak} bytes for {nbytes} bytes of data"


def test_rank_failing_mid_fit_ends_the_job(tmp_path):
    job = run_mpi(tmp_path, textwrap.dedent(_COMMON) + textwrap.dedent("""
        import os, time
        say("PID", R, os.getpid())
        class FailOnRank1(mc.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if R == 1 and epoch == 1:
                    say("FAIL_AT", time.time())
                    raise ValueError("callback failed on rank 1")
        X, y = data(4000, np.float32, "ce")
        model = model_for(np.float32, 0)
        tr = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=8, distributed=True)
        tr.fit(X, y, epochs=1000, verbose=0, callbacks=[FailOnRank1()])  # rank 0 trains on, alone
        say("UNREACHABLE", R)
    """), timeout=120)
    assert job.returncode != 0 and not job.lines("UNREACHABLE")
    (fail_at,) = map(float, job.lines("FAIL_AT"))
    assert job.ended - fail_at < 20, f"the job took {job.ended - fail_at:.1f} s to end"
    assert not wait_gone([int(p.split()[1]) for p in job.lines("PID")], fail_at + 20)
    assert "callback failed on rank 1" in job.stderr


def test_distributed_in_a_world_of_one_is_the_single_process_path():
    require_mpi4py()
    code = textwrap.dedent(_COMMON) + textwrap.dedent("""
        X, y = data(203, np.float32, "ce")
        out = []
        for distributed in (True, False):
            model = model_for(np.float32, 0, 0.3)
            opt = mc.Adam(model.parameters())
            tr = mc.Trainer(model, optimizer=opt, batch_size=50, distributed=distributed)
            h = tr.fit(X, y, epochs=3, validation_split=0.2, verbose=0)
            out.append((digest(weights(model)), h.history))
        assert out[0] == out[1], out
        print("OK", P, tr.is_main)
    """).replace("say(", "print(")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["OK", "1", "True"], r.stderr


class _Twice(mc.Module):
    def forward(self, x):
        return 2 * x

    def backward(self, g):
        return 2 * g


def test_module_by_module_path_is_single_process():
    model = mc.Sequential(mc.Linear(3, 4), _Twice(), mc.Linear(4, 2))
    with pytest.raises(ValueError, match="module-by-module path is single-process"):
        mc.Trainer(model, distributed=True)
    with pytest.raises(ValueError, match="compiled=False"):
        mc.Trainer(mc.Sequential(mc.Linear(3, 2)), compiled=False, distributed=True)
    with pytest.raises(ValueError, match="distributed"):
        mc.Trainer(mc.Sequential(mc.Linear(3, 2)), distributed="yes")
    assert mc.Trainer(mc.Sequential(mc.Linear(3, 2))).is_main  # not distributed: the main process


def test_command_line_trains_distributed(tmp_path):
    # `mpiexec -n 2 mlpcore train --distributed ...`: rank 0 alone prints and saves; the numbers are
    # one process's (printed to 4 decimals).
    script = Path(sys.executable).parent / "mlpcore"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "mlpcore"]
    args = ["train", "--data", "moons", "--hidden", "16,16", "--epochs", "3", "--no-progress",
            "--threads", "1"]
    job = run_mpi_command(tmp_path, [*argv, *args, "--distributed", "--out", "dist.safetensors"])
    assert job.returncode == 0, job.stderr
    one = subprocess.run([*argv, *args, "--out", "none"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    lines = job.stdout.splitlines()
    assert sum(line.startswith("data ") for line in lines) == 1 and "x 2 ranks" in job.stdout
    pick = [line for line in lines if line.startswith(("train ", "test "))]
    assert pick == [line for line in one.stdout.splitlines() if line.startswith(("train ", "test "))]
    assert mc.load(tmp_path / "dist.safetensors") is not None


def test_readme_example_runs_under_mpiexec(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Data-parallel training (MPI)", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.standard_normal((300, 784), dtype=np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 10, 300))
    job = run_mpi(tmp_path, code.replace("print(", "say("), timeout=240)
    assert job.returncode == 0, job.stderr
    (logs,) = [line for line in job.stdout.splitlines() if line.startswith("{") and "accuracy" in line]
    assert (tmp_path / "ck.safetensors").exists() and "loss" in logs
