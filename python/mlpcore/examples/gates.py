"""Gates: backpropagation as a circuit of small modules, each knowing only its local gradient.

The classic "gates" lecture: every operation in a computational graph is a gate that computes its
output in the forward pass and, in the backward pass, turns the gradient arriving at its output
into gradients for its inputs with the chain rule, without knowing anything about the rest of
the graph:

- the **add gate** distributes: both inputs receive the output gradient unchanged;
- the **multiply gate** swaps: each input receives the output gradient times the *other* input;
- the **max gate** routes: the larger input receives the whole gradient, the other receives zero.

Here each gate is a ``mlpcore.Module`` subclass with a numpy ``forward`` / ``backward`` (the way
to write a custom layer), composed by hand into circuits, and checked with ``mc.gradcheck``:

- f(x, y, z) = (x + y) z at x = -2, y = 5, z = -4: f = -12, df/dx = df/dy = z = -4,
  df/dz = x + y = 3;
- g(x, y, z, w) = x y + max(z, w) at x = 3, y = -4, z = 2, w = -1: g = -10, dg/dx = y = -4,
  dg/dy = x = 3, dg/dz = 1 (z won the max), dg/dw = 0.

mlpcore's own layers are the same gates: ``Maxout`` is a Linear layer followed by max gates, and
``Residual(block)`` is an add gate joining x and block(x).

    python -m mlpcore.examples.gates [--out DIR] [--seed N]

Plot: ``gates.png``, both circuits with forward values (green) and gradients (red) on every wire.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

import mlpcore as mc

from ._common import figure, parse_args, plot_target, save


def _as_float(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (batch, features), got shape {x.shape}")
    return x


class _BinaryGate(mc.Module):
    """A gate with two inputs a, b (B, k), passed side by side as one array x = [a | b] (B, 2k)
    (Modules take one 2-D input); the output is (B, k), elementwise in (a, b). Subclasses give
    ``_forward(a, b)`` and ``_backward(a, b, g) -> (da, db)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x, "x")
        if x.shape[1] % 2:
            raise ValueError(f"x: expected an even number of columns (a | b), got {x.shape[1]}")
        k = x.shape[1] // 2
        self._a, self._b = x[:, :k].copy(), x[:, k:].copy()  # saved for backward
        return self._forward(self._a, self._b)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        a, b = self._saved("_a"), self._b
        g = _as_float(grad_output, "grad_output")
        if g.shape != a.shape:
            raise ValueError(f"grad_output: expected shape {a.shape}, got {g.shape}")
        da, db = self._backward(a, b, g)
        return np.concatenate([da, db], axis=1)  # (B, 2k), laid out like the input


class AddGate(_BinaryGate):
    """a + b. Backward distributes: da = db = g."""

    def _forward(self, a, b):
        return a + b

    def _backward(self, a, b, g):
        return g.copy(), g.copy()


class MulGate(_BinaryGate):
    """a * b. Backward swaps the inputs: da = g * b, db = g * a."""

    def _forward(self, a, b):
        return a * b

    def _backward(self, a, b, g):
        return g * b, g * a


class MaxGate(_BinaryGate):
    """max(a, b). Backward routes g to the winner, zero to the loser (a wins ties, as the first
    piece does in Maxout)."""

    def _forward(self, a, b):
        return np.maximum(a, b)

    def _backward(self, a, b, g):
        a_wins = a >= b
        return np.where(a_wins, g, 0.0).astype(g.dtype), np.where(a_wins, 0.0, g).astype(g.dtype)


class AddMulCircuit(mc.Module):
    """f(x, y, z) = (x + y) * z: input (B, 3) with columns x, y, z; output (B, 1).
    q = add(x, y); f = mul(q, z)."""

    def __init__(self):
        self.add = AddGate()
        self.mul = MulGate()

    def forward(self, xyz: np.ndarray) -> np.ndarray:
        xyz = _as_float(xyz, "x")
        self.q = self.add(xyz[:, 0:2])                               # (B, 1)
        return self.mul(np.concatenate([self.q, xyz[:, 2:3]], 1))  # (B, 1)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dq_dz = self.mul.backward(grad_output)   # [df/dq, df/dz] = [z g, q g]
        dx_dy = self.add.backward(dq_dz[:, :1])  # [df/dx, df/dy] = [df/dq, df/dq]
        return np.concatenate([dx_dy, dq_dz[:, 1:]], 1)


class MulAddMaxCircuit(mc.Module):
    """g(x, y, z, w) = x * y + max(z, w): input (B, 4) with columns x, y, z, w; output (B, 1).
    p = mul(x, y); m = max(z, w); g = add(p, m)."""

    def __init__(self):
        self.mul = MulGate()
        self.max = MaxGate()
        self.add = AddGate()

    def forward(self, xyzw: np.ndarray) -> np.ndarray:
        xyzw = _as_float(xyzw, "x")
        self.p = self.mul(xyzw[:, 0:2])
        self.m = self.max(xyzw[:, 2:4])
        return self.add(np.concatenate([self.p, self.m], 1))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dp_dm = self.add.backward(grad_output)    # [dg/dp, dg/dm] = [g, g]
        dx_dy = self.mul.backward(dp_dm[:, :1])   # [y dg/dp, x dg/dp]
        dz_dw = self.max.backward(dp_dm[:, 1:])   # [dg/dm, 0] if z > w
        return np.concatenate([dx_dy, dz_dw], 1)


