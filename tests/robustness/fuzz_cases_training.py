"""Fuzz cases (see fuzz_support.py): the compiled network, the Trainer, checkpoints, the
command line."""

from __future__ import annotations

import math
import os

import mlpcore as mc
import numpy as np
from fuzz_support import (  # noqa: F401 - _write_counts is the autouse fixture that saves the counts
    FLOATS,
    LOSSES,
    _write_counts,
    arrays,
    checks_off,
    converted,
    count,
    finite,
    fuzz,
    label_errors,
    labels,
    matrix_errors,
    maxabs,
    outcome,
    target_errors,
)
from hypothesis import given
from hypothesis import strategies as st
from mlpcore import cli

# ----- the compiled network ---------------------------------------------------------------------------------

BATCH_SIZES = [1, 2, 3, 7, 1000, 0, -1, 10**12]


@fuzz(2.0)
@given(
    st.data(),
    st.sampled_from(["train_step", "train_epoch", "evaluate", "predict", "forward"]),
    st.sampled_from(sorted(LOSSES)),
    st.integers(1, 4),
    st.integers(1, 3),
    st.sampled_from(FLOATS),
    st.sampled_from(BATCH_SIZES),
    st.booleans(),
    st.sampled_from([0, 1, 2**64 - 1, -1]),
    st.booleans(),
    st.booleans(),
)
def test_compiled_network_calls(data, method, lname, fin, fout, dtype, bs, shuffle, seed, check, guard):
    count("compiled")
    with checks_off(check):
        model = mc.Sequential(
            mc.Linear(fin, 5, dtype=dtype, seed=0), mc.ReLU(), mc.Linear(5, fout, dtype=dtype, seed=1)
        )
        net = model.compiled()
        opt = mc.SGD(model.parameters(), lr=0.01)
        kind = LOSSES[lname].kind
        n = data.draw(st.integers(1, 6))
        X = data.draw(arrays((n, fin)))
        errs = matrix_errors(X, dtype, cols=fin)
        if not errs:
            n = np.shape(X)[0]
        if lname == "ce":
            y = data.draw(labels(n, fout))
            yerr = label_errors(y, n, fout)
        else:
            y = data.draw(arrays((n,) if fout == 1 and data.draw(st.booleans()) else (n, fout)))
            yerr = target_errors(y, dtype, n, fout)
        if method in ("train_step", "train_epoch", "evaluate"):
            errs = errs or yerr
        if method in ("train_epoch", "evaluate", "predict") and bs < 1:
            errs = errs | {ValueError}  # checked before or after the data, either error is right
        if method == "train_epoch" and seed < 0:
            errs = {TypeError}  # the seed is a uint64: pybind11 refuses it before any check
        huge = (
            not finite(converted(X, dtype))
            or maxabs(X) > 1e15
            or (
                method != "predict"
                and lname != "ce"
                and (not finite(converted(y, dtype)) or maxabs(y) > 1e15)
            )
        )
        if not errs and huge and guard and method in ("train_step", "train_epoch"):
            errs = {RuntimeError}  # the non-finite-loss guard may stop the step; it may also not trigger
            allowed_success = True
        else:
            allowed_success = False
        calls = {
            "train_step": lambda: net.train_step(opt._core, kind, X, y, check_finite=guard),
            "train_epoch": lambda: net.train_epoch(opt._core, kind, X, y, bs, shuffle, seed, 0, guard),
            "evaluate": lambda: net.evaluate(kind, X, y, bs),
            "predict": lambda: net.predict(X, bs),
            "forward": lambda: net.forward(X),
        }
        before = [p.data.copy() for p in model.parameters()]
        try:
            result = calls[method]()
            ok = True
        except RuntimeError as e:
            assert errs == {RuntimeError}, f"unexpected RuntimeError: {e}"
            assert "non-finite loss" in str(e) and ("epoch 1, batch" in str(e) or "train_on_batch" in str(e))
            ok = False
        except (ValueError, TypeError) as e:
            assert errs and type(e) in errs, f"{type(e).__name__} ({e}) raised, expected one of {errs}"
            ok = False
            for p, w in zip(model.parameters(), before):  # a refused call changes nothing
                np.testing.assert_array_equal(p.data, w)
        else:
            assert not errs or allowed_success, f"invalid input accepted; expected one of {errs}"
        if not ok:
            return
        if method in ("predict", "forward"):
            assert result.shape == (n, fout) and result.dtype == dtype
            if not huge:
                assert np.all(np.isfinite(result))
        elif method == "evaluate":
            value, correct = result
            assert isinstance(correct, int) and 0 <= correct <= n
            assert correct == 0 or lname == "ce"
            if not huge:
                assert math.isfinite(value)
        else:
            value = result.loss if method == "train_epoch" else result
            assert isinstance(value, float)
            if not huge:
                assert math.isfinite(value) and all(np.all(np.isfinite(p.data)) for p in model.parameters())


