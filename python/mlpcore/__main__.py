"""``python -m mlpcore``: the ``mlpcore`` command (``mlpcore.cli:main``), for when the console
script is not on PATH (a venv that is not activated, ``pip install --user``, Windows)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
