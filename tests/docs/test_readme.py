"""The README's example runs as written (its ```python blocks under '## Example', in order)."""

import re
from pathlib import Path

import numpy as np
import pytest

import mlpcore as mc

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text.split("## Example", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    mc.set_num_threads(1)
    scope: dict = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), scope)
    assert scope["trainer"].evaluate(scope["X"], scope["y"])["accuracy"] > 0.95
    assert (tmp_path / "moons.safetensors").exists()
    assert np.isfinite(scope["value"])


def test_readme_checkpoint_block_runs(tmp_path, monkeypatch):
    """The checkpoint block under '## Command line, checkpoints, data sets, plots' runs as written
    (load_checkpoint returns the dict it shows), given the model, optimizer and PyTorch model it
    starts from."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    text = README.read_text()
    section = text.split("## Command line, checkpoints, data sets, plots", 1)[1].split("\n## ", 1)[0]
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "load_checkpoint" in b]
    monkeypatch.chdir(tmp_path)
    model = mc.Sequential(mc.Linear(2, 16, seed=0), mc.ReLU(), mc.Linear(16, 2, seed=1))
    scope = {"mc": mc, "torch": torch, "model": model, "opt": mc.Adam(model.parameters()),
             "torch_sequential": torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))}
    exec(compile(code, str(README), "exec"), scope)
    assert scope["ck"]["epoch"] == 10 and scope["opt"].state_dict()["type"] == "Adam"
    assert list(scope["sd"]) == list(scope["torch_model"].state_dict())  # the in-memory state dict lines
    assert (tmp_path / "moons.png").exists()
