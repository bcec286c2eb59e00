"""`mlpcore predict` takes the model's feature columns by name: the checkpoint of a model trained on
a .csv with a header names its feature and target columns; predict selects them, ignores other
columns, refuses a file that lacks one, and scores the labels when the target column is there
(accuracy, or r2 / mse / mae for regression). `--drop` leaves columns out of training; a cell
that is not a number is named by row and column."""

import re

import numpy as np
import pytest
from test_cli import _one_line_error, run

import mlpcore as mc
from mlpcore import datasets as ds


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")


@pytest.fixture(scope="module")
def cls_data(tmp_path_factory):
    """f1..f5, label, price: the label is a function of f1 and f2; price is another number."""
    d = tmp_path_factory.mktemp("cls")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 5)).round(4)
    label = (X[:, 0] + X[:, 1] > 0).astype(int)
    price = (rng.random(400) * 100 + 50).round(2)
    rows = [[*x, lab, p] for x, lab, p in zip(X, label, price)]
    path = d / "cls.csv"
    write_csv(path, ["f1", "f2", "f3", "f4", "f5", "label", "price"], rows)
    model = d / "m.safetensors"
    r = run("train", "--data", str(path), "--target", "label", "--drop", "price", "--hidden", "16",
            "--epochs", "30", "--out", str(model), "--verbose", "0")
    assert r.returncode == 0, r.stderr
    return d, X, label, price, model


def test_checkpoint_names_the_columns(cls_data):
    _, _, _, _, model = cls_data
    extra = mc.load_checkpoint(model)["extra"]
    assert extra["features"] == ["f1", "f2", "f3", "f4", "f5"] and extra["target"] == "label"


def test_predict_without_target_selects_columns_by_name(cls_data):
    """The scenario of a new user: the file has f1..f5, label, price; no --target at predict."""
    d, X, label, price, model = cls_data
    r = run("predict", "--model", str(model), str(d / "cls.csv"))
    assert r.returncode == 0, r.stderr
    pred = np.array(r.stdout.split(), dtype=int)
    assert pred.shape == (400,) and np.mean(pred == label) > 0.9
    acc = float(re.match(r"accuracy ([\d.]+) on 400 rows", r.stderr).group(1))  # scored on `label`
    assert acc == pytest.approx(np.mean(pred == label), abs=1e-4)

    # the same rows with the columns shuffled and without labels: the same predictions
    shuffled = d / "shuffled.csv"
    write_csv(shuffled, ["price", "f5", "f3", "f1", "f4", "f2"],
              [[p, x[4], x[2], x[0], x[3], x[1]] for x, p in zip(X, price)])
    r2 = run("predict", "--model", str(model), str(shuffled))
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == r.stdout and r2.stderr == ""


def test_predict_refuses_a_file_without_a_feature_column(cls_data):
    d, X, label, _, model = cls_data
    bad = d / "no_f3.csv"
    write_csv(bad, ["f1", "f2", "f4", "f5", "label"], [[x[0], x[1], x[3], x[4], y] for x, y in zip(X, label)])
    line = _one_line_error(run("predict", "--model", str(model), str(bad)), 1)
    assert "no column named 'f3'" in line and "no_f3.csv" in line and "needed: f1, f2, f3, f4, f5" in line
    assert line.count("mlpcore:") == 1


def test_predict_regression_prints_metrics(tmp_path):
    X, y = ds.make_linear_regression(300, n_features=3, noise=0.05, seed=0)
    f = tmp_path / "reg.csv"
    write_csv(f, ["id", "a", "b", "c", "price"], [[i, *(f"{v:.5f}" for v in row)] for i, row in enumerate(np.c_[X, y])])
    out = tmp_path / "reg.safetensors"
    r = run("train", "--data", str(f), "--target", "price", "--drop", "id", "--hidden", "32", "--epochs", "60",
            "--batch-size", "16", "--lr", "0.01", "--out", str(out), "--verbose", "0")
    assert r.returncode == 0, r.stderr
    assert "3-32-1" in r.stdout  # id left out
    r = run("predict", "--model", str(out), str(f))
    assert r.returncode == 0, r.stderr
    pred = np.array(r.stdout.split(), dtype=np.float64)
    m = re.match(r"r2 ([-\d.]+)  mse ([\d.e+-]+)  mae ([\d.e+-]+) on 300 rows", r.stderr)
    assert m, r.stderr
    assert float(m.group(1)) > 0.95
    assert float(m.group(2)) == pytest.approx(np.mean((pred - y[:, 0]) ** 2), rel=1e-3)


def test_drop_errors(tmp_path):
    f = tmp_path / "d.csv"
    write_csv(f, ["a", "b", "y"], [[1, 2, 0], [3, 4, 1], [5, 6, 0], [7, 8, 1]])
    line = _one_line_error(run("train", "--data", str(f), "--drop", "nope", "--out", "none"), 1)
    assert "drop: no column named 'nope'" in line and "a, b, y" in line
    line = _one_line_error(run("train", "--data", "moons", "--drop", "a", "--out", "none"), 1)
    assert "--drop: only for .csv files" in line
    line = _one_line_error(run("train", "--drop", "a,,b"), 2)
    assert "--drop" in line


def test_csv_errors_name_row_and_column(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("a,b,y\n1,2,0\n3,4,1\n\n5,oops,0\n7,8,1\n")
    line = _one_line_error(run("train", "--data", str(f), "--out", "none"), 1)
    assert "bad.csv: row 5, column 'b' (2): 'oops' is not a number" in line
    g = tmp_path / "ragged.csv"
    g.write_text("1,2,0\n3,4\n")
    line = _one_line_error(run("train", "--data", str(g), "--out", "none"), 1)
    assert "ragged.csv: row 2 has 2 fields, expected 3" in line
    with pytest.raises(ValueError, match=r"row 3, column 1: '' is not a number"):
        ds.load_csv_table(_write(tmp_path / "empty_cell.csv", "1,2,0\n3,4,1\n,5,1\n"))


def _write(path, text):
    path.write_text(text)
    return path


def test_load_csv_table(tmp_path):
    f = _write(tmp_path / "t.csv", "id,x1,x2,kind\n1,0.5,1.5,cat\n2,2.5,3.5,dog\n")
    t = ds.load_csv_table(f, target="kind", drop=["id"])
    assert t.features == ["x1", "x2"] and t.target == "kind" and t.classes == ["cat", "dog"]
    np.testing.assert_array_equal(t.X, [[0.5, 1.5], [2.5, 3.5]])
    np.testing.assert_array_equal(t.y, [0, 1])
    t = ds.load_csv_table(f, target=None, features=["x2", "id"])
    np.testing.assert_array_equal(t.X, [[1.5, 1], [3.5, 2]])
    assert t.y is None and t.target is None
    assert ds.csv_header(f) == ["id", "x1", "x2", "kind"]
    g = _write(tmp_path / "n.csv", "1,2,0\n3,4,1\n")
    assert ds.csv_header(g) is None and ds.load_csv_table(g).features is None
    with pytest.raises(ValueError, match="no header row"):
        ds.load_csv_table(g, features=["a"])
