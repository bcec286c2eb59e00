"""ONNX export: every built-in layer, run through onnxruntime at several batch sizes, against
mlpcore's own eval-mode output (float32 within 1e-5, float64 within 1e-11, relative to the
output's scale as helpers.rel_err measures it); the checker's full check; opsets; errors.

float64: every op agrees to a few 1e-16 except onnxruntime's LayerNormalization kernel (opset 17
on), about 3e-13 on its own, which the layers after it (a batch-statistics BatchNorm) amplify."""

import math
import sys

import helpers
import numpy as np
import pytest

import mlpcore as mc
from mlpcore.io import onnx as mc_onnx
from mlpcore.nn import registry

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-11}
BATCHES = (1, 7, 64)
F32, F64 = np.float32, np.float64


def _tied(dt, transpose):
    """An encoder and its tied decoder (transposed: 6 -> 4 -> 6; else a square weight used twice)."""
    enc = mc.Linear(6, 4 if transpose else 6, seed=3, dtype=dt)
    return mc.Sequential(enc, mc.Tanh(), mc.TiedLinear(enc, transpose=transpose))


def _trained_bn(dt, **kw):
    """Linear + BatchNorm1d whose running statistics moved (train-mode forwards) and whose affine
    parameters are not the identity."""
    model = mc.Sequential(mc.Linear(5, 6, seed=0, dtype=dt), mc.BatchNorm1d(6, dtype=dt, **kw))
    bn = model[1]
    if bn.affine:
        bn.weight.data = np.linspace(0.5, 2.0, 6)
        bn.bias.data = np.linspace(-1.0, 1.0, 6)
    for k in range(3):
        model(_x(16, 5, dt, seed=100 + k))
    return model


def _ln(dt, **kw):
    model = mc.Sequential(mc.Linear(5, 6, seed=0, dtype=dt), mc.LayerNorm(6, dtype=dt, **kw))
    ln = model[1]
    if ln.weight is not None:
        ln.weight.data = np.linspace(0.5, 2.0, 6)
    if ln.bias is not None:
        ln.bias.data = np.linspace(-1.0, 1.0, 6)
    return model


def _act(cls, *args):
    return lambda dt: mc.Sequential(mc.Linear(5, 6, seed=0, dtype=dt), cls(*args))


# One model per built-in layer (a Linear in front gives the activations a dtype and a width).
CASES = {
    "Linear": lambda dt: mc.Linear(5, 3, seed=0, dtype=dt),
    "Linear-nobias": lambda dt: mc.Linear(5, 3, bias=False, seed=0, dtype=dt),
    "TiedLinear": lambda dt: _tied(dt, True),
    "TiedLinear-untransposed": lambda dt: _tied(dt, False),
    "ReLU": _act(mc.ReLU),
    "LeakyReLU": _act(mc.LeakyReLU, 0.2),
    "Sigmoid": _act(mc.Sigmoid),
    "Tanh": _act(mc.Tanh),
    "ELU": _act(mc.ELU, 0.7),
    "GELU": _act(mc.GELU),
    "SiLU": _act(mc.SiLU),
    "Softmax": _act(mc.Softmax),
    "Identity": _act(mc.Identity),
    "Dropout": lambda dt: mc.Sequential(mc.Linear(5, 6, seed=0, dtype=dt), mc.Dropout(0.5, seed=0)).train(),
    "Maxout": lambda dt: mc.Maxout(5, 4, pieces=3, seed=1, dtype=dt),
    "LayerNorm": lambda dt: _ln(dt),
    "LayerNorm-noaffine": lambda dt: _ln(dt, elementwise_affine=False),
    "LayerNorm-nobias": lambda dt: _ln(dt, bias=False),
    "BatchNorm1d": lambda dt: _trained_bn(dt),
    "BatchNorm1d-noaffine": lambda dt: _trained_bn(dt, affine=False, momentum=None),
    "BatchNorm1d-nostats": lambda dt: _trained_bn(dt, track_running_stats=False),
    "Residual": lambda dt: mc.Residual(mc.Sequential(mc.Linear(5, 5, seed=2, dtype=dt), mc.GELU())),
    "Sequential-nested": lambda dt: mc.Sequential(
        mc.Linear(5, 8, seed=0, dtype=dt), mc.ELU(),
        mc.Residual(mc.Sequential(mc.Linear(8, 8, seed=1, dtype=dt), mc.SiLU(),
                                  mc.Sequential(mc.LeakyReLU(0.1)))),
        mc.Sequential(mc.Maxout(8, 6, pieces=2, seed=2, dtype=dt), mc.Dropout(0.2, seed=1)),
        mc.Linear(6, 3, seed=3, dtype=dt), mc.Softmax()),
}


def _x(batch, width, dt, seed=0):
    return (3.0 * np.random.default_rng(seed).standard_normal((batch, width))).astype(dt)


