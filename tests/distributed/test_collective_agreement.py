"""What the ranks of a data-parallel job agree on outside the step itself (2-rank mpiexec jobs on
loopback, hard timeout): rank 0's weights before the first ``train_on_batch`` as before ``fit``; the
seed collective whatever each rank passed; a failure to share rank 0's state raised on every rank."""

from __future__ import annotations

from test_data_parallel import _job


def test_train_on_batch_starts_from_rank_0s_weights(tmp_path):
    """Models built without a seed differ per rank; the first distributed train_on_batch takes rank
    0's weights (as fit does), so the ranks step alike and end bitwise equal."""
    job = _job(tmp_path, """
        X, y = data(64, np.float64, "ce")
        model = mc.Sequential(mc.Linear(6, 8, dtype=np.float64), mc.Tanh(), mc.Linear(8, 3, dtype=np.float64))
        before = digest(weights(model))
        tr = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), distributed=True)
        for i in range(3):
            tr.train_on_batch(X[16 * i:16 * (i + 1)], y[16 * i:16 * (i + 1)])
        say("BEFORE", before)
        say("AFTER", digest(weights(model)))
    """)
    before, after = job.lines("BEFORE"), job.lines("AFTER")
    assert len(set(before)) == 2  # built differently on each rank
    assert len(after) == 2 and len(set(after)) == 1


def test_seed_none_on_one_rank_is_an_error_on_both_not_a_hang(tmp_path):
    job = _job(tmp_path, """
        X, y = data(64, np.float64, "ce")
        model = model_for(np.float64, 2)
        tr = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=16, distributed=True)
        try:
            tr.fit(X, y, epochs=1, verbose=0, seed=None if R == 0 else 5)
        except ValueError as e:
            say("MISMATCH", "seed" in str(e))
    """, timeout=120)
    assert job.lines("MISMATCH") == ["True"] * 2


def test_rank_0_failing_to_share_its_state_fails_every_rank(tmp_path):
    job = _job(tmp_path, """
        import mlpcore.io as io
        X, y = data(64, np.float64, "ce")
        model = model_for(np.float64, 2)
        tr = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=16, distributed=True)
        if R == 0:
            def broken(*a, **k):
                raise OSError("disk full")
            io.save_bytes = broken
        try:
            tr.fit(X, y, epochs=1, verbose=0, seed=0)
        except RuntimeError as e:
            say("FAILED", "rank 0" in str(e) and "disk full" in str(e))
    """, timeout=120)
    assert job.lines("FAILED") == ["True"] * 2


def test_fit_checks_that_every_rank_ends_with_the_same_weights(tmp_path):
    """A callback that edits the weights on one rank only makes the ranks part; fit says so on
    every rank instead of returning models that silently differ."""
    job = _job(tmp_path, """
        X, y = data(64, np.float64, "ce")
        model = model_for(np.float64, 2)
        class EditOnRank1(mc.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if R == 1 and epoch == 0:
                    w = model[0].weight.data
                    w[0, 0] += 1.0
        tr = mc.Trainer(model, optimizer=mc.SGD(model.parameters(), lr=0.1), batch_size=16, distributed=True)
        tr.fit(X, y, epochs=2, verbose=0, seed=0)
        say("SAME", "ok")
        try:
            tr.fit(X, y, epochs=2, verbose=0, seed=0, callbacks=[EditOnRank1()])
        except RuntimeError as e:
            say("PARTED", "rank(s) [1]" in str(e))
    """, timeout=120)
    assert job.lines("SAME") == ["ok"] * 2
    assert job.lines("PARTED") == ["True"] * 2


def test_different_models_or_optimizers_per_rank_are_an_error_on_every_rank(tmp_path):
    """Rank 0's state cannot load into another architecture or optimizer: every rank says what
    differs (before any collective of the step), on fit and on train_on_batch alike."""
    job = _job(tmp_path, """
        X, y = data(64, np.float64, "ce")
        for case in ("hidden", "optimizer"):
            hidden = 8 if (case == "hidden" and R == 1) else 16
            model = mc.Sequential(mc.Linear(6, hidden, seed=0, dtype=np.float64), mc.Tanh(),
                                  mc.Linear(hidden, 3, seed=1, dtype=np.float64))
            opt = (mc.Adam if case == "optimizer" and R == 1 else mc.SGD)(model.parameters(), lr=0.1)
            for call in ("fit", "train_on_batch"):
                tr = mc.Trainer(model, optimizer=opt, batch_size=16, distributed=True)
                try:
                    if call == "fit":
                        tr.fit(X, y, epochs=1, verbose=0, seed=0)
                    else:
                        tr.train_on_batch(X[:16], y[:16])
                except ValueError as e:
                    say("DIFFER", case, call, ("parameters" if case == "hidden" else "optimizer") in str(e))
    """, timeout=120)
    assert sorted(job.lines("DIFFER")) == sorted(
        [f"{c} {call} True" for c in ("hidden", "optimizer") for call in ("fit", "train_on_batch")] * 2)
