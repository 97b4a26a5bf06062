"""The package's floor plan: folders by role, imports that point one way, a face pipeline that never needs PyTorch."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fercli"

# What each part may import from the package (besides the top-level leaves: errors, choices, console, config, runs).
# Read downwards: commands use everything; the face pipeline uses only the torch-free classifier.
ALLOWED = {
    "faces": {"faces", "model"},
    "model": {"model"},
    "data": {"data", "faces", "model"},
    "train": {"train", "data", "model", "faces"},
    "evaluate": {"evaluate", "data", "model", "faces"},
    "scale": {"scale", "faces", "model"},
}
TORCH_FREE = ["fercli.faces.analyzer", "fercli.faces.video", "fercli.faces.serve", "fercli.faces.draw",
              "fercli.faces.inputs", "fercli.faces.media", "fercli.model.classifier", "fercli.model.onnx_backend", "fercli.model.shipped",
              "fercli.model.preprocess", "fercli.commands.predict", "fercli.commands.video", "fercli.commands.serve",
              "fercli.cli", "fercli.config", "fercli.runs", "fercli.console", "fercli.commands.tables",
              "fercli.commands.predict_ray", "fercli.scale.tasks", "fercli.scale.on_ray"]


def package_imports(path: Path) -> set[str]:
    """The fercli modules a file imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fercli"):
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("fercli")}
    return names


def part_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


def test_each_part_imports_only_the_parts_below_it():
    wrong = []
    for part, allowed in ALLOWED.items():
        for path in (PACKAGE / part).rglob("*.py"):
            for module in package_imports(path):
                used = part_of(module)
                if used is not None and used not in allowed:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


def test_only_the_cli_imports_the_commands_and_nothing_imports_the_cli():
    users = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
             if any(m.startswith("fercli.commands") for m in package_imports(p))}
    assert users <= {"cli.py"} | {str(p.relative_to(PACKAGE)) for p in (PACKAGE / "commands").glob("*.py")}
    assert not [p for p in PACKAGE.rglob("*.py") if "fercli.cli" in package_imports(p) and p.name != "__main__.py"]


def test_the_top_level_holds_few_modules():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 10, modules


def test_the_torch_free_part_imports_with_pytorch_blocked():
    block = "import sys\nfor name in ('torch', 'torchvision', 'pandas', 'sklearn', 'matplotlib'):\n    sys.modules[name] = None\n"
    code = block + "".join(f"import {m}\n" for m in TORCH_FREE) + "from fercli import FaceAnalyzer\nprint(FaceAnalyzer.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "FaceAnalyzer"


def test_readme_is_short_and_its_generated_parts_are_current():
    """README's model table comes from checkpoints/results.yaml and its example output from fer predict itself."""
    root = PACKAGE.parent
    readme = (root / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert readme.split("```bash\n", 1)[1].startswith("python3 dev.py predict examples/astronaut.jpg")
    done = subprocess.run([sys.executable, str(root / "scripts" / "readme.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_each_headline_figure_is_the_model_cards():
    """results.yaml copies the cards' headline figures: each must stand in MODEL_CARD.md as well."""
    import re

    import yaml

    root = PACKAGE.parent
    card = (root / "checkpoints" / "MODEL_CARD.md").read_text()
    rows = yaml.safe_load((root / "checkpoints" / "results.yaml").read_text())["models"]
    figures = {f for row in rows[:3] for key in ("fer2013", "ferplus", "suite") for f in re.findall(r"\d+\.\d+%?", row[key])}
    assert figures and not [f for f in figures if f not in card]


def test_configs_holds_the_recipes_users_run():
    recipes = sorted(p.stem for p in (PACKAGE.parent / "configs").glob("*.yaml"))
    assert len(recipes) <= 8 and {"fer_vgg", "fer_vgg_capture"} <= set(recipes)


def test_no_default_points_at_this_machine():
    from fercli.config import DataConfig

    assert DataConfig().root == ""
