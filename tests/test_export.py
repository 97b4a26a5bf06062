"""fer export: the ONNX file gives the PyTorch checkpoint's probabilities, and fer predict runs it without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fercli.model.checkpoint import file_fingerprint
from fercli.model.classifier import open_classifier
from fercli.cli import app
from fercli.model.torch_backend import TorchClassifier
from fercli.model.onnx_backend import OnnxClassifier
from fercli.model.shipped import shipped_model

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
    """open_classifier, the one way every command opens a model, gives the same answer for both forms."""
    onnx_model = open_classifier(onnx_path, batch_size=128)  # several onnxruntime calls, like a big folder
    torch_model = open_classifier(checkpoint, device="cpu")
    assert isinstance(onnx_model, OnnxClassifier) and isinstance(torch_model, TorchClassifier)
    assert onnx_model.preprocess == torch_model.preprocess and onnx_model.temperature == torch_model.temperature
    crops = random_crops(n, torch_model.preprocess.image_size)
    got, want = onnx_model.probabilities(crops), torch_model.probabilities(crops)
    assert onnx_model.classes == torch_model.classes and got.shape == want.shape == (n, len(want[0]))
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(onnx_model.probabilities(crops, tta="flip"), torch_model.probabilities(crops, tta="flip"), atol=1e-5)


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


@pytest.mark.parametrize("name", ["fer2013", "ferplus"])
def test_shipped_onnx_is_the_shipped_checkpoint(name):
    """Guards against shipping a stale export: re-run `fer export --overwrite` after replacing a shipped .pt."""
    onnx_path, checkpoint = shipped_model(name, prefer_onnx=True), shipped_model(name, prefer_onnx=False)
    assert (onnx_path.suffix, checkpoint.suffix) == (".onnx", ".pt")
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


def eval_json(monkeypatch, tmp_path, model: Path, data: Path, *options: str) -> dict:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "-c", str(model), "--data", str(data), "--split", "val", "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_of_an_export_matches_its_checkpoint(exported, trained_checkpoint, fer_folders, tmp_path, monkeypatch):
    for tta in ("none", "flip"):
        from_onnx = eval_json(monkeypatch, tmp_path, exported, fer_folders, "--tta", tta)
        from_torch = eval_json(monkeypatch, tmp_path, trained_checkpoint, fer_folders, "--tta", tta)
        assert from_onnx["confusion"] == from_torch["confusion"] and from_onnx["params"] == from_torch["params"]
        for report in ("metrics", "uncalibrated"):  # the temperature inside the graph is undone for "uncalibrated"
            assert from_onnx[report]["nll"] == pytest.approx(from_torch[report]["nll"], abs=1e-4)
            assert from_onnx[report]["ece"] == pytest.approx(from_torch[report]["ece"], abs=1e-4)
    assert from_onnx["device"] == "onnxruntime (CPU)"


def test_eval_of_an_export_refuses_tencrop(exported, fer_folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval", "-c", str(exported), "--data", str(fer_folders), "--tta", "tencrop"])
    assert result.exit_code == 1 and "--tta tencrop needs a .pt checkpoint" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "runs" / "eval").exists()


def test_int8_export_is_quantised_and_close_to_float(exported, trained_checkpoint, fer_folders, tmp_path):
    result = runner.invoke(app, ["export", "-c", str(trained_checkpoint), "--int8", "--data", str(fer_folders)])
    assert result.exit_code == 0, result.output
    int8 = Path(result.stdout.strip())
    assert int8 == trained_checkpoint.with_name("best_int8.onnx")

    import onnx

    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    quantized, floating = OnnxClassifier(int8), OnnxClassifier(exported)
    assert "int8" in quantized.meta["quantization"] and quantized.classes == floating.classes
    assert quantized.meta["source_sha256"] == file_fingerprint(trained_checkpoint)
    crops = random_crops(64)
    np.testing.assert_allclose(quantized.probabilities(crops), floating.probabilities(crops), atol=0.05)


def test_int8_export_without_calibration_data_is_one_line(trained_checkpoint, tmp_path):
    missing = tmp_path / "nowhere"
    result = runner.invoke(app, ["export", "-c", str(trained_checkpoint), "--int8", "--data", str(missing)])
    assert result.exit_code != 0 and str(missing) in result.stderr and "Traceback" not in result.output
    assert not trained_checkpoint.with_name("best_int8.onnx").exists()
