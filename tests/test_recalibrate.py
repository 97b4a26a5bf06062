"""scripts/recalibrate_batchnorm.py: new BatchNorm statistics and temperature, the same weights, nothing overwritten."""

import subprocess
import sys
from pathlib import Path

import torch

from fercli.model.views import tta_views
from fercli.train.averaging import evaluation_view
from fercli.model.preprocess import Preprocess

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "recalibrate_batchnorm.py"


def recalibrate(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_only_batchnorm_statistics_change_and_the_result_is_never_written_over(tmp_path, fer_folders,
                                                                               trained_checkpoint):
    out = tmp_path / "recalibrated.pt"
    done = recalibrate(trained_checkpoint, out, "--data", fer_folders, "--views", "tencrop")
    assert done.returncode == 0, done.stderr
    assert "validation accuracy without TTA" in done.stdout
    old, new = (torch.load(p, weights_only=True) for p in (trained_checkpoint, out))
    changed = {k for k in old["state_dict"] if not torch.equal(old["state_dict"][k], new["state_dict"][k])}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    assert new["batchnorm_recalibrated"]["views"] == "tencrop" and 0.05 < new["temperature"] < 20
    again = recalibrate(trained_checkpoint, out, "--data", fer_folders)
    assert again.returncode != 0 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert torch.load(out, weights_only=True)["batchnorm_recalibrated"]["views"] == "tencrop"  # untouched


def test_a_tencrop_view_is_one_of_the_ten_per_image():
    pre = Preprocess(image_size=8, input_size=6, channels=1, mean=0.5, std=0.25)
    images = torch.randint(0, 256, (30, 1, 8, 8), dtype=torch.uint8)
    views = torch.stack(tta_views(images, pre, "tencrop"))  # [10, N, 1, 6, 6]
    picked = evaluation_view(images, pre, "tencrop", torch.Generator().manual_seed(0))
    which = [[torch.equal(picked[i], views[v, i]) for v in range(10)].index(True) for i in range(len(images))]
    assert len(set(which)) > 3  # drawn, not always the same view
    assert torch.equal(evaluation_view(images, pre, "none", torch.Generator()), tta_views(images, pre, "none")[0])
