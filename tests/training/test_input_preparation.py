"""The one input-preparation path (mlpcore.training.data) as the Trainer uses it: what users have
(int / bool arrays, pandas DataFrames, int targets) is cast; what cannot be used is refused with
the shape the user passed and a hint; data is validated once per fit."""

import numpy as np
import pytest

import mlpcore as mc
from mlpcore.training import data


pytestmark = pytest.mark.usefixtures("one_thread")


def mlp(sizes, seed=0, dtype=np.float32):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(mc.Linear(a, b, seed=seed + i, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(mc.Tanh())
    return mc.Sequential(*layers)


def weights(model):
    return [p.data.copy() for p in model.parameters()]


def fit_weights(X, y, sizes=(3, 8, 3), loss=None, compiled=None, **kw):
    m = mlp(list(sizes))
    tr = mc.Trainer(m, loss=loss, optimizer=mc.SGD(m.parameters(), lr=0.1), batch_size=8, compiled=compiled)
    tr.fit(X, y, epochs=2, verbose=0, **kw)
    return weights(m), tr


def int_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(-3, 4, (n, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y


def assert_same(a, b):
    for x, z in zip(a, b):
        np.testing.assert_array_equal(x, z)


# ------------------------------------------------------------------------------------------------
# accepted and cast
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compiled", [None, False])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_int_and_bool_features_train_as_their_float_cast(dtype, compiled):
    X, y = int_data()
    X = np.abs(X).astype(dtype)
    w_int, tr = fit_weights(X, y, compiled=compiled)
    w_float, tr_f = fit_weights(X.astype(np.float32), y, compiled=compiled)
    assert_same(w_int, w_float)
    np.testing.assert_array_equal(tr.predict(X), tr_f.predict(X.astype(np.float32)))
    assert tr.evaluate(X, y) == tr_f.evaluate(X.astype(np.float32), y)
    assert tr.train_on_batch(X, y) == tr_f.train_on_batch(X.astype(np.float32), y)
    assert_same(weights(tr.model), weights(tr_f.model))


def test_dataframe_with_numeric_and_bool_columns():
    pd = pytest.importorskip("pandas")
    X, y = int_data()
    df = pd.DataFrame({"a": X[:, 0], "b": X[:, 1].astype(np.float64), "colour": np.where(X[:, 2] > 0, "red", "blue")})
    dummies = pd.get_dummies(df, columns=["colour"])  # int and float columns plus bool indicator columns
    assert {str(t) for t in dummies.dtypes} >= {"int64", "float64", "bool"}
    as_float = dummies.to_numpy(dtype=np.float32)
    w_df, tr = fit_weights(dummies, pd.Series(y), sizes=(4, 8, 3))
    w_np, tr_np = fit_weights(as_float, y, sizes=(4, 8, 3))
    assert_same(w_df, w_np)
    np.testing.assert_array_equal(tr.predict(dummies), tr_np.predict(as_float))
    assert tr.evaluate(dummies, y) == tr_np.evaluate(as_float, y)
    # nullable pandas dtypes (Int64, boolean) too
    nullable = dummies.astype({"a": "Int64", "colour_red": "boolean"})
    np.testing.assert_array_equal(tr.predict(nullable), tr_np.predict(as_float))


def test_dataframe_column_that_cannot_be_cast_is_named():
    pd = pytest.importorskip("pandas")
    X, y = int_data()
    df = pd.DataFrame({"a": X[:, 0], "city": np.where(X[:, 1] > 0, "Oslo", "Lima"), "c": X[:, 2]})
    tr = mc.Trainer(mlp([3, 4, 3]))
    for call in (lambda: tr.fit(df, y, epochs=1, verbose=0), lambda: tr.predict(df),
                 lambda: tr.train_on_batch(df, y), lambda: tr.evaluate(df, y)):
        with pytest.raises(TypeError, match=r"X: column 'city' has dtype (object|str), which cannot be cast.*get_dummies"):
            call()
    cat = df.astype({"city": "category"})
    with pytest.raises(TypeError, match="column 'city' has dtype category"):
        tr.predict(cat)
    with_na = pd.DataFrame({"a": pd.array([1, None, 3] * 4, dtype="Int64"), "b": 1.0, "c": True})
    with pytest.raises(ValueError, match=r"X: column 'a' holds a missing value \(NA\) at row 1; fill or drop"):
        tr.predict(with_na)
    with pytest.raises(ValueError, match=r"X: column 'b' holds inf at row 'r2'"):
        tr.predict(pd.DataFrame({"a": 1, "b": [0.0, 1.0, np.inf], "c": 2.0}, index=["r0", "r1", "r2"]))
    mc.set_check_finite(False)  # conftest restores it
    assert np.isnan(tr.predict(with_na)[1]).all()


def test_object_arrays_of_numbers_are_cast_and_text_is_named():
    X, y = int_data()
    mixed = np.empty(X.shape, dtype=object)
    mixed[:, 0] = X[:, 0]
    mixed[:, 1] = X[:, 1] > 0  # Python bools
    mixed[:, 2] = X[:, 2].astype(float)
    ref = np.stack([X[:, 0], X[:, 1] > 0, X[:, 2]], 1).astype(np.float32)
    tr = mc.Trainer(mlp([3, 4, 3]))
    np.testing.assert_array_equal(tr.predict(mixed), tr.predict(ref))
    mixed[5, 2] = "7"
    with pytest.raises(TypeError, match=r"X: column 2 holds str values such as '7'"):
        tr.predict(mixed)


@pytest.mark.parametrize("compiled", [None, False])
@pytest.mark.parametrize("loss", [mc.MSELoss, mc.BCEWithLogitsLoss])
def test_int_and_bool_targets_for_mse_and_bce(loss, compiled):
    X, y = int_data()
    X = X.astype(np.float32)
    t = (y > 0)
    for target in (t.astype(np.int64), t, t.astype(np.int64)[:, None]):
        w_int, tr = fit_weights(X, target, sizes=(3, 4, 1), loss=loss(), compiled=compiled)
        w_float, tr_f = fit_weights(X, t.astype(np.float32), sizes=(3, 4, 1), loss=loss(), compiled=compiled)
        assert_same(w_int, w_float)
        assert tr.evaluate(X, target) == tr_f.evaluate(X, t.astype(np.float32))
        assert tr.train_on_batch(X, target) == tr_f.train_on_batch(X, t.astype(np.float32))


def test_sparse_features_are_densified():
    sp = pytest.importorskip("scipy.sparse")
    X, y = int_data()
    Xf = np.where(np.abs(X) > 1, X, 0).astype(np.float32)
    w_sp, _ = fit_weights(sp.csr_matrix(Xf), y)
    w_np, _ = fit_weights(Xf, y)
    assert_same(w_sp, w_np)


# ------------------------------------------------------------------------------------------------
# refused, with the user's shape and a hint
# ------------------------------------------------------------------------------------------------

def test_errors_report_the_shape_the_user_passed():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)).astype(np.float32)
    tr = mc.Trainer(mlp([3, 4, 2]), loss=mc.MSELoss())
    for call in (lambda: tr.fit(X, rng.normal(size=30), epochs=1, verbose=0),
                 lambda: tr.train_on_batch(X, rng.normal(size=30)), lambda: tr.evaluate(X, rng.normal(size=30))):
        with pytest.raises(ValueError, match=r"y: expected targets of shape \(30, 2\).*got shape \(30,\)"):
            call()
    with pytest.raises(ValueError, match=r"y: expected 2 columns, got array of dtype float64 and shape \(30, ?3\)"):
        tr.fit(X, rng.normal(size=(30, 3)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"X: expected a 2-D array .* got shape \(30,\); for one feature pass "
                                         r"X.reshape\(-1, 1\)"):
        tr.fit(X[:, 0], rng.normal(size=(30, 2)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"y: expected 30 rows \(one per row of X\), got shape \(29, 2\)"):
        tr.train_on_batch(X, rng.normal(size=(29, 2)))


@pytest.mark.parametrize("compiled", [None, False])
def test_label_errors_suggest_the_fix(compiled):
    X, y = int_data()
    X = X.astype(np.float32)
    tr = mc.Trainer(mlp([3, 4, 3]), compiled=compiled)
    before = weights(tr.model)
    if compiled is None:  # the number of classes is known from the compiled network
        for call in (lambda: tr.fit(X, y + 1, epochs=1, verbose=0), lambda: tr.train_on_batch(X, y + 1),
                     lambda: tr.evaluate(X, y + 1)):
            with pytest.raises(ValueError, match=r"out of range.*look like 1\.\.3: subtract 1 .*MLPClassifier, "
                                                 r"which encodes"):
                call()
        with pytest.raises(ValueError, match=r"model has 3 outputs, one per class: give it 8 outputs"):
            tr.train_on_batch(X, y + 5)
        one = mc.Trainer(mlp([3, 4, 1]))
        with pytest.raises(ValueError, match="use 2 outputs, or BCEWithLogitsLoss"):
            one.train_on_batch(X, (y > 0).astype(np.int64))
    with pytest.raises(ValueError, match=r"class ids must be >= 0.*MLPClassifier" if compiled is False
                       else r"out of range.*MLPClassifier"):
        tr.fit(X, y - 1, epochs=1, verbose=0)
    if compiled is False:  # the class count is not known before the forward: only the int32 limit
        with pytest.raises(ValueError, match=r"label 2147483648 at index 0 is out of range for a class id"):
            tr.fit(X, np.where(np.arange(len(y)) == 0, 2**31, y), epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"integer class ids.*whole numbers: pass y.astype\(int\)"):
        tr.train_on_batch(X, y.astype(np.float32))
    with pytest.raises(TypeError, match=r"integer class ids.*look one-hot: pass y.argmax\(axis=1\)"):
        tr.fit(X, np.eye(3, dtype=np.float32)[y], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"a column of class ids: pass y.ravel\(\)"):
        tr.fit(X, y.reshape(-1, 1), epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"integer class ids.*np.unique\(y, return_inverse=True\).*MLPClassifier"):
        tr.fit(X, np.array(["a", "b", "c"])[y], epochs=1, verbose=0)
    assert_same(weights(tr.model), before)  # nothing trained on refused data


def test_train_on_batch_refuses_what_fit_refuses_and_keeps_the_weights():
    X, y = int_data()
    X = X.astype(np.float32)
    tr = mc.Trainer(mlp([3, 4, 3]))
    before = weights(tr.model)
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN"):
        tr.train_on_batch(Xn, y)
    with pytest.raises(ValueError, match=r"X: expected 3 columns"):
        tr.train_on_batch(X[:, :2], y)
    with pytest.raises(ValueError, match="X: empty"):
        tr.train_on_batch(X[:0], y[:0])
    with pytest.raises(ValueError, match="one-hot"):
        tr.train_on_batch(X, np.eye(3, dtype=np.int64)[y])
    assert_same(weights(tr.model), before)
    # Fortran-ordered, strided and float64 batches train as their float32 C-contiguous copies
    tr2 = mc.Trainer(mlp([3, 4, 3]))
    for Xb in (np.asfortranarray(X), X.astype(np.float64), np.repeat(X, 2, axis=1)[:, ::2]):
        a = tr.train_on_batch(Xb, y)
        b = tr2.train_on_batch(np.ascontiguousarray(Xb, dtype=np.float32), y.astype(np.int32))
        assert a == b
    assert_same(weights(tr.model), weights(tr2.model))


def test_fit_validates_each_input_once(monkeypatch):
    """The training and validation sets are prepared once per fit, not once per epoch."""
    X, y = int_data(60)
    X = X.astype(np.float32)
    calls = []
    real = data.prepare

    def counting(*a, **kw):
        calls.append(kw.get("xname", a[6] if len(a) > 6 else "X"))
        return real(*a, **kw)

    monkeypatch.setattr(data, "prepare", counting)
    for compiled in (None, False):
        calls.clear()
        tr = mc.Trainer(mlp([3, 4, 3]), batch_size=8, compiled=compiled)
        tr.fit(X[:40], y[:40], epochs=5, validation_data=(X[40:], y[40:]), verbose=0)
        assert calls == ["X", "X_val"]


def test_prepare_returns_the_core_layout():
    X, y = int_data(10)
    Xp, yp = data.prepare(np.asfortranarray(X), y, mc.CrossEntropyLoss.kind, np.float32, 3, 3)
    assert Xp.dtype == np.float32 and Xp.flags.c_contiguous and yp.dtype == np.int32 and yp.shape == (10,)
    Xp, yp = data.prepare(X.tolist(), y.tolist(), mc.MSELoss.kind, np.float64)
    assert Xp.dtype == np.float64 and yp.dtype == np.float64 and yp.shape == (10, 1)
    with pytest.raises(ValueError, match="X, y: both are required"):
        data.prepare(X, None, mc.MSELoss.kind, np.float32)


def test_train_on_batch_hands_float_arrays_to_the_core_unprepared(monkeypatch):
    """Float batches are checked once, by the binding; only other inputs take the Python path."""
    X, y = int_data(64)
    tr = mc.Trainer(mlp([3, 4, 3]))
    calls = []
    real = data.prepare
    monkeypatch.setattr(data, "prepare", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for Xb in (X.astype(np.float32), X.astype(np.float64), np.asfortranarray(X.astype(np.float32))):
        tr.train_on_batch(Xb, y)
    assert calls == []
    tr.train_on_batch(X, y)  # int features: converted in Python
    assert calls == [1]
