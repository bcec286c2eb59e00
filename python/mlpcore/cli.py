"""The ``mlpcore`` command.

    mlpcore train                      # default MLP on digits (moons without scikit-learn), saves a checkpoint
    mlpcore train --data moons --hidden 64,64 --epochs 200
    mlpcore train --data my.csv --target label --out my.safetensors
    mlpcore predict --model mlpcore-model.safetensors data.csv
    mlpcore bench [compare.py options]
    mlpcore info

Exit codes: 0 success; 2 bad command-line arguments (argparse: one line on stderr); 1 a runtime
error (missing or corrupt file, bad data, CUDA unavailable: one line ``mlpcore: error: ...`` on
stderr, never a traceback; ``MLPCORE_DEBUG=1`` shows the traceback); 130 interrupted (Ctrl-C);
141 stdout closed by its reader (``| head``; nothing printed, as a command killed by SIGPIPE).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .io import _version
from .nn import _mlp

DEFAULT_OUT = "mlpcore-model.safetensors"
BUILTIN_DATA = ("digits", "moons", "circles", "spirals")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "elu", "gelu", "silu")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------------------------------------
# argument types
# ----------------------------------------------------------------------------------------------

def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {s!r}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def _fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {s!r}")
    return v


def _hidden(s: str) -> list:
    """'256,256' -> [256, 256]; '' or 'none' -> [] (a linear model)."""
    if s.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(p) for p in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths such as 256,256, got {s!r}") from None
    if any(v < 1 for v in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {s!r}")
    return sizes


def _columns(s: str) -> list:
    """'id,price' -> ['id', 'price']; integers are column indices."""
    cols = [c.strip() for c in s.split(",")]
    if not all(cols):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names or indices, got {s!r}")
    return [_target(c) for c in cols]


def _verbose(s: str):
    if s not in ("auto", "0", "1", "2"):
        raise argparse.ArgumentTypeError(f"expected auto, 0, 1 or 2, got {s!r}")
    return s if s == "auto" else int(s)


def _target(s: str):
    """A column index (int) or a column / array name (str)."""
    try:
        return int(s)
    except ValueError:
        return s


# ----------------------------------------------------------------------------------------------
# data and model
# ----------------------------------------------------------------------------------------------

def _load_data(data: str, target, seed: int, drop: list) -> tuple:
    """(X, y, description, classes, columns): a built-in set or a user .csv / .npz file; columns
    = {"features": header names of the feature columns, "target": the label column's} for a .csv
    with a header row (the checkpoint keeps them so that predict selects columns by name)."""
    from . import datasets

    if drop and Path(data).suffix.lower() != ".csv":
        raise ValueError(f"--drop: only for .csv files (columns by header name or index), got --data {data}")
    if data == "digits":
        try:
            X, y = datasets.load_digits(scale=None)
            return X, y, "digits (scikit-learn, 1797 x 64)", None, None
        except ImportError:
            print("mlpcore: scikit-learn is not installed (pip install mlpcore[sklearn]); "
                  "training on half moons instead", file=sys.stderr)
            data = "moons"
    if data == "moons":
        X, y = datasets.make_moons(2000, noise=0.2, seed=seed)
        return X, y, "half moons (2000 x 2, noise 0.2)", None, None
    if data == "circles":
        X, y = datasets.make_circles(2000, noise=0.1, seed=seed)
        return X, y, "concentric circles (2000 x 2, noise 0.1)", None, None
    if data == "spirals":
        X, y = datasets.make_spirals(1500, n_arms=3, noise=0.2, seed=seed)
        return X, y, "spirals (1500 x 2, 3 arms)", None, None
    path = Path(data)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise ValueError(f"--data: expected one of {', '.join(BUILTIN_DATA)} or a .csv / .npz file, got {data!r}")
    if not path.exists():
        raise FileNotFoundError(f"--data: no such file: {data}")
    columns = None
    if suffix == ".csv":
        t = datasets.load_csv_table(path, target=-1 if target is None else target, drop=drop)
        X, y, classes = t.X, t.y, t.classes
        if t.features is not None:
            columns = {"features": t.features, "target": t.target}
    else:
        X, y, classes = datasets.load_npz(path, target="y" if target is None else target, return_classes=True)
    return X, y, f"{path.name} ({X.shape[0]} x {X.shape[1]})", classes, columns


def _build_model(n_in: int, hidden: list, n_out: int, activation: str, seed: int):
    from .nn import registry

    act = registry.lookup(activation).cls  # "leaky_relu" -> LeakyReLU
    init = "he_uniform" if activation in ("relu", "leaky_relu", "elu", "gelu", "silu") else "xavier_uniform"
    return _mlp([n_in, *hidden, n_out], act, seed=seed, init=init, last_init="xavier_uniform")


def _build_optimizer(name: str, params, lr: Optional[float]):
    import mlpcore as mc

    # Default learning rates tuned on digits (seeds 0-5, 30 epochs, batch 64): AdamW 2e-3 gave
    # 0.981-0.992 test accuracy, Adam 1e-3 0.975-0.992.
    if name == "sgd":
        return mc.SGD(params, lr=lr or 0.05, momentum=0.9)
    cls, default_lr = {"adam": (mc.Adam, 2e-3), "adamw": (mc.AdamW, 2e-3), "rmsprop": (mc.RMSprop, 1e-3)}[name]
    return cls(params, lr=lr or default_lr)


# ----------------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------------

def _threads_text() -> str:
    import mlpcore as mc

    n = mc.get_num_threads()
    if mc._core.num_threads_pinned() or n == 1:
        return f"{n} thread(s)"
    return f"1-{n} threads (by GEMM size)"


def cmd_train(args) -> int:
    import mlpcore as mc
    from .datasets import StandardScaler, train_test_split

    main = True
    if args.distributed:  # every rank runs this command on the same data (mpiexec -n P mlpcore train ...)
        mc.distributed.init()
        main = mc.distributed.is_main()
        if args.threads is None:  # the machine's cores shared by its ranks
            args.threads = max(1, (os.cpu_count() or 1) // mc.distributed.local_world_size())
    if args.threads is not None:
        mc.set_num_threads(args.threads)
    if args.device == "cuda" and not mc.cuda_available():
        raise RuntimeError("--device cuda: " + mc._core.cuda_unavailable_reason())
    X, y, desc, classes, columns = _load_data(args.data, args.target, args.seed, args.drop)
    if args.task == "regression" and y.dtype.kind in "iu":
        if classes:
            raise ValueError("--task regression: the labels are text, not numbers")
        y = y.astype(np.float32).reshape(-1, 1)
    elif args.task == "classification" and y.dtype.kind == "f":
        raise ValueError("--task classification: the labels are not non-negative integers or names")
    classify = y.dtype.kind in "iu"
    if classify and len(np.unique(y)) < 2:
        raise ValueError(f"--data: the labels hold a single class ({np.unique(y)[0]}); need at least two")
    stratify = y if classify and np.bincount(y).min() >= 2 else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=args.test_size, seed=args.seed, stratify=stratify)
    if args.data == "digits" and X.shape[1] == 64:
        # pixels are 0..16: dividing by 16 keeps their common scale; it scored higher than per-pixel
        # standardisation (which amplifies the near-constant border pixels) in a seed sweep
        scaler = StandardScaler.from_state_dict({"mean": [0.0] * 64, "scale": [16.0] * 64})
    else:
        scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    n_out = int(y.max()) + 1 if classify else y.shape[1]
    y_scaler = None
    if not classify:  # regression targets are standardised too (R^2 is unchanged by it); predict undoes it
        y_scaler = StandardScaler().fit(y_tr)
        y_tr, y_te = y_scaler.transform(y_tr), y_scaler.transform(y_te)

    model = _build_model(X.shape[1], args.hidden, n_out, args.activation, args.seed)
    if args.device == "cuda":
        model.to("cuda")
    loss = mc.CrossEntropyLoss() if classify else mc.MSELoss()
    opt = _build_optimizer(args.optimizer, model.parameters(), args.lr)
    arch = "-".join(str(v) for v in [X.shape[1], *args.hidden, n_out])
    out = sys.stdout if main else open(os.devnull, "w")  # rank 0 alone prints
    print(f"data     {desc}: {len(X_tr)} train / {len(X_te)} test rows, "
          f"{'classification, ' + str(n_out) + ' classes' if classify else 'regression'}", file=out)
    print(f"model    {arch} {args.activation}, {args.optimizer} lr {opt.lr:g}, {args.epochs} epochs, "
          f"batch {args.batch_size}, {args.device}, {_threads_text()}"
          + (f" x {mc.distributed.world_size()} ranks" if args.distributed else ""), file=out, flush=True)

    trainer = mc.Trainer(model, loss=loss, optimizer=opt, batch_size=args.batch_size,
                         distributed=args.distributed)
    t0 = time.perf_counter()
    history = trainer.fit(X_tr, y_tr, epochs=args.epochs, seed=args.seed, verbose=args.verbose)
    train_s = time.perf_counter() - t0
    test = trainer.evaluate(X_te, y_te)
    train = trainer.evaluate(X_tr, y_tr)
    metric = "accuracy" if classify else "r2"
    print(f"train    loss {history.history['loss'][-1]:.4f}  {metric} {train[metric]:.4f}", file=out)
    print(f"test     loss {test['loss']:.4f}  {metric} {test[metric]:.4f}", file=out)
    print(f"time     {train_s:.2f} s training ({args.epochs * len(X_tr) / train_s:,.0f} samples/s)", file=out)

    if args.out.lower() != "none" and main:
        extra = {"data": args.data, "task": "classification" if classify else "regression",
                 "scaler": scaler.state_dict(), "target_scaler": y_scaler.state_dict() if y_scaler else None,
                 "classes": classes, "seed": args.seed, **(columns or {}),
                 f"test_{metric}": test[metric]}
        mc.save(model, args.out, optimizer=opt, epoch=args.epochs, extra=extra)
        print(f"saved    {args.out}", file=out)
    return 0


def _read_features(path: str, target, n_in: int, extra: dict) -> tuple:
    """(X, y or None, label names or None) from a .csv / .npz file for prediction.

    A model trained on a .csv with a header (its checkpoint names the feature and target columns)
    takes its features by name, in training order, from a .csv with a header: other columns are
    ignored, a missing one is an error, and the target column, when present, gives the labels.
    Otherwise (no names: a .npz, a file without a header, an older checkpoint) columns go by
    position: the file holds exactly the model's features, or one more column (the last; for a
    .npz an array 'y') taken as the labels."""
    from . import datasets

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = p.suffix.lower()
    features = extra.get("features")
    if suffix == ".csv" and features:
        header = datasets.csv_header(p)
        if header is not None:
            if target is None:
                target = extra.get("target") if extra.get("target") in header else None
            t = datasets.load_csv_table(p, target=target, features=features)
            return t.X, t.y, t.classes
        # no header row: columns by position (below)
    if suffix == ".npz":
        if target is None:
            with np.load(p, allow_pickle=False) as z:
                target = "y" if "y" in z.files else None
        X, y, names = datasets.load_npz(p, target=target, return_classes=True)
    elif suffix == ".csv":
        if target is None:
            try:
                X, y, names = datasets.load_csv(p, target=None, return_classes=True)
            except ValueError:  # a non-numeric column: the labels, as the last one
                X = None
            if X is None or X.shape[1] == n_in + 1:
                X, y, names = datasets.load_csv(p, target=-1, return_classes=True)
        else:
            X, y, names = datasets.load_csv(p, target=target, return_classes=True)
    else:
        raise ValueError(f"data: expected a .csv or .npz file, got {path!r}")
    if X.shape[1] != n_in:
        raise ValueError(f"{path}: the model takes {n_in} features, the file has {X.shape[1]} "
                         "(use --target to name the label column)")
    return X, y, names


def cmd_predict(args) -> int:
    import mlpcore as mc
    from .datasets import StandardScaler
    from .training import data, metrics
    from .nn.inference import predict

    ckpt = mc.load_checkpoint(args.model)
    model, extra = ckpt["model"], ckpt["extra"] or {}
    n_in = model.compiled().in_features if model.compiled() is not None else model.parameters()[0].shape[1]
    X, y, y_names = _read_features(args.data, args.target, n_in, extra)
    if "scaler" in extra:
        X = StandardScaler.from_state_dict(extra["scaler"]).transform(X)
    out = predict(model, data.as_features(X, args.data, model.dtype, n_in))
    classify = extra.get("task", "classification" if out.shape[1] > 1 else "regression") == "classification"
    classes = extra.get("classes")
    if classify:
        names = classes if classes else [str(i) for i in range(out.shape[1])]
        lines = [names[i] for i in out.argmax(axis=1)]
        if y is not None and y.dtype.kind in "iu":
            # compare names when the labels are strings (the file's own sorted ids may differ)
            index = {name: i for i, name in enumerate(names)}
            truth = [y_names[i] for i in y] if y_names else [str(i) for i in y]
            ids = np.array([index.get(t, -1) for t in truth])  # a label the model does not know: a miss
            accuracy = metrics.accuracy(mc.CrossEntropyLoss.kind, out, ids)
            print(f"accuracy {accuracy:.4f} on {len(y)} rows", file=sys.stderr)
    else:
        if extra.get("target_scaler"):
            out = StandardScaler.from_state_dict(extra["target_scaler"]).inverse_transform(out)
        lines = [",".join(f"{v:.6g}" for v in row) for row in out]
        if y is not None and y.dtype.kind == "f" and y.reshape(len(y), -1).shape == out.shape:
            m = metrics.regression_metrics(out.astype(np.float64), y.reshape(out.shape).astype(np.float64))
            print(f"r2 {m['r2']:.4f}  mse {m['mse']:.6g}  mae {m['mae']:.6g} on {len(y)} rows", file=sys.stderr)
    text = "\n".join(lines) + "\n"
    if args.out:
        from .io import atomic_write
        atomic_write(args.out, text.encode())
        print(f"wrote {len(lines)} predictions to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()  # a closed pipe shows here, inside _run
    return 0


def _bench_script() -> Path:
    """bench/compare.py of the source checkout this package runs from (python/mlpcore/cli.py ->
    repository root), else the copy installed with the package (mlpcore/_bench_compare.py, put
    there by CMakeLists.txt)."""
    checkout = Path(__file__).resolve().parents[2] / "bench" / "compare.py"
    return checkout if checkout.is_file() else Path(__file__).resolve().with_name("_bench_compare.py")


def cmd_bench(args, rest: list) -> int:
    script = _bench_script()
    if not script.is_file():
        raise FileNotFoundError(
            f"mlpcore bench needs bench/compare.py (from a source checkout, or installed with the package), "
            f"and none was found at {script}; reinstall mlpcore or run `python bench/compare.py` in a checkout")
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlpcore_bench_compare", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main(rest)
    return int(rc or 0)


def cmd_info(args) -> int:
    import mlpcore as mc

    print(f"mlpcore   {mc.__version__} ({Path(mc.__file__).parent})")
    print(f"python    {sys.version.split()[0]}, numpy {np.__version__}")
    print(f"blas      {mc.blas_info()}")
    print(f"threads   {_threads_text()}")
    if mc.cuda_available():
        print("cuda      available")
    else:
        print(f"cuda      not available: {mc._core.cuda_unavailable_reason()}")
    from importlib import metadata

    extras = []
    for dist in ("safetensors", "tqdm", "scikit-learn", "matplotlib", "torch"):
        try:
            extras.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            extras.append(f"{dist} -")
    print(f"optional  {', '.join(extras)}")
    return 0


# ----------------------------------------------------------------------------------------------
# parser and entry point
# ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mlpcore", description="Fast multilayer perceptrons: train, predict, benchmark.",
                epilog="Exit codes: 0 ok, 1 runtime error (one line on stderr), 2 bad arguments.")
    p.add_argument("--version", action="version", version=f"mlpcore {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train an MLP and save a checkpoint",
                       description="Train an MLP (default: 64-256-256-10 ReLU, AdamW, on scikit-learn's digits, "
                                   "80/20 split) and save a checkpoint. Features are standardised with the "
                                   "training split's statistics, which the checkpoint keeps for `predict`.")
    t.add_argument("--data", default="digits",
                   help="digits | moons | circles | spirals | path to a .csv or .npz file (default: digits; "
                        "moons when scikit-learn is missing)")
    t.add_argument("--target", type=_target, default=None,
                   help="label column of a .csv (index or header name; default: last column) or array key "
                        "of a .npz (default: y)")
    t.add_argument("--drop", type=_columns, default=[], metavar="COLS",
                   help="columns of a .csv to leave out of the features, by header name or index, comma-separated "
                        "(ids, other targets)")
    t.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="auto (default): classification for integer or text labels, regression otherwise")
    t.add_argument("--hidden", type=_hidden, default=[256, 256], help="hidden widths, e.g. 256,256 (default)")
    t.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="hidden activation (default relu)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw",
                   help="default adamw (weight decay 0.01); sgd uses momentum 0.9")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: 2e-3 for adam and adamw, 1e-3 for rmsprop, 0.05 for sgd)")
    t.add_argument("--epochs", type=_positive_int, default=30, help="default 30")
    t.add_argument("--batch-size", type=_positive_int, default=64, help="default 64")
    t.add_argument("--test-size", type=_fraction, default=0.2, help="test fraction (default 0.2)")
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default cpu")
    t.add_argument("--threads", type=_positive_int, default=None,
                   help="pin this many OpenBLAS threads (default: one for GEMMs too small to split, all cores for "
                        "larger ones)")
    t.add_argument("--seed", type=_nonneg_int, default=0, help="seed for the split, init and shuffling (default 0)")
    t.add_argument("--out", default=DEFAULT_OUT,
                   help=f"checkpoint path (default ./{DEFAULT_OUT}; 'none' to skip saving)")
    t.add_argument("--verbose", type=_verbose, default="auto", metavar="{auto,0,1,2}",
                   help="0 silent, 1 progress bars, 2 one line per epoch; auto (default): bars on a terminal, "
                        "lines when stdout is a file or pipe")
    t.add_argument("--no-progress", dest="verbose", action="store_const", const=0, help="same as --verbose 0")
    t.add_argument("--distributed", action="store_true",
                   help="data parallel over the ranks of an MPI job: mpiexec -n 4 mlpcore train "
                        "--distributed ... (pip install 'mlpcore[mpi]'); --batch-size is the global batch; "
                        "rank 0 prints and saves")

    q = sub.add_parser("predict", help="predict with a saved model",
                       description="Predict the rows of a .csv / .npz file with a checkpoint from `mlpcore train`: "
                                   "one class (or regression values) per line. A model trained on a .csv with a "
                                   "header takes its feature columns by name (other columns are ignored). When the "
                                   "file also holds the labels (the training target's column, --target, or one "
                                   "column more than the model's inputs), the accuracy (classification) or r2, mse "
                                   "and mae (regression) go to stderr.")
    q.add_argument("data", help=".csv or .npz file of features")
    q.add_argument("--model", required=True, help="checkpoint (.safetensors) from mlpcore train / mlpcore.save")
    q.add_argument("--target", type=_target, default=None,
                   help="label column / array key to leave out (default: the training target's name when the "
                        "file has it)")
    q.add_argument("--out", default=None, help="write predictions to this file instead of stdout")

    sub.add_parser("bench", help="run the comparison table (bench/compare.py of a source checkout)",
                   description="Run bench/compare.py from the mlpcore source checkout; every further argument "
                               "is passed to it (`mlpcore bench -- --help` shows its options).")
    sub.add_parser("info", help="version, BLAS, threads and CUDA availability",
                   description="Print the version, the BLAS library and its core, the thread count and whether "
                               "CUDA is available (and why not).")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``mlpcore`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "bench":  # everything after 'bench' belongs to compare.py
        rest = argv[1:]
        if rest and rest[0] in ("-h", "--help"):
            parser.parse_args(["bench", "--help"])  # prints bench's help and exits 0
        if rest and rest[0] == "--":
            rest = rest[1:]
        return _run(lambda: cmd_bench(None, rest))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    cmd = {"train": cmd_train, "predict": cmd_predict, "info": cmd_info}[args.command]
    return _run(lambda: cmd(args))


def _stdout_closed() -> int:
    """stdout's reader went away (``mlpcore predict ... | head``): end quietly, as a command
    killed by SIGPIPE, with nothing left for Python to flush at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file descriptor
        pass
    return 141


def _run(fn) -> int:
    try:
        return fn()
    except KeyboardInterrupt:
        print("mlpcore: interrupted", file=sys.stderr)
        return _end_job(130)
    except BrokenPipeError:
        return _end_job(_stdout_closed())
    except (OSError, ValueError, TypeError, RuntimeError, ImportError, KeyError) as e:
        if os.environ.get("MLPCORE_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        msg = msg.removeprefix("mlpcore: ")  # the line's own prefix says it already
        if isinstance(e, OSError) and e.filename and str(e.filename) not in msg:
            msg = f"{msg}: {e.filename}"
        print(f"mlpcore: error: {msg}", file=sys.stderr)
        return _end_job(1)


def _end_job(code: int) -> int:
    """The exit code; in a job of several ranks, an error ends every rank (MPI_Abort), since it may
    have struck this rank alone and the others would wait for it forever."""
    from . import distributed

    if distributed.is_initialized() and distributed.world_size() > 1:
        distributed.abort(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
