"""The README's example runs as written (its ```python blocks under '## Example', in order)."""

import re
from pathlib import Path

import numpy as np

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
