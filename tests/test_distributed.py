"""torchrun with 2 CPU processes (gloo) trains the same model as one process, within tolerance: on one node, and as
two nodes (two torchrun agents meeting at a rendezvous on 127.0.0.1, as on two machines)."""

import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import tiny_overrides

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def common_overrides(fer_folders, tmp_path) -> list[str]:
    return tiny_overrides(fer_folders, tmp_path / "runs", epochs=1) + ["augment.erase=0", "train.calibrate=false"]


def train_alone(common: list[str]) -> None:
    single = subprocess.run([sys.executable, "-m", "fercli", "train", *common, "train.name=single"],
                            capture_output=True, text=True, env=ENV)
    assert single.returncode == 0, single.stderr


def assert_same_training(runs, name: str) -> None:
    assert sorted(p.name for p in runs.iterdir()) == sorted(["single", name])  # no folder per rank
    a = torch.load(runs / "single" / "last.pt", weights_only=True)
    b = torch.load(runs / name / "last.pt", weights_only=True)
    # Same global batches and gradients; only BatchNorm sees half-batches, so allow small drift.
    for key, value in a["state_dict"].items():
        if value.is_floating_point() and "running" not in key:  # running stats come from half-batches
            assert torch.allclose(value, b["state_dict"][key], atol=0.05, rtol=0.05), key
    loss_a = a["train_state"]["history"][0]["train_loss"]
    loss_b = b["train_state"]["history"][0]["train_loss"]
    assert abs(loss_a - loss_b) / loss_a < 0.1


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path, fer_folders):
    common = common_overrides(fer_folders, tmp_path)
    train_alone(common)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "fercli", "train", *common, "train.name=ddp"], capture_output=True, text=True, env=ENV)
    assert ddp.returncode == 0, ddp.stderr
    assert ddp.stdout.strip().splitlines() == [str(tmp_path / "runs" / "ddp")]  # rank 0 alone reports
    assert_same_training(tmp_path / "runs", "ddp")


@pytest.mark.slow
def test_two_nodes_meet_at_a_rendezvous_and_train_as_one(tmp_path, fer_folders):
    """`torchrun --nnodes 2` on each of two "machines" (here two agents on 127.0.0.1, each with one process), as
    docs/training.md shows for a cluster; rank 0 (on the first node) writes the one run folder."""
    common = common_overrides(fer_folders, tmp_path)
    train_alone(common)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                               f"--node_rank={rank}", "--master_addr=127.0.0.1", f"--master_port={port}",
                               "-m", "fercli", "train", *common, "train.name=nodes"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for rank in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert outputs[0][0].strip().splitlines() == [str(tmp_path / "runs" / "nodes")] and outputs[1][0].strip() == ""
    assert_same_training(tmp_path / "runs", "nodes")
