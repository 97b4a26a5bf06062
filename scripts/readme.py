"""README's generated parts: the shipped models' table (from checkpoints/results.yaml) and the example output of
``fer predict examples/astronaut.jpg`` (fer's own output). ``python scripts/readme.py`` rewrites them in place;
``--check`` exits 1 when README differs from what it would write (the tests run it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = ("models", "predict")


def models_table() -> str:
    rows = yaml.safe_load((ROOT / "checkpoints" / "results.yaml").read_text())["models"]
    lines = ["| model | classes | parameters | FER-2013 PrivateTest | FER+ PrivateTest | cross-dataset suite, mean balanced (tfeid / jaffe / lfw) | reproduce |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['classes']} | {r['params']} | {r['fer2013']} | {r['ferplus']} | {r['suite']} | `{r['reproduce']}` |"
              for r in rows]
    return "\n".join(lines)


def predict_output() -> str:
    env = {**os.environ, "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-m", "fercli", "predict", "examples/astronaut.jpg"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    body = "\n".join(line.rstrip() for line in done.stdout.strip().splitlines())
    return f"```\n$ fer predict examples/astronaut.jpg\n{body}\n```"


def render(readme: str) -> str:
    for name, make in (("models", models_table), ("predict", predict_output)):
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        head, rest = readme.split(begin, 1)
        _old, tail = rest.split(end, 1)
        readme = f"{head}{begin}\n{make()}\n{end}{tail}"
    return readme


def main() -> int:
    path = ROOT / "README.md"
    current = path.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        if wanted != current:
            print("README.md's generated parts are out of date: run python scripts/readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