# ----- the Trainer ------------------------------------------------------------------------------------------


def pos_int_ok(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


@fuzz(0.8)
@given(
    st.data(),
    st.sampled_from(sorted(LOSSES)),
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from(FLOATS),
    st.sampled_from([None, None, False]),
    st.sampled_from([1, 2, 1, 0, -1, 1.5, True, "2"]),
    st.sampled_from([None, 1, 2, 4, 1000, 0, -3, 2.5]),
    st.sampled_from([None] * 5 + [0.25, 0.0, 1.0, "x"]),
    st.sampled_from([0, 0, 7, None, -1, 1.5]),
    st.booleans(),
    st.booleans(),
)
def test_trainer(data, lname, fin, fout, dtype, compiled, epochs, bs, vsplit, seed, shuffle, check):
    count("trainer")
    with checks_off(check):
        model = mc.Sequential(
            mc.Linear(fin, 4, dtype=dtype, seed=0), mc.Tanh(), mc.Linear(4, fout, dtype=dtype, seed=1)
        )
        tr = mc.Trainer(
            model,
            loss=LOSSES[lname](),
            optimizer=mc.SGD(model.parameters(), lr=0.01),
            batch_size=3,
            compiled=compiled,
        )
        n = data.draw(st.integers(1, 6))
        X = data.draw(arrays((n, fin)))
        a = np.asarray(X)
        errs = set()
        if a.ndim != 2 or a.shape[0] == 0:
            errs.add(ValueError)
        else:
            n = a.shape[0]
            errs |= matrix_errors(a, dtype, cols=fin)
        y = (
            data.draw(labels(n, fout))
            if lname == "ce"
            else data.draw(arrays((n,) if fout == 1 and data.draw(st.booleans()) else (n, fout)))
        )
        yerr = label_errors(y, n, fout) if lname == "ce" else target_errors(y, dtype, n, fout)
        if yerr and compiled is False:
            yerr = {TypeError, ValueError}  # module by module: the dtype is checked before the shape
        if np.ndim(y) == 0 or (a.ndim >= 1 and np.shape(y)[0] != a.shape[0]):
            yerr = {ValueError}
        errs |= yerr
        if not (pos_int_ok(epochs) and (bs is None or pos_int_ok(bs))) or (
            seed is not None and not (isinstance(seed, int) and seed >= 0)
        ):
            errs.add(ValueError)
        if vsplit is not None:
            if isinstance(vsplit, str) or not 0 < vsplit < 1 or int(n * (1 - vsplit)) in (0, n):
                errs.add(ValueError)
        huge = (
            not finite(converted(X, dtype))
            or maxabs(X) > 1e15
            or (lname != "ce" and (not finite(converted(y, dtype)) or maxabs(y) > 1e15))
        )
        try:
            h = tr.fit(
                X,
                y,
                epochs=epochs,
                batch_size=bs,
                validation_split=vsplit,
                seed=seed,
                shuffle=shuffle,
                verbose=0,
            )
        except (ValueError, TypeError, RuntimeError) as e:
            if type(e) is RuntimeError and not errs and huge:
                assert "non-finite loss" in str(e)  # the guard; or (module path) the next module's edge check
                return
            if type(e) is ValueError and not errs and huge and compiled is False:
                return  # module by module, a NaN output is refused at the loss's edge
            assert errs and type(e) in errs, f"{type(e).__name__} ({e}) raised, expected one of {errs}"
            return
        assert not errs, f"invalid input accepted; expected one of {errs}"
        assert len(h.history["loss"]) == epochs
        if not huge:
            assert all(math.isfinite(v) for v in h.history["loss"])
            p = tr.predict(X)
            assert p.shape == (n, fout) and np.all(np.isfinite(p))
            logs = tr.evaluate(X, y)
            assert all(math.isfinite(v) for v in logs.values())
            assert math.isfinite(tr.train_on_batch(X, y))


# ----- checkpoints ------------------------------------------------------------------------------------------

_CKPT = {}


def checkpoint_bytes() -> tuple:
    if not _CKPT:
        model = mc.Sequential(
            mc.Linear(3, 4, seed=0), mc.ReLU(), mc.Dropout(0.1, seed=0), mc.Linear(4, 2, seed=1)
        )
        opt = mc.Adam(model.parameters())
        _CKPT["model"] = model
        _CKPT["bytes"] = mc.save_bytes(model, optimizer=opt, epoch=3, extra={"classes": ["a", "b"]})
    return _CKPT["bytes"], _CKPT["model"]


@fuzz(0.8)
@given(
    st.sampled_from(["flip", "flip", "truncate", "header-length", "junk", "append", "header-text", "empty"]),
    st.integers(0, 2**32 - 1),
    st.integers(1, 8),
)
def test_corrupt_checkpoints(kind, seed, k):
    """Damaged checkpoint bytes load or raise ValueError (never another exception, never a crash)."""
    count("checkpoint")
    good, model = checkpoint_bytes()
    rng = np.random.default_rng(seed)
    b = bytearray(good)
    if kind == "flip":
        for _ in range(k):
            b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        b = b[: rng.integers(len(b))]
    elif kind == "header-length":
        b[:8] = int(rng.integers(0, 2**63 - 1, dtype=np.int64) >> int(rng.integers(0, 60))).to_bytes(
            8, "little"
        )
    elif kind == "junk":
        b = bytearray(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes())
    elif kind == "append":
        b += rng.integers(0, 256, k * 10, dtype=np.uint8).tobytes()
    elif kind == "header-text":  # valid length, damaged JSON text
        n = int.from_bytes(b[:8], "little")
        i = 8 + int(rng.integers(n))
        b[i : i + 1] = bytes([int(rng.choice(list(b'{}[]":,0a\\ ')))])
    else:
        b = bytearray()
    data = bytes(b)
    ok, loaded = outcome(lambda: mc.load_bytes(data), {ValueError}, may_succeed=True)
    if ok:
        x = np.ones((2, 3), np.float32)
        loaded.eval()
        out = loaded(x) if all(np.all(np.isfinite(p.data)) for p in loaded.parameters()) else None
        assert out is None or out.shape == (2, 2)
    ok, ck = outcome(lambda: mc.io.load_checkpoint_bytes(data, model=model), {ValueError}, may_succeed=True)
    if ok:
        assert ck["model"] is model


# ----- the command line -------------------------------------------------------------------------------------

_FILES = {}


def cli_files(tmp: str) -> dict:
    """Small data files, good and bad, and a trained checkpoint (made once per run)."""
    if _FILES:
        return _FILES
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = (X[:, 0] > 0).astype(int)

    def write(name, text):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    rows = "\n".join(",".join(f"{v:.4f}" for v in r) + f",{c}" for r, c in zip(X, y))
    _FILES["good"] = write("good.csv", "a,b,c,label\n" + rows + "\n")
    _FILES["names"] = write(
        "names.csv",
        "\n".join(",".join(f"{v:.3f}" for v in r) + (",yes" if c else ",no") for r, c in zip(X, y)) + "\n",
    )
    _FILES["regress"] = write(
        "regress.csv", "\n".join(",".join(f"{v:.4f}" for v in r) + f",{r.sum():.4f}" for r in X) + "\n"
    )
    _FILES["nan"] = write("nan.csv", rows.replace("0.", "nan", 3) + "\n")
    _FILES["ragged"] = write("ragged.csv", rows + "\n1,2\n")
    _FILES["text"] = write("text.csv", "a,b\nx,y\nz,w\n")
    _FILES["one-class"] = write("one.csv", "\n".join(f"{v:.3f},1" for v in X[:, 0]) + "\n")
    _FILES["one-row"] = write("row.csv", "1,2,3,0\n")
    _FILES["empty"] = write("empty.csv", "")
    _FILES["features"] = write("features.csv", "\n".join(",".join(f"{v:.4f}" for v in r) for r in X) + "\n")
    _FILES["wide"] = write("wide.csv", "\n".join(",".join(["1.0"] * 7) for _ in range(5)) + "\n")
    npz = os.path.join(tmp, "data.npz")
    np.savez(npz, X=X, y=y)
    _FILES["npz"] = npz
    _FILES["missing"] = os.path.join(tmp, "missing.csv")
    _FILES["txt"] = write("data.txt", rows)
    model_path = os.path.join(tmp, "model.safetensors")
    assert (
        cli.main(
            [
                "train",
                "--data",
                _FILES["good"],
                "--epochs",
                "1",
                "--hidden",
                "4",
                "--no-progress",
                "--out",
                model_path,
            ]
        )
        == 0
    )
    _FILES["model"] = model_path
    _FILES["junk-model"] = write("junk.safetensors", "not a checkpoint")
    _FILES["tmp"] = tmp
    return _FILES


OPTIONS = {
    "--epochs": ["1", "2", "0", "-1", "x"],
    "--hidden": ["4", "3,3", "0", "a", ""],
    "--lr": ["0.01", "-1", "nan", "inf", "0"],
    "--batch-size": ["8", "1", "0", "100000"],
    "--test-size": ["0.2", "0.5", "0", "1", "1.5"],
    "--threads": ["1", "2", "0"],
    "--task": ["auto", "classification", "regression", "other"],
    "--target": ["-1", "0", "label", "9", "zz"],
    "--activation": ["relu", "tanh", "gelu", "nope"],
    "--optimizer": ["sgd", "adam", "adamw", "x"],
    "--seed": ["0", "3", "-1"],
    "--device": ["cpu", "tpu"],
}


@fuzz(0.3)
@given(
    st.data(),
    st.sampled_from(["train", "train", "predict", "predict", "info", "bogus", None]),
    st.sampled_from(
        [
            "good",
            "names",
            "regress",
            "nan",
            "ragged",
            "text",
            "one-class",
            "one-row",
            "empty",
            "features",
            "wide",
            "npz",
            "missing",
            "txt",
            "moons",
        ]
    ),
)
def test_cli(data, command, dataset):
    """`mlpcore ...` in-process with random, often invalid, arguments and files: it returns 0 or 1
    (with a message), or argparse exits with 2; nothing else escapes."""
    count("cli")
    import tempfile

    files = cli_files(_FILES.get("tmp") or tempfile.mkdtemp(prefix="mlpcore-fuzz-"))
    argv = [] if command is None else [command]
    if command == "train":
        argv += [
            "--data",
            files.get(dataset, dataset),
            "--no-progress",
            "--out",
            os.path.join(files["tmp"], "out.safetensors"),
            "--epochs",
            "1",
            "--hidden",
            "4",
        ]
        for opt in data.draw(st.lists(st.sampled_from(sorted(OPTIONS)), max_size=3, unique=True)):
            argv += [opt, data.draw(st.sampled_from(OPTIONS[opt]))]
    elif command == "predict":
        argv += [
            files.get(dataset, dataset),
            "--model",
            files[data.draw(st.sampled_from(["model", "model", "junk-model", "missing"]))],
        ]
        if data.draw(st.booleans()):
            argv += ["--target", data.draw(st.sampled_from(OPTIONS["--target"]))]
    threads = mc.get_num_threads()
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse: usage errors exit 2, --help / --version exit 0
        code = e.code
        assert code in (0, 2), f"argparse exited with {code} for {argv}"
        return
    finally:
        mc.set_num_threads(threads)
    assert code in (0, 1), f"exit code {code} for {argv}"
    if command == "train" and code == 0:
        m = mc.load(os.path.join(files["tmp"], "out.safetensors"))
        assert all(np.all(np.isfinite(p.data)) for p in m.parameters())
