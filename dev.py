#!/usr/bin/env python3
"""fer from a fresh clone with nothing but Python >= 3.10: sets up .venv on first use, then runs.

    python3 dev.py predict examples/astronaut.jpg    # any `fer` command: predict, train, eval, ...
    python3 dev.py test                              # the test suite (extra pytest arguments pass through)

The set-up is README's install: a virtual environment with fer's base install for predict and serve
(seconds), and the torch pair CI uses plus fer's dev extras for everything else (minutes, once); it runs
again only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("FER_VENV", ROOT / ".venv"))
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]  # any torch>=2.6 with its torchvision works; this pair is CI's


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


# Commands the base install runs (onnxruntime and OpenCV, about 420 MB, seconds to set up); the rest need the
# training stack (PyTorch and friends, a few minutes the first time).
BASE_COMMANDS = {"predict", "serve", "--version", "-h", "--help"}


def set_up(full: bool) -> None:
    """Create the environment and install fer into it (with its dev extras when ``full``), unless this
    pyproject.toml is installed already at that level."""
    stamp = VENV / ".fer-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed = stamp.read_text().split() if stamp.is_file() and venv_python().is_file() else []
    if installed[:1] == [digest] and (installed[1:] == ["full"] or not full):
        return
    print(f"setting up {VENV} ({'fer with its training and test tools: a few minutes' if full else 'fer: seconds'})",
          file=sys.stderr)
    if not venv_python().is_file():
        venv.create(VENV, with_pip=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet"]
    if full:
        subprocess.run([*pip, *TORCH], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]" if full else str(ROOT)], check=True)
    stamp.write_text(f"{digest} {'full' if full else 'base'}")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if sys.version_info < (3, 10):
        print(f"fer needs Python 3.10 or newer; this is {sys.version.split()[0]}", file=sys.stderr)
        return 1
    set_up(full=argv[0] not in BASE_COMMANDS)
    if argv[0] == "test":
        return subprocess.run([str(venv_python()), "-m", "pytest", "-q", *argv[1:]], cwd=ROOT).returncode
    return subprocess.run([str(venv_python()), "-m", "fercli", *argv]).returncode  # paths stay relative to the caller


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
