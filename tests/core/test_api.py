"""Small public-API behaviours: thread control, repr of a model, parameter naming."""

import numpy as np
import pytest

import mlpcore as mc


def test_num_threads_round_trip():
    # conftest's autouse fixture restores the original count afterwards
    for n in (1, 2, 1):
        mc.set_num_threads(n)
        assert mc.get_num_threads() == n
    assert isinstance(mc.get_num_threads(), int)


@pytest.mark.parametrize("n", [0, -1])
def test_num_threads_below_one_is_refused_and_changes_nothing(n):
    mc.set_num_threads(1)
    with pytest.raises(ValueError, match=r"n: expected a thread count >= 1"):
        mc.set_num_threads(n)
    assert mc.get_num_threads() == 1


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(0)
    model = mc.Sequential(mc.Linear(64, 128, dtype=np.float64, seed=0), mc.ReLU(),
                          mc.Linear(128, 10, dtype=np.float64, seed=1))
    x = rng.standard_normal((256, 64))
    mc.set_num_threads(1)
    y1 = model(x)
    mc.set_num_threads(2)
    y2 = model(x)
    np.testing.assert_allclose(y1, y2, rtol=1e-13, atol=1e-13)


def test_repr_shows_the_architecture():
    model = mc.Sequential(mc.Linear(784, 256), mc.LeakyReLU(0.2), mc.Linear(256, 64, bias=False), mc.ELU(0.5),
                          mc.GELU(), mc.Linear(64, 10))
    assert repr(model) == "\n".join([
        "Sequential(",
        "  (0): Linear(in_features=784, out_features=256, bias=True)",
        "  (1): LeakyReLU(negative_slope=0.2)",
        "  (2): Linear(in_features=256, out_features=64, bias=False)",
        "  (3): ELU(alpha=0.5)",
        "  (4): GELU()",
        "  (5): Linear(in_features=64, out_features=10, bias=True)",
        ")",
    ])


def test_repr_of_nested_sequential_is_indented():
    inner = mc.Sequential(mc.Linear(4, 4), mc.Tanh())
    text = repr(mc.Sequential(mc.Linear(3, 4), inner))
    assert text.splitlines() == [
        "Sequential(",
        "  (0): Linear(in_features=3, out_features=4, bias=True)",
        "  (1): Sequential(",
        "    (0): Linear(in_features=4, out_features=4, bias=True)",
        "    (1): Tanh()",
        "  )",
        ")",
    ]


@pytest.mark.parametrize("module,text", [
    (mc.ReLU(), "ReLU()"), (mc.Identity(), "Identity()"), (mc.Sigmoid(), "Sigmoid()"), (mc.Tanh(), "Tanh()"),
    (mc.SiLU(), "SiLU()"), (mc.Softmax(), "Softmax()"), (mc.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (mc.ELU(), "ELU(alpha=1.0)"), (mc.MSELoss(), "MSELoss()"), (mc.CrossEntropyLoss(), "CrossEntropyLoss()"),
    (mc.BCEWithLogitsLoss(), "BCEWithLogitsLoss()"),
])
def test_repr_of_leaf_modules_and_losses(module, text):
    assert repr(module) == text


def test_named_parameters_use_pytorch_names_and_shapes():
    model = mc.Sequential(mc.Linear(5, 4), mc.ReLU(), mc.Linear(4, 3, bias=False))
    assert [(n, p.shape) for n, p in model.named_parameters()] == [
        ("0.weight", (4, 5)), ("0.bias", (4,)), ("2.weight", (3, 4))]
    assert len(model.parameters()) == 3
