"""fer export: the ONNX file gives the PyTorch checkpoint's probabilities, and fer predict runs it without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fercli.checkpoint import file_fingerprint, load_model
from fercli.cli import app
from fercli.inference import TorchClassifier
from fercli.onnx_model import OnnxClassifier
from fercli.shipped import default_checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


@pytest.fixture
def exported(tmp_path, trained_checkpoint) -> Path:
    result = runner.invoke(app, ["export", "-c", str(trained_checkpoint), "-o", str(tmp_path / "model.onnx")])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


def random_crops(n: int, side: int = 48) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, side, side), dtype=np.uint8)


def assert_same_probabilities(onnx_path: Path, checkpoint: Path, n: int = 300) -> None:
    onnx_model = OnnxClassifier(onnx_path, batch_size=128)  # several onnxruntime calls, like a big folder
    torch_model = TorchClassifier(load_model(checkpoint, torch.device("cpu")), torch.device("cpu"))
    crops = random_crops(n, torch_model.image_size)
    got, want = onnx_model.probabilities(crops), torch_model.probabilities(crops)
    assert onnx_model.classes == torch_model.classes and got.shape == want.shape == (n, len(want[0]))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_export_gives_the_checkpoints_probabilities(exported, trained_checkpoint):
    assert_same_probabilities(exported, trained_checkpoint)
    meta = OnnxClassifier(exported).meta
    assert meta["source_sha256"] == file_fingerprint(trained_checkpoint) and json.loads(meta["model"])["name"]


def test_export_refuses_to_overwrite(exported, trained_checkpoint):
    before = exported.read_bytes()
    again = runner.invoke(app, ["export", "-c", str(trained_checkpoint), "-o", str(exported)])
    assert again.exit_code == 1 and "--overwrite" in again.stderr and exported.read_bytes() == before
    twice = runner.invoke(app, ["export", "-c", str(exported), "-o", str(exported.with_name("again.onnx"))])
    assert twice.exit_code == 1 and "already an ONNX export" in twice.stderr


def test_predict_with_onnx_matches_predict_with_the_checkpoint(exported, trained_checkpoint):
    def faces(model):
        result = runner.invoke(app, ["predict", str(EXAMPLES / "two_faces.jpg"), "-c", str(model), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["faces"]

    from_onnx, from_torch = faces(exported), faces(trained_checkpoint)
    assert [f["box"] for f in from_onnx] == [f["box"] for f in from_torch] and len(from_onnx) == 2
    for a, b in zip(from_onnx, from_torch):
        assert a["scores"] == pytest.approx(b["scores"], abs=2e-4)


def test_shipped_onnx_is_the_shipped_checkpoint():
    """Guards against shipping a stale export: re-run `fer export --overwrite` after replacing fer_vgg.pt."""
    onnx_path, checkpoint = default_checkpoint(".onnx"), default_checkpoint(".pt")
    assert OnnxClassifier(onnx_path).meta["source_sha256"] == file_fingerprint(checkpoint)
    assert_same_probabilities(onnx_path, checkpoint, n=64)


def test_predict_with_the_shipped_model_never_imports_torch():
    code = ("import sys\nfrom fercli.cli import app\n"
            f"try:\n    app(['predict', {str(EXAMPLES / 'astronaut.jpg')!r}, '--json'], prog_name='fer')\n"
            "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.splitlines()[0])["status"] == "ok"
    assert done.stdout.splitlines()[-1] == "False"


def test_bad_onnx_files_get_one_line(tmp_path, exported):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    result = runner.invoke(app, ["predict", str(EXAMPLES / "astronaut.jpg"), "-c", str(garbage)])
    assert result.exit_code != 0 and "not a readable ONNX model" in result.stderr and "Traceback" not in result.output

    import onnx

    proto = onnx.load(str(exported))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    result = runner.invoke(app, ["predict", str(EXAMPLES / "astronaut.jpg"), "-c", str(foreign)])
    assert result.exit_code != 0 and "fer export" in result.stderr

    result = runner.invoke(app, ["predict", str(EXAMPLES / "astronaut.jpg"), "-c", str(exported), "--device", "cuda"])
    assert result.exit_code != 0 and "ONNX models run on the CPU" in result.stderr
