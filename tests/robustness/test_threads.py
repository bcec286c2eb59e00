"""Calling one model from several Python threads.

The C++ calls release the GIL; a compiled Network serialises its calls with a mutex (they share
one workspace), so concurrent ``predict`` / ``evaluate`` / ``train_epoch`` on one network are
safe and each gives what it would give alone. The module-by-module forward only reads the
weights, so concurrent forwards are safe too. Training while predicting is safe (no crash,
consistent shapes, and training is not perturbed): a prediction taken meanwhile sees the weights
of some step boundary when it goes through the compiled network (the mutex), and possibly a mix
of steps through the module path (it reads the weights while an update writes them).
"""

import threading

import mlpcore as mc
import numpy as np
import pytest

N_THREADS, REPEATS = 4, 6


def build(seed=0):
    return mc.Sequential(
        mc.Linear(32, 128, seed=seed),
        mc.Tanh(),
        mc.Linear(128, 128, seed=seed + 1),
        mc.ReLU(),
        mc.Linear(128, 5, seed=seed + 2),
    )


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 32)).astype(np.float32), rng.integers(0, 5, n)


def run_threads(fns):
    """Run each fn in its own thread, started together; re-raise the first error."""
    errors, barrier = [], threading.Barrier(len(fns))

    def wrap(fn):
        def go():
            try:
                barrier.wait()
                fn()
            except BaseException as e:  # noqa: BLE001 - reported in the main thread
                errors.append(e)

        return go

    threads = [threading.Thread(target=wrap(fn)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("threads", [1, 2])
def test_concurrent_predict_equals_serial(threads):
    mc.set_num_threads(threads)
    model = build()
    net = model.compiled()
    inputs = [data(300, seed=s)[0] for s in range(N_THREADS)]
    want_net = [net.predict(x, 64) for x in inputs]
    want_mod = [model(x) for x in inputs]
    got_net = [[None] * REPEATS for _ in inputs]
    got_mod = [[None] * REPEATS for _ in inputs]

    def work(i):
        def fn():
            for r in range(REPEATS):
                got_net[i][r] = net.predict(inputs[i], 64)
                got_mod[i][r] = model(inputs[i])

        return fn

    run_threads([work(i) for i in range(N_THREADS)])
    for i in range(N_THREADS):
        for r in range(REPEATS):
            # 1 BLAS thread: bitwise. 2: OpenBLAS may split a GEMM differently when its threads
            # are busy with another caller's GEMM, so allow float32 rounding.
            if threads == 1:
                np.testing.assert_array_equal(got_net[i][r], want_net[i])
                np.testing.assert_array_equal(got_mod[i][r], want_mod[i])
            else:
                np.testing.assert_allclose(got_net[i][r], want_net[i], rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(got_mod[i][r], want_mod[i], rtol=1e-5, atol=1e-6)


def test_concurrent_evaluate_and_predict_on_one_network():
    mc.set_num_threads(1)
    model = build()
    net = model.compiled()
    X, y = data()
    want_eval = net.evaluate(mc.CrossEntropyLoss.kind, X, y, 50)
    want_pred = net.predict(X, 1000)
    out = []

    def evaluate():
        for _ in range(REPEATS):
            out.append(("eval", net.evaluate(mc.CrossEntropyLoss.kind, X, y, 50)))

    def predict():
        for _ in range(REPEATS):
            out.append(("pred", net.predict(X, 1000)))

    run_threads([evaluate, predict, evaluate, predict])
    for kind, value in out:
        if kind == "eval":
            assert value == want_eval
        else:
            np.testing.assert_array_equal(value, want_pred)


def test_training_while_predicting_is_safe_and_does_not_perturb_training():
    """One thread trains (compiled epochs), others predict through the network and module by
    module at the same time. No crash, every prediction has the right shape and is finite, and
    the trained weights are bitwise those of the same training run alone."""
    mc.set_num_threads(1)
    X, y = data(512)
    model = build()
    opt = mc.SGD(model.parameters(), lr=0.05, momentum=0.9)
    net = model.compiled()
    done = threading.Event()
    seen = {"net": 0, "module": 0}

    def train():
        try:
            for e in range(8):
                net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, y, 32, True, e, e)
        finally:
            done.set()

    def predict_net():
        while not done.is_set():
            p = net.predict(X[:100], 37)
            assert p.shape == (100, 5) and np.all(np.isfinite(p))
            seen["net"] += 1

    def predict_module():
        while not done.is_set():
            p = model(X[:100])
            assert p.shape == (100, 5) and np.all(np.isfinite(p))
            seen["module"] += 1

    run_threads([train, predict_net, predict_module])
    assert seen["net"] > 0 and seen["module"] > 0

    twin = build()
    topt = mc.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    tnet = twin.compiled()
    for e in range(8):
        tnet.train_epoch(topt._core, mc.CrossEntropyLoss.kind, X, y, 32, True, e, e)
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert net.training  # predict switched dropout-style behaviour off only for its own calls


def test_two_trainers_on_one_network_serialise():
    """Two threads training one network at once: the mutex makes each epoch atomic, so the
    result equals running the same epochs one after the other, in some order."""
    mc.set_num_threads(1)
    X, y = data(256)
    model = build()
    opt = mc.SGD(model.parameters(), lr=0.01)
    net = model.compiled()

    def epoch():
        net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, y, 64, False, 0, 0)

    run_threads([epoch, epoch])
    twin = build()
    topt = mc.SGD(twin.parameters(), lr=0.01)
    tnet = twin.compiled()
    for _ in range(2):
        tnet.train_epoch(topt._core, mc.CrossEntropyLoss.kind, X, y, 64, False, 0, 0)
    for p, q in zip(model.parameters(), twin.parameters()):  # identical epochs: order does not matter
        np.testing.assert_array_equal(p.data, q.data)
    assert opt.step_count == 8


@pytest.mark.parametrize("call", ["predict", "train_epoch", "linear_forward"])
def test_long_calls_release_the_gil(call):
    """While one thread is inside one long C++ call, another Python thread keeps running. If the
    call held the GIL, the other thread could only run just before or just after it (at the
    bytecode boundaries around the call), never in the middle half of its duration."""
    import time

    mc.set_num_threads(1)
    X, y = data(20000)
    model = build()
    wide = mc.Linear(32, 2048, seed=0)
    net = model.compiled()
    opt = mc.SGD(model.parameters(), lr=0.01)
    run = {
        "predict": lambda: net.predict(X, 4096),
        "train_epoch": lambda: net.train_epoch(opt._core, mc.CrossEntropyLoss.kind, X, y, 2048, False, 0, 0),
        "linear_forward": lambda: wide(X),
    }[call]
    windows, ticks, finished = [], [], threading.Event()

    def long_call():
        try:
            for _ in range(3):
                t0 = time.perf_counter()
                run()
                windows.append((t0, time.perf_counter()))
        finally:
            finished.set()

    def ticker():
        while not finished.is_set():
            ticks.append(time.perf_counter())

    run_threads([long_call, ticker])
    ticks_arr = np.array(ticks)
    mid = [np.sum((ticks_arr > a + 0.25 * (b - a)) & (ticks_arr < b - 0.25 * (b - a))) for a, b in windows]
    assert max(mid) > 0, f"no Python thread ran during the calls {windows}"