def _in_width(model):
    return model._features(None)[0]


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _agree(model, proto, dt, where, batches=BATCHES):
    """Run the graph at every batch size; compare with model(x) in eval mode; record the error."""
    sess = _session(proto)
    was = model.training
    model.eval()
    worst = 0.0
    try:
        for b in batches:
            x = _x(b, _in_width(model), dt, seed=b)
            (got,) = sess.run(None, {"input": x})
            want = model(x)
            assert got.dtype == want.dtype == dt and got.shape == want.shape
            err = helpers.rel_err(got, want)
            helpers._record(helpers.MAX_ONNX_ERR, np.dtype(dt).name, err, f"{where} batch {b}")
            assert err <= TOL[np.dtype(dt)], f"{where} batch {b}: relative error {err:.3e}"
            worst = max(worst, err)
    finally:
        model.train(was)
    return worst


@pytest.mark.parametrize("dt", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_layer_agrees_with_onnxruntime(case, dt, tmp_path):
    model = CASES[case](dt)
    path = tmp_path / "m.onnx"
    mc.export_onnx(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == mc_onnx.DEFAULT_OPSET
    # dynamic batch, fixed width, the model's dtype
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dt))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", _in_width(model)]
    assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == elem
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    if dt == F64:  # nothing onnxruntime lacks a float64 kernel for
        assert not {n.op_type for n in proto.graph.node} & mc_onnx.NO_FLOAT64_KERNEL
    # batch statistics need two rows or more (a one-row batch raises, as in PyTorch)
    _agree(model, proto, dt, case, batches=BATCHES[1:] if case.endswith("nostats") else BATCHES)


def test_the_cases_cover_every_registered_layer():
    covered = {c.split("-")[0] for c in CASES}
    assert set(registry.names()) <= covered, f"no ONNX test case for {set(registry.names()) - covered}"


def test_initializers_are_the_pytorch_names_and_tied_weights_are_stored_once():
    model = mc.Sequential(mc.Linear(5, 6, seed=0), mc.ReLU(), mc.Residual(mc.Linear(6, 6, seed=1)),
                          _tied(F32, True))
    proto = mc.io.to_onnx(model)
    names = [i.name for i in proto.graph.initializer if not i.name.startswith("const/")]
    assert names == ["0.weight", "0.bias", "2.block.weight", "2.block.bias", "3.0.weight", "3.0.bias",
                     "3.2.bias"]
    sd = model.state_dict()
    for init in proto.graph.initializer:
        if init.name in sd:
            np.testing.assert_array_equal(onnx.numpy_helper.to_array(init), sd[init.name])
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm"]
    assert [n.name for n in gemms] == ["0/Gemm", "2/block/Gemm", "3/0/Gemm", "3/2/Gemm"]
    assert gemms[-1].input[1] == "3.0.weight"  # the decoder reads the encoder's weight


@pytest.mark.parametrize("dt", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("opset", [13, 17, 18, 20, 21])
def test_opsets(opset, dt):
    """Every layer at each opset; GELU is the Gelu op from opset 20 (float32), Erf before; float64
    composes erf whatever the opset. ReduceMax / ReduceMean take their axes as an input from 18;
    LayerNormalization is opset 17's."""
    model = mc.Sequential(CASES["Sequential-nested"](dt), mc.Linear(3, 4, seed=9, dtype=dt), mc.GELU(),
                          mc.LayerNorm(4, dtype=dt), mc.Maxout(4, 6, seed=5, dtype=dt),
                          mc.BatchNorm1d(6, dtype=dt),
                          mc.BatchNorm1d(6, track_running_stats=False, dtype=dt))
    model[-2].bias.data = np.linspace(-1.0, 1.0, 6)
    for k in range(3):  # running statistics away from (0, 1)
        model(_x(16, 5, dt, seed=200 + k))
    proto = mc.io.to_onnx(model, opset=opset)
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    ops = [n.op_type for n in proto.graph.node]
    assert ("Gelu" in ops) == (opset >= 20 and dt == F32)
    assert ("Erf" in ops) == (opset < 20 and dt == F32)
    reduce = [n for n in proto.graph.node if n.op_type in ("ReduceMax", "ReduceMean")]
    assert all((len(n.input) == 2) == (opset >= 18) for n in reduce)
    assert [n.op_type for n in reduce].count("ReduceMax") == 2
    assert ("LayerNormalization" in ops) == (opset >= 17) and ops.count("BatchNormalization") == 1
    _agree(model, proto, dt, f"opset {opset}", batches=BATCHES[1:])


def test_float64_gelu_matches_the_erf_kernel_over_its_whole_range():
    """The float64 erf composition (a Chebyshev fit of erfc) against mlpcore's GELU (std::erf) and
    math.erf, on a dense grid through 0, the fit's interval [-6, 6] (in x / sqrt 2) and beyond."""
    x = np.concatenate([np.linspace(-12, 12, 20001), [-1e-300, 0.0, 1e-300, 1e-8, -1e-8, 40.0, -40.0]])
    x = x.reshape(-1, 1)
    # a model without parameters exports in float32: a float64 identity Linear in front
    gelu = mc.Sequential(mc.Linear(1, 1, bias=False, dtype=F64), mc.GELU())
    gelu[0].weight.data = np.ones((1, 1))
    proto = mc.io.to_onnx(gelu)
    (got,) = _session(proto).run(None, {"input": x})
    want = gelu.eval()(x)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x[:, 0]]).reshape(-1, 1)
    assert np.max(np.abs(got - exact) / np.maximum(np.abs(x), 1e-300)) < 1e-15  # |d erf| < 2e-15
    assert np.max(np.abs(got - want) / np.maximum(np.abs(x), 1e-300)) < 1e-15
    assert got[x[:, 0] == 0.0][0] == 0.0 and np.all(np.isfinite(got))


