"""scripts/gpu_train.py's data pack: what the device tool carries must unpack to the same JPEG files, byte for byte."""

import sys
from pathlib import Path

import pytest

from conftest import write_fer_folders

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import gpu_train  # noqa: E402


def test_pack_stores_the_shared_header_once_and_unpacks_byte_for_byte(tmp_path):
    data = write_fer_folders(tmp_path / "fer2013", per_class=(6, 2, 2))
    pack = gpu_train.pack(tmp_path / "carry", data)
    out = gpu_train.unpack(pack, tmp_path / "back")
    packed = sorted(p.relative_to(out) for p in out.rglob("*.jpg"))
    wanted = sorted(p.relative_to(data) for p in data.rglob("*.jpg") if not p.name.startswith("PrivateTest_"))
    assert packed == wanted and not any("PrivateTest" in p.name for p in packed)  # PrivateTest stays here
    assert all((out / p).read_bytes() == (data / p).read_bytes() for p in packed)
    assert pack.stat().st_size < sum((data / p).stat().st_size for p in packed)


@pytest.mark.slow
def test_the_dry_run_rehearses_all_five_runs(tmp_path):
    """A lent GPU is rare and its minutes count: the one-call script must work the first time. The dry run trains
    the same five runs on tiny synthetic data on the CPU, 2 epochs each, and brings back their checkpoints."""
    import json
    import subprocess

    script = Path(gpu_train.__file__)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "out"), "--dry-run"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["run"] for r in summary["runs"]] == ["seed", "member0", "member1", "member2", "member3"]
    for record in summary["runs"]:
        assert record["exit_code"] == 0 and record["epochs_done"] == 2, summary["logs_tail"][record["run"]]
        assert (tmp_path / "out" / record["checkpoint"]).stat().st_size <= gpu_train.MAX_BYTES
