"""mlpcore.datasets: shapes, dtypes, seeding, class balance, learnability, helpers and loaders."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore import datasets as ds

CLASSIFIERS = [
    (ds.make_moons, {}, 2), (ds.make_circles, {}, 2), (ds.make_spirals, {"n_arms": 4}, 4), (ds.make_triangle, {}, 2),
]


@pytest.mark.parametrize("make,kw,k", CLASSIFIERS)
def test_classification_shapes_seeding_balance(make, kw, k):
    X, y = make(n_samples=301, seed=3, **kw)
    assert X.shape == (301, 2) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (301,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=k)
    assert len(counts) == k and counts.max() - counts.min() <= 1  # balanced
    X2, y2 = make(n_samples=301, seed=3, **kw)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(n_samples=301, seed=4, **kw)
    assert not np.array_equal(X, X3)
    assert np.count_nonzero(np.diff(y)) > 10 * k  # rows are shuffled, not grouped by class


def test_geometry():
    X, y = ds.make_circles(400, noise=0.0, factor=0.3)
    r = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(r[y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(r[y == 1], 0.3, atol=1e-6)
    X, y = ds.make_triangle(500, seed=1)
    assert np.all(np.abs(X) <= 1.0)
    V = np.array(ds._TRIANGLE)
    np.testing.assert_array_equal(ds._inside_triangle(X.astype(np.float64), V), y == 1)
    X, y = ds.make_moons(200, noise=0.0)
    assert np.all(X[y == 0, 1] >= -1e-6) and np.all(X[y == 1, 1] <= 0.5 + 1e-6)
    X, y = ds.make_spirals(300, n_arms=3, noise=0.0)
    assert np.all(np.linalg.norm(X, axis=1) <= 1.0 + 1e-6)


def _train(X, y, hidden=32, epochs=150, seed=0):
    Xtr, Xte, ytr, yte = ds.train_test_split(X, y, test_size=0.25, seed=seed, stratify=y)
    k = int(y.max()) + 1
    model = mc.Sequential(mc.Linear(X.shape[1], hidden, seed=seed), mc.Tanh(), mc.Linear(hidden, hidden, seed=seed + 1),
                          mc.Tanh(), mc.Linear(hidden, k, seed=seed + 2))
    opt = mc.Adam(model.parameters(), lr=0.01)
    net, lk = model.compiled(), mc.CrossEntropyLoss().kind
    for e in range(epochs):
        net.train_epoch(opt._core, lk, Xtr, ytr, 32, True, seed, e, True)
    _, correct = net.evaluate(lk, Xte, yte)
    return correct / len(yte)


@pytest.mark.parametrize("make", [ds.make_moons, ds.make_circles])
def test_moons_and_circles_are_learnable(make):
    X, y = make(600, noise=0.1, seed=0)
    assert _train(X, y) >= 0.95


def test_regression_data():
    X, y, w = ds.make_linear_regression(100, n_features=3, noise=0.0, bias=2.0, seed=1, return_coef=True)
    assert X.shape == (100, 3) and y.shape == (100, 1) and X.dtype == y.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], X @ w + 2.0, rtol=1e-5, atol=1e-5)
    X, y = ds.make_linear_regression(50, coef=[1.5], noise=0.1, seed=0)
    assert X.shape == (50, 1)
    with pytest.raises(ValueError, match="coef"):
        ds.make_linear_regression(10, n_features=2, coef=[1.0])


def test_logistic_is_nearly_separable():
    X, y = ds.make_logistic(2000, n_features=3, scale=8.0, seed=2)
    assert X.shape == (2000, 3) and y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert 0.35 < y.mean() < 0.65
    # the best linear rule (least squares direction) already gets most of it right
    w, *_ = np.linalg.lstsq(np.c_[X, np.ones(len(X))], 2.0 * y - 1, rcond=None)
    assert np.mean((np.c_[X, np.ones(len(X))] @ w > 0) == y) > 0.9


def test_make_function():
    X, y = ds.make_function("sin", 64, noise=0.0, seed=0)
    assert X.shape == y.shape == (64, 1) and X.dtype == np.float32
    assert np.all(np.diff(X[:, 0]) >= 0) and np.all(np.abs(X) <= np.pi + 1e-6)
    np.testing.assert_allclose(y, np.sin(X), atol=1e-6)
    X, y = ds.make_function(lambda x: x ** 3, 11, interval=(-1, 1), grid=True)
    np.testing.assert_allclose(X[:, 0], np.linspace(-1, 1, 11), atol=1e-7)
    np.testing.assert_allclose(y[:, 0], np.linspace(-1, 1, 11) ** 3, atol=1e-6)
    _, yn = ds.make_function("cos", 500, noise=0.1, seed=0)
    Xn, _ = ds.make_function("cos", 500, noise=0.1, seed=0)
    assert 0.05 < np.std(yn - np.cos(Xn)) < 0.15
    with pytest.raises(ValueError, match="fn"):
        ds.make_function("nope")
    with pytest.raises(ValueError, match="interval"):
        ds.make_function("sin", interval=(1, 0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        ds.make_moons(1)
    with pytest.raises(ValueError, match="noise"):
        ds.make_circles(noise=-1)
    with pytest.raises(ValueError, match="factor"):
        ds.make_circles(factor=1.5)
    with pytest.raises(ValueError, match="n_arms"):
        ds.make_spirals(n_arms=1)
    with pytest.raises(ValueError, match="vertices"):
        ds.make_triangle(vertices=[(0, 0), (1, 1)])


def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = ds.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0 and set(np.unique(y)) == set(range(10))
    Xs, _ = ds.load_digits(scale="standard")
    np.testing.assert_allclose(Xs.mean(axis=0), 0, atol=1e-5)


def test_load_digits_without_sklearn(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *a, **k):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"pip install mlpcore\[sklearn\]"):
        ds.load_digits()


def test_train_test_split():
    X = np.arange(200, dtype=np.float32).reshape(100, 2)
    y = np.repeat([0, 1, 2, 3], [10, 20, 30, 40])
    Xtr, Xte, ytr, yte = ds.train_test_split(X, y, test_size=0.2, seed=0)
    assert Xtr.shape == (80, 2) and Xte.shape == (20, 2) and len(ytr) == 80 and len(yte) == 20
    assert sorted(np.concatenate([Xtr[:, 0], Xte[:, 0]])) == list(X[:, 0])  # a partition
    np.testing.assert_array_equal(y[(Xte[:, 0] // 2).astype(int)], yte)  # rows stay paired
    again = ds.train_test_split(X, y, test_size=0.2, seed=0)
    np.testing.assert_array_equal(again[1], Xte)
    *_, yte_s = ds.train_test_split(X, y, test_size=0.2, seed=1, stratify=y)
    np.testing.assert_array_equal(np.bincount(yte_s), [2, 4, 6, 8])
    _, Xte_n, _, _ = ds.train_test_split(X, y, test_size=7, shuffle=False)
    np.testing.assert_array_equal(Xte_n, X[-7:])
    with pytest.raises(ValueError, match="test_size"):
        ds.train_test_split(X, y, test_size=1.5)
    with pytest.raises(ValueError, match="rows"):
        ds.train_test_split(X, y[:5])


def test_standard_scaler():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((50, 3)) * [1, 10, 0] + [5, -3, 7]).astype(np.float32)
    sc = ds.StandardScaler().fit(X)
    Z = sc.transform(X)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=0), [1, 1, 0], atol=1e-5)  # the constant column maps to 0
    np.testing.assert_allclose(sc.inverse_transform(Z), X, rtol=1e-5, atol=1e-5)
    sc2 = ds.StandardScaler.from_state_dict(sc.state_dict())
    np.testing.assert_array_equal(sc2.transform(X), Z)
    _, Xte = ds.standardize(X[:40], X[40:])
    np.testing.assert_allclose(Xte, ds.StandardScaler().fit(X[:40]).transform(X[40:]))
    with pytest.raises(RuntimeError):
        ds.StandardScaler().transform(X)
    with pytest.raises(ValueError, match="features"):
        sc.transform(X[:, :2])


def test_load_csv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b,label\n1,2,0\n3,4.5,1\n5,6,1\n")
    X, y = ds.load_csv(p, target="label")
    np.testing.assert_array_equal(X, np.array([[1, 2], [3, 4.5], [5, 6]], np.float32))
    assert y.dtype == np.int64 and list(y) == [0, 1, 1]
    X0, y0 = ds.load_csv(p, target=0)
    assert X0.shape == (3, 2) and y0.dtype == np.int64 and list(y0) == [1, 3, 5]
    Xn, yn = ds.load_csv(p, target=None)
    assert Xn.shape == (3, 3) and yn is None
    q = tmp_path / "r.csv"
    q.write_text("0.5,1.25\n1.5,-2.5\n")  # no header, float target: regression
    X, y = ds.load_csv(q)
    assert y.dtype == np.float32 and y.shape == (2, 1) and y[1, 0] == -2.5
    s = tmp_path / "s.csv"
    s.write_text("x,species\n1,setosa\n2,virginica\n3,setosa\n")
    X, y, classes = ds.load_csv(s, target="species", return_classes=True)
    assert list(y) == [0, 1, 0] and classes == ["setosa", "virginica"]
    t = tmp_path / "t.csv"
    t.write_text("1.5,cat\n2.5,dog\n")  # text labels in the first row: not a header
    X, y, classes = ds.load_csv(t, return_classes=True)
    assert X.shape == (2, 1) and list(y) == [0, 1] and classes == ["cat", "dog"]
    with pytest.raises(ValueError, match="no column named"):
        ds.load_csv(p, target="nope")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5\n")
    with pytest.raises(ValueError, match="row 2"):
        ds.load_csv(bad)
    with pytest.raises(FileNotFoundError):
        ds.load_csv(tmp_path / "missing.csv")


def test_load_npz(tmp_path):
    p = tmp_path / "d.npz"
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(p, X=X, y=np.array([0, 1, 1, 0]))
    Xl, yl = ds.load_npz(p)
    assert Xl.dtype == np.float32 and Xl.shape == (4, 3) and list(yl) == [0, 1, 1, 0]
    q = tmp_path / "one.npz"
    np.savez(q, data=X)
    Xc, yc = ds.load_npz(q, target=-1)
    assert Xc.shape == (4, 2) and list(yc) == [2, 5, 8, 11]
    with pytest.raises(ValueError, match="target"):
        ds.load_npz(p, target="labels")