def test_float64_elu_and_leaky_relu_keep_their_formula_at_the_kink_and_far_out():
    x = np.array([[-800.0, -30.0, -1e-10, 0.0, 1e-10, 3.0, 800.0]]).T
    for act in (mc.ELU(0.7), mc.LeakyReLU(0.2), mc.ELU(0.0)):
        model = mc.Sequential(mc.Linear(1, 1, bias=False, dtype=F64), act)
        model[0].weight.data = np.ones((1, 1))
        (got,) = _session(mc.io.to_onnx(model)).run(None, {"input": x})
        np.testing.assert_allclose(got, model.eval()(x), rtol=4e-16, atol=0)


def test_export_leaves_the_model_as_it_was(tmp_path):
    model = CASES["Dropout"](F32)
    before = model[1]._state.counter
    mc.export_onnx(model, tmp_path / "d.onnx")
    assert model.training and model[1].training and model[1]._state.counter == before
    ops = [n.op_type for n in onnx.load(str(tmp_path / "d.onnx")).graph.node]
    assert ops == ["Gemm"]  # Dropout is the eval-mode identity: no node, nothing random


def test_identity_models_get_a_node_and_unknown_widths_stay_symbolic():
    for model in (mc.Identity(), mc.Sequential(mc.Dropout(0.1), mc.Identity()), mc.Sequential(mc.ReLU())):
        proto = mc.io.to_onnx(model)
        dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch", "in_features"] and proto.graph.output[0].name == "output"
        x = _x(3, 4, F32)
        (got,) = _session(proto).run(None, {"input": x})
        np.testing.assert_array_equal(got, model.eval()(x))


def test_a_custom_module_is_named_with_its_path():
    class Scale(mc.Module):
        def forward(self, x):
            return 2 * x

    model = mc.Sequential(mc.Linear(3, 4), mc.Residual(mc.Sequential(mc.Linear(4, 4), Scale())))
    with pytest.raises(TypeError, match=r"Scale at '1\.block\.1' is a custom Python module.*Linear"):
        mc.io.to_onnx(model)
    with pytest.raises(TypeError, match="Scale at 'the root'"):
        mc.io.to_onnx(Scale())

    class Wider(mc.Linear):  # another forward: not the built-in computation any more
        def forward(self, x):
            return super().forward(x) + 1

    with pytest.raises(TypeError, match="Wider at '0'"):
        mc.io.to_onnx(mc.Sequential(Wider(3, 2)))

    class Net(mc.Sequential):  # keeps Sequential's forward: exports as one
        def __init__(self):
            super().__init__(mc.Linear(3, 4, seed=0), mc.Tanh())

    _agree(Net(), mc.io.to_onnx(Net()), F32, "Sequential subclass", batches=(2,))


def test_a_layer_without_an_export_is_named(monkeypatch):
    e = registry.exact(mc.Tanh)
    monkeypatch.setitem(registry._EXACT, mc.Tanh, registry.Layer(**{**e.__dict__, "onnx": None}))
    monkeypatch.setattr(registry, "_RESOLVED", {})
    with pytest.raises(TypeError, match="Tanh at '1' has no ONNX export yet"):
        mc.io.to_onnx(mc.Sequential(mc.Linear(2, 2), mc.Tanh()))


def test_bad_arguments():
    model = mc.Linear(2, 2)
    newest = onnx.defs.onnx_opset_version()
    for bad in (12, newest + 1, 18.0, "18", True):
        with pytest.raises(ValueError, match=f"opset: expected an int from 13 to {newest}"):
            mc.io.to_onnx(model, opset=bad)
    with pytest.raises(TypeError, match="model: expected a mlpcore Module"):
        mc.io.to_onnx(object())


def test_missing_onnx_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "mlpcore\[onnx\]"'):
        mc.export_onnx(mc.Linear(2, 2), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
