"""``python -m mlpcore.examples``: list the examples with their one-line descriptions."""

from __future__ import annotations

import importlib

from . import EXAMPLES


def main() -> None:
    print("mlpcore examples; run one with: python -m mlpcore.examples.NAME [--quick] [--out DIR] [--seed N]")
    for name in EXAMPLES:
        doc = importlib.import_module(f"{__package__}.{name}").__doc__ or ""
        print(f"  {name:<24} {doc.strip().splitlines()[0]}")


if __name__ == "__main__":
    main()
