#!/usr/bin/env python3
"""fer from a fresh clone with nothing but Python >= 3.10: sets up .venv on first use, then runs.

    python3 dev.py predict examples/astronaut.jpg    # any `fer` command: predict, train, eval, ...
    python3 dev.py test                              # the test suite (extra pytest arguments pass through)

The set-up is README's install (a virtual environment, the torch pair CI uses, then fer with its dev
extras); it runs again only when pyproject.toml changes.
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
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]  # any torch>=2.2 with its torchvision works; this pair is CI's


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def set_up() -> None:
    """Create the environment and install fer into it, unless this pyproject.toml is installed already."""
    stamp = VENV / ".fer-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted and venv_python().is_file():
        return
    print(f"setting up {VENV} (first use: a few minutes)", file=sys.stderr)
    if not venv_python().is_file():
        venv.create(VENV, with_pip=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *TORCH], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if sys.version_info < (3, 10):
        print(f"fer needs Python 3.10 or newer; this is {sys.version.split()[0]}", file=sys.stderr)
        return 1
    set_up()
    if argv[0] == "test":
        return subprocess.run([str(venv_python()), "-m", "pytest", "-q", *argv[1:]], cwd=ROOT).returncode
    return subprocess.run([str(venv_python()), "-m", "fercli", *argv]).returncode  # paths stay relative to the caller


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