def _distinct_pairs(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    """[a | b] (rows, 2k) float64 with |a - b| >= 0.1 everywhere, so that the finite-difference
    step (1e-6) never crosses a max gate's kink."""
    a = rng.standard_normal((rows, k))
    b = a + rng.choice([-1.0, 1.0], (rows, k)) * (0.1 + np.abs(rng.standard_normal((rows, k))))
    return np.concatenate([a, b], 1)


def maxout_as_max_gate(seed: int = 0) -> float:
    """Maxout(4, 3, pieces=2) against Sequential(Linear(4, 6), MaxGate()) with the same weights
    (rows reordered: Maxout keeps output c's pieces in rows 2c, 2c+1, the max gate pairs column
    c with column 3 + c). Returns the largest |difference| over the output, the input gradient
    and the weight gradient (0 up to rounding)."""
    rng = np.random.default_rng(seed)
    mo = mc.Maxout(4, 3, pieces=2, dtype=np.float64, seed=seed)
    lin = mc.Linear(4, 6, dtype=np.float64)
    net = mc.Sequential(lin, MaxGate())
    order = [0, 2, 4, 1, 3, 5]  # first pieces of the 3 units, then the second pieces
    lin.weight.data = mo.weight.data[order]
    lin.bias.data = rng.standard_normal(6)
    mo.bias.data = lin.bias.data[np.argsort(order)]
    x, g = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
    for m in (mo, net):
        m.zero_grad()
    d_out = np.abs(mo(x) - net(x)).max()
    d_in = np.abs(mo.backward(g) - net.backward(g)).max()
    d_w = np.abs(mo.weight.grad[order] - lin.weight.grad).max()
    return float(max(d_out, d_in, d_w))


def residual_as_add_gate(seed: int = 0) -> float:
    """Residual(block) against an add gate over [x | block(x)]: forward x + block(x); backward
    the add gate's two copies of g, one straight to x and one through the block, summed where
    the wires fork. Returns the largest |difference| (0 up to rounding)."""
    rng = np.random.default_rng(seed)
    block = mc.Sequential(mc.Linear(5, 5, dtype=np.float64, seed=seed), mc.Tanh())
    res = mc.Residual(block)
    add = AddGate()
    x, g = rng.standard_normal((8, 5)), rng.standard_normal((8, 5))
    y_res = res(x)
    dx_res = res.backward(g)
    y_add = add(np.concatenate([x, block(x)], 1))
    d_skip_block = add.backward(g)  # (8, 10): [g for the skip wire | g for the block's output]
    dx_add = d_skip_block[:, :5] + block.backward(d_skip_block[:, 5:])
    return float(max(np.abs(y_res - y_add).max(), np.abs(dx_res - dx_add).max()))


def _draw_circuit(ax, nodes: dict, wires: list, title: str) -> None:
    """nodes: name -> (x, y, label, is_gate); wires: (src, dst, value, grad). Each wire carries
    its forward value in green above it and its gradient in red below it, 0.3 of the way from an
    input (two input wires that meet at a gate are still 0.8 apart there, inputs being 1.3 apart:
    room for the lower label of one and the upper label of the other) or halfway from a gate (clear
    of its circle)."""
    for src, dst, value, grad in wires:
        (x0, y0), (x1, y1) = nodes[src][:2], nodes[dst][:2]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", lw=1.2, color="0.3", shrinkA=12, shrinkB=18))
        t = 0.5 if nodes[src][3] else 0.3
        mx, my = (1 - t) * x0 + t * x1, (1 - t) * y0 + t * y1
        ax.text(mx, my + 0.08, f"{value:g}", color="green", ha="center", va="bottom", fontsize=11)
        ax.text(mx, my - 0.08, f"{grad:g}", color="red", ha="center", va="top", fontsize=11)
    for x, y, label, is_gate in nodes.values():
        if is_gate:
            ax.scatter([x], [y], s=1100, c="white", edgecolors="0.2", zorder=3, clip_on=False)
        ax.text(x, y, label, ha="center", va="center", fontsize=11 if len(label) > 1 else 14, zorder=4)
    ys = [n[1] for n in nodes.values()]
    ax.set_xlim(-0.4, 4.8)
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.set_aspect("equal")
    ax.set_title(title + "   (green: value, red: gradient)", fontsize=11)
    ax.axis("off")


def run(quick: bool = False, out: Optional[str] = None, seed: int = 0) -> dict:
    """Evaluate and backpropagate both circuits at the lecture's numbers, gradcheck every gate and
    circuit on random float64 inputs, and compare Maxout / Residual with max / add gates.
    (``quick`` changes nothing: this example is instant.)

    Returns {"f", "df" {"x", "y", "z"}, "g", "dg" {"x", "y", "z", "w"}, "gradcheck" {name:
    max relative error}, "maxout_vs_max_gate", "residual_vs_add_gate" (max |difference|), "plots"}.
    """
    # f(x, y, z) = (x + y) z at the lecture's point; df/df = 1 starts the backward pass
    f_circuit = AddMulCircuit()
    f = f_circuit(np.array([[-2.0, 5.0, -4.0]]))
    df = f_circuit.backward(np.ones((1, 1)))[0]
    # g(x, y, z, w) = x y + max(z, w)
    g_circuit = MulAddMaxCircuit()
    g = g_circuit(np.array([[3.0, -4.0, 2.0, -1.0]]))
    dg = g_circuit.backward(np.ones((1, 1)))[0]

    print("f(x, y, z) = (x + y) * z  at x = -2, y = 5, z = -4")
    print(f"  forward : q = x + y = {f_circuit.q[0, 0]:g}, f = q * z = {f[0, 0]:g}")
    print(f"  backward: df/dx = {df[0]:g}, df/dy = {df[1]:g}, df/dz = {df[2]:g}"
          "   (add distributes, multiply swaps)")
    print("g(x, y, z, w) = x * y + max(z, w)  at x = 3, y = -4, z = 2, w = -1")
    print(f"  forward : p = x * y = {g_circuit.p[0, 0]:g}, m = max(z, w) = {g_circuit.m[0, 0]:g}, "
          f"g = p + m = {g[0, 0]:g}")
    print(f"  backward: dg/dx = {dg[0]:g}, dg/dy = {dg[1]:g}, dg/dz = {dg[2]:g}, dg/dw = {dg[3]:g}"
          "   (max routes to the winner)")

    # every gate and circuit against float64 central differences, on a batch of random inputs
    rng = np.random.default_rng(seed)
    checks = {
        "AddGate": (AddGate(), rng.standard_normal((4, 6))),
        "MulGate": (MulGate(), rng.standard_normal((4, 6))),
        "MaxGate": (MaxGate(), _distinct_pairs(rng, 4, 3)),
        "AddMulCircuit": (AddMulCircuit(), rng.standard_normal((4, 3))),
        "MulAddMaxCircuit": (MulAddMaxCircuit(), np.concatenate(
            [rng.standard_normal((4, 2)), _distinct_pairs(rng, 4, 1)], 1)),
    }
    errors = {}
    print("mc.gradcheck (max relative error of d/dinput vs float64 central differences):")
    for name, (module, x) in checks.items():
        errors[name] = max(mc.gradcheck(module, x, seed=seed).values())
        print(f"  {name:<17} {errors[name]:.1e}")

    maxout_diff = maxout_as_max_gate(seed)
    residual_diff = residual_as_add_gate(seed)
    print(f"Maxout(4, 3, pieces=2) == Sequential(Linear(4, 6), MaxGate()) with the same weights: "
          f"max |difference| {maxout_diff:.1e}")
    print(f"Residual(block) == AddGate over [x | block(x)], gradients summed at the fork: "
          f"max |difference| {residual_diff:.1e}")

    plots = []
    path = plot_target(out, "gates.png")
    if path is not None:
        fig, axes = figure(2, (5.5, 4.4))
        q = f_circuit.q[0, 0]
        _draw_circuit(axes[0], {
            "x": (0, 2.6, "x", False), "y": (0, 1.3, "y", False), "z": (0, 0, "z", False),
            "add": (1.7, 1.95, "+", True), "mul": (3.2, 0.98, "×", True), "f": (4.5, 0.98, "f", False),
        }, [("x", "add", -2, df[0]), ("y", "add", 5, df[1]), ("z", "mul", -4, df[2]),
            ("add", "mul", q, -4.0), ("mul", "f", f[0, 0], 1.0)], "f = (x + y) z")
        _draw_circuit(axes[1], {
            "x": (0, 3.9, "x", False), "y": (0, 2.6, "y", False),
            "z": (0, 1.3, "z", False), "w": (0, 0, "w", False),
            "mul": (1.7, 3.25, "×", True), "max": (1.7, 0.65, "max", True), "add": (3.2, 1.95, "+", True),
            "g": (4.5, 1.95, "g", False),
        }, [("x", "mul", 3, dg[0]), ("y", "mul", -4, dg[1]), ("z", "max", 2, dg[2]), ("w", "max", -1, dg[3]),
            ("mul", "add", g_circuit.p[0, 0], 1.0), ("max", "add", g_circuit.m[0, 0], 1.0),
            ("add", "g", g[0, 0], 1.0)],
            "g = x y + max(z, w)")
        plots.append(save(fig, path))

    return {"f": float(f[0, 0]), "df": dict(zip("xyz", map(float, df))),
            "g": float(g[0, 0]), "dg": dict(zip("xyzw", map(float, dg))),
            "gradcheck": errors, "maxout_vs_max_gate": maxout_diff, "residual_vs_add_gate": residual_diff,
            "plots": plots}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    run(quick=args.quick, out=args.out, seed=args.seed)


if __name__ == "__main__":
    main()
