import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import tiny_overrides
from fercli.model.checkpoint import load_model, read_checkpoint
from fercli.config import config_from_dict, load_config
from fercli.data.dataset import load_dataset
from fercli.train.calibration import fit_temperature
from fercli.train.loop import SilentReporter, fit
from fercli.train.build import lr_factor
from fercli.train.distill import teacher_probs, with_teacher_targets
from fercli.errors import ConfigError
from fercli.model.torch_backend import predict_logits
from fercli.runs import new_run_dir


def train(cfg, project, name="run", resume=None):
    run_dir = resume["dir"] if resume else new_run_dir(project, name)
    state = fit(cfg, load_dataset(cfg.data), run_dir, torch.device("cpu"), SilentReporter(),
                resume=read_checkpoint(run_dir / "last.pt") if resume else None)
    return run_dir, state


def test_fit_writes_a_complete_run_folder(tmp_path, fer_folders):
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=2))
    run_dir, state = train(cfg, tmp_path / "runs")
    assert state.epoch == 2 and len(state.history) == 2
    assert {"best.pt", "last.pt", "metrics.csv"} <= {p.name for p in run_dir.iterdir()}
    assert not list(run_dir.glob(".*tmp*"))  # atomic writes leave no temporaries
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    assert ckpt["classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert ckpt["preprocess"]["input_size"] == 44 and ckpt["model"]["name"] == "vgg"
    assert config_from_dict(ckpt["config"]) == cfg
    assert len(ckpt["data_fingerprint"]) == 16 and 0.05 < ckpt["temperature"] < 20


def test_training_learns_the_synthetic_pattern(tmp_path, fer_folders):
    overrides = tiny_overrides(fer_folders, tmp_path / "runs", epochs=12) + ["augment.erase=0", "augment.flip=false"]
    _, state = train(load_config(None, overrides), tmp_path / "runs")
    assert state.best_val_acc > 0.5  # chance is 1/7


class StopAfter(SilentReporter):
    """Simulates Ctrl-C once ``epochs`` epochs have finished."""

    def __init__(self, epochs: int):
        self.left = epochs

    def epoch(self, row: dict) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_resume_gives_the_uninterrupted_result(tmp_path, fer_folders):
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=3))
    full_dir, _ = train(cfg, tmp_path / "runs", "full")
    part_dir = new_run_dir(tmp_path / "runs", "part")
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, load_dataset(cfg.data), part_dir, torch.device("cpu"), StopAfter(1))
    assert torch.load(part_dir / "last.pt", weights_only=True)["train_state"]["epoch"] == 1
    train(cfg, tmp_path / "runs", resume={"dir": part_dir})
    a = torch.load(full_dir / "last.pt", weights_only=True)
    b = torch.load(part_dir / "last.pt", weights_only=True)
    assert a["train_state"]["history"][-1]["val_acc"] == b["train_state"]["history"][-1]["val_acc"]
    for key in a["state_dict"]:
        assert torch.allclose(a["state_dict"][key].float(), b["state_dict"][key].float(), atol=1e-5), key


def test_checkpoint_round_trip(trained_checkpoint):
    loaded = load_model(trained_checkpoint, torch.device("cpu"))
    x = torch.randn(3, 1, 44, 44)
    payload = torch.load(trained_checkpoint, weights_only=True)
    assert loaded.preprocess.input_size == 44
    assert loaded.model(x).shape == (3, 7)
    assert payload["format_version"] == 1 and "fer_version" in payload


def test_schedules():
    cfg = load_config(None, ["train.epochs=10", "optim.schedule=multistep", "optim.milestones=[5]"])
    assert lr_factor(cfg, 4.9) == 1.0 and abs(lr_factor(cfg, 5.0) - 0.1) < 1e-12
    cos = load_config(None, ["train.epochs=10", "optim.schedule=cosine", "optim.warmup_epochs=1"])
    assert lr_factor(cos, 0.5) < lr_factor(cos, 1.0) == 1.0 and lr_factor(cos, 10) < 1e-9
    one = load_config(None, ["train.epochs=10", "optim.schedule=onecycle"])
    assert lr_factor(one, 0) < 0.1 and abs(lr_factor(one, 3) - 1) < 1e-9 and lr_factor(one, 10) < 1e-9


def test_temperature_fit_undoes_overconfidence():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2000,))
    true_logits = torch.randn(2000, 3) + 2 * torch.nn.functional.one_hot(labels, 3)
    # Sample labels from the true model, then make the logits 3x too confident.
    sampled = torch.distributions.Categorical(logits=true_logits).sample()
    assert 2.4 < fit_temperature(true_logits * 3, sampled) < 3.6


def test_temperature_fit_of_a_barely_trained_network_is_its_best_not_nan():
    # A tiny network after a few epochs gives every image the same logits (L-BFGS returned NaN for such). Here they
    # are 3 x log p and the labels come in p's proportions, so the best temperature is exactly 3.
    p = torch.tensor([0.5, 0.3, 0.2])
    logits = (3 * p.log()).repeat(10, 1)
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)
    assert abs(fit_temperature(logits, labels) - 3.0) < 1e-3


def test_library_imports_no_cli_or_plotting_libraries():
    # Not fercli.evaluate.scoring: scikit-learn (its metrics) imports rich itself.
    modules = "fercli.train.loop, fercli.faces.analyzer, fercli.model.classifier, fercli.faces.detect, fercli.faces.align, fercli.model.torch_backend, fercli.model.export"
    code = f"import sys, {modules}; print(sorted(m for m in ('typer', 'rich', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_distillation_from_a_teacher_checkpoint(tmp_path, fer_folders, trained_checkpoint):
    base = tiny_overrides(fer_folders, tmp_path / "runs", epochs=1) + ["augment.erase=0"]
    _, plain = train(load_config(None, base), tmp_path / "runs", "plain")
    taught_cfg = load_config(None, base + [f"train.teacher=[{trained_checkpoint}]", "train.distill_weight=0.9"])
    _, taught = train(taught_cfg, tmp_path / "runs", "taught")
    # Same seed and data: only the teacher's soft targets can change the loss.
    assert taught.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_offline_distillation_labels_the_training_images_once(tmp_path, fer_folders, trained_checkpoint):
    base = tiny_overrides(fer_folders, tmp_path / "runs", epochs=1) + ["augment.erase=0"]
    _, plain = train(load_config(None, base), tmp_path / "runs", "plain")
    offline = base + [f"train.teacher=[{trained_checkpoint}]", "train.distill_offline=true", "train.distill_weight=0.9",
                      "train.distill_temperature=1"]
    run_dir, taught = train(load_config(None, offline), tmp_path / "runs", "offline")
    assert taught.history[0]["train_loss"] != plain.history[0]["train_loss"]
    cached = torch.load(run_dir / "teacher_targets.pt", weights_only=True)
    data = load_dataset(load_config(None, base).data)
    probs = cached["probs"]
    assert probs.shape == (len(data.splits["train"]), 7) and torch.allclose(probs.sum(1), torch.ones(len(probs)))
    # The teacher's own flip-TTA probabilities for the un-augmented images, not something else of the right shape.
    teacher = load_model(trained_checkpoint, torch.device("cpu"))
    expected = torch.softmax(predict_logits(teacher.model, data.splits["train"].images, teacher.preprocess, "cpu",
                                            tta="flip"), dim=1)
    assert torch.allclose(probs, expected, atol=1e-5)


def test_offline_targets_mix_labels_and_teachers_and_the_cache_is_keyed(tmp_path, fer_folders, trained_checkpoint):
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs") + [f"train.teacher=[{trained_checkpoint}]",
                                                                             "train.distill_weight=0.25"])
    data = load_dataset(cfg.data)
    teachers = [load_model(trained_checkpoint, torch.device("cpu"))]
    train_split = data.splits["train"]
    first = with_teacher_targets(data, teachers, cfg, "cpu", tmp_path, SilentReporter()).splits["train"].soft
    probs = torch.load(tmp_path / "teacher_targets.pt", weights_only=True)["probs"]
    onehot = torch.nn.functional.one_hot(train_split.labels, 7).float()
    assert torch.allclose(first, 0.75 * onehot + 0.25 * probs)
    # Same teachers, temperature and images: the file is used (a doctored one shows it); another temperature: not.
    doctored = torch.full_like(probs, 1 / 7)
    torch.save({**torch.load(tmp_path / "teacher_targets.pt", weights_only=True), "probs": doctored},
               tmp_path / "teacher_targets.pt")
    again = with_teacher_targets(data, teachers, cfg, "cpu", tmp_path, SilentReporter()).splits["train"].soft
    assert torch.allclose(again, 0.75 * onehot + 0.25 * doctored)
    hotter = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs") + [f"train.teacher=[{trained_checkpoint}]",
                                                                                "train.distill_weight=0.25",
                                                                                "train.distill_temperature=2"])
    recomputed = with_teacher_targets(data, teachers, hotter, "cpu", tmp_path, SilentReporter()).splits["train"].soft
    assert not torch.allclose(recomputed, 0.75 * onehot + 0.25 * doctored)


def test_a_teacher_with_other_classes_is_refused(tmp_path, fer_folders, trained_checkpoint):
    payload = torch.load(trained_checkpoint, weights_only=True)
    payload["classes"] = list(reversed(payload["classes"]))
    torch.save(payload, tmp_path / "reversed.pt")
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=1) + [f"train.teacher=[{tmp_path / 'reversed.pt'}]"])
    with pytest.raises(ConfigError, match="same classes in the same order"):
        train(cfg, tmp_path / "runs")


def test_flip_averaged_teacher_targets_are_the_same_for_an_image_and_its_mirror(trained_checkpoint):
    teacher = load_model(trained_checkpoint, torch.device("cpu"))
    pre = teacher.preprocess
    x = torch.randn(8, pre.channels, pre.input_size, pre.input_size, generator=torch.Generator().manual_seed(0))
    plain, mirrored = (teacher_probs([teacher], v, pre, t=4.0) for v in (x, x.flip(-1)))
    assert not torch.allclose(plain, mirrored, atol=1e-4)  # the network itself is not mirror-symmetric
    flip, flip_mirrored = (teacher_probs([teacher], v, pre, t=4.0, flip=True) for v in (x, x.flip(-1)))
    torch.testing.assert_close(flip, flip_mirrored)
    torch.testing.assert_close(flip.sum(1), torch.ones(8))


def test_bf16_teachers_give_nearly_the_fp32_targets(trained_checkpoint):
    """train.teacher_bf16 runs the teachers' passes in bf16 autocast: their targets stay within a few thousandths."""
    teacher = load_model(trained_checkpoint, torch.device("cpu"))
    pre = teacher.preprocess
    x = torch.randn(16, pre.channels, pre.input_size, pre.input_size, generator=torch.Generator().manual_seed(1))
    exact = teacher_probs([teacher], x, pre, t=1.0, flip=True)
    fast = teacher_probs([teacher], x, pre, t=1.0, flip=True, dtype=torch.bfloat16)
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)  # bf16 did run
    torch.testing.assert_close(fast, exact, atol=0.02, rtol=0)


def test_cpu_bf16_is_opt_in_and_only_where_the_cpu_has_it(monkeypatch):
    import torch

    from fercli.model import device as device_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "cpu_has_bf16_units", lambda: True)
    assert device_module.autocast_dtype(cpu, cuda_amp=True) is None  # runtime.amp alone never touches the CPU
    assert device_module.autocast_dtype(cpu, cuda_amp=True, cpu_bf16=True) == torch.bfloat16
    monkeypatch.setattr(device_module, "cpu_has_bf16_units", lambda: False)
    assert device_module.autocast_dtype(cpu, cuda_amp=True, cpu_bf16=True) is None


def test_training_with_cpu_bf16_runs_and_saves_fp32_weights(tmp_path, fer_folders):
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=1) + ["runtime.cpu_bf16=true"])
    run_dir, state = train(cfg, tmp_path / "runs")
    weights = read_checkpoint(run_dir / "best.pt")["state_dict"]
    assert 0 <= state.best_val_acc <= 1 and all(v.dtype != torch.bfloat16 for v in weights.values())


def test_training_with_mixup_and_cutmix_runs(tmp_path, fer_folders):
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=1) + ["augment.mixup=0.4", "augment.cutmix=1.0"])
    _run_dir, state = train(cfg, tmp_path / "runs")
    assert state.epoch == 1 and np.isfinite(state.history[0]["train_loss"])


class Recording(SilentReporter):
    def __init__(self):
        self.events = []

    def batch(self, done, total, loss, acc, ips):
        self.events.append(("batch", done))

    def validating(self):
        self.events.append(("validating",))

    def epoch(self, row):
        self.events.append(("epoch", row["epoch"]))

    def message(self, text):
        self.events.append(("message", text))


def test_progress_starts_at_the_first_step_and_shows_validation(tmp_path, fer_folders):
    recording = Recording()
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=2))
    fit(cfg, load_dataset(cfg.data), new_run_dir(tmp_path / "runs", "p"), torch.device("cpu"), recording)
    first_epoch = recording.events[:recording.events.index(("epoch", 1)) + 1]
    assert first_epoch[0] == ("batch", 1)  # the bar moves at step 1, not after REPORT_EVERY steps
    assert first_epoch[-2:] == [("validating",), ("epoch", 1)]
    assert recording.events.count(("validating",)) == 2


def test_a_run_that_answers_one_class_for_everything_is_called_collapsed_once(tmp_path, fer_folders, monkeypatch):
    import fercli.train.loop as engine

    def answers(pick):
        def predict_logits(model, images, *args, **kwargs):
            return torch.nn.functional.one_hot(pick(torch.arange(len(images))), 7).float()
        return predict_logits

    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=2))
    runs = {}
    for name, pick in (("varied", lambda i: i % 7), ("always_sad", lambda i: torch.full_like(i, 5))):
        monkeypatch.setattr(engine, "predict_logits", answers(pick))  # always sad: what a dead last hidden layer answers
        runs[name] = Recording()
        fit(cfg, load_dataset(cfg.data), new_run_dir(tmp_path / "runs", name), torch.device("cpu"), runs[name])
    warnings = {name: [e[1] for e in r.events if e[0] == "message" and "collapsed" in e[1]] for name, r in runs.items()}
    assert warnings["varied"] == [] and len(warnings["always_sad"]) == 1  # once, not every epoch
    message = warnings["always_sad"][0]
    assert message.startswith("epoch 1: the model predicts 'sad' for every validation image") and "lower optim.lr" in message
    assert runs["always_sad"].events.index(("epoch", 1)) < runs["always_sad"].events.index(("message", message))


def test_every_thread_of_a_cpu_training_flushes_denormal_floats(tmp_path, fer_folders):
    """Each OpenMP worker copies the floating-point mode of the thread that starts it: flushing must be on before
    the first parallel operation, or only the main thread flushes and the workers' share stays slow. Today's
    loaders run none (checked on FER-2013), so one is simulated; a fresh process, so the threads start inside it."""
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormal floats")
    torch.set_flush_denormal(False)
    overrides = tiny_overrides(fer_folders, tmp_path / "runs", epochs=1) + ["runtime.threads=2"]
    script = (
        "import numpy as np, torch\n"
        "import fercli.commands.train as command\n"
        "def load_big_dataset(*args, real=command.load_dataset, **kwargs):\n"
        "    torch.ones(1_000_000) * 2  # a loader's first parallel operation starts the worker threads\n"
        "    return real(*args, **kwargs)\n"
        "command.load_dataset = load_big_dataset\n"
        f"command.run_training(config_path=None, overrides={overrides!r}, resume=None, device_name='cpu')\n"
        "smallest = torch.from_numpy(np.ones(1_000_000, dtype=np.uint32).view(np.float32))  # denormal, no arithmetic\n"
        "print('denormals left', int(((smallest * 1.0) != 0).sum()))\n"  # halves of it go to different threads
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "denormals left 0"


def test_training_on_a_cpu_keeps_freed_memory_instead_of_faulting_it_back_each_step():
    """glibc unmaps large freed buffers, so each training step page-faults its activations back in; fer train asks
    it to keep them (device.keep_freed_memory). Fresh processes: the setting lasts for the process.

    Compared on the median step: with memory kept most steps fault nothing, but now and then the heap grows into
    fresh pages (1,600 or 3,200 faults in one step), which made a 6-step mean fail on CI (1,733 vs 4,779)."""
    script = (
        "import resource, statistics, sys, torch\n"
        "from fercli.config import load_config\n"
        "from fercli.model.device import keep_freed_memory\n"
        "from fercli.train.build import build_model\n"
        "kept = keep_freed_memory() if sys.argv[1] == 'keep' else False\n"
        "torch.manual_seed(0)\n"
        "net = build_model(load_config('fer2013'), 7)\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.01)\n"
        "x, y = torch.randn(64, 1, 40, 40), torch.randint(0, 7, (64,))\n"
        "def faults_of_one_step():\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before\n"
        "for _ in range(3): faults_of_one_step()  # the first steps fault their memory in either way\n"
        "print(kept, int(statistics.median(faults_of_one_step() for _ in range(11))))\n"
    )
    faults = {}
    for mode in ("default", "keep"):
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        kept, median_step = done.stdout.split()
        faults[mode] = (kept == "True", int(median_step))
    if not faults["keep"][0]:
        pytest.skip("not glibc: keep_freed_memory does nothing here")
    if faults["default"][1] < 1000:
        pytest.skip(f"this allocator does not fault freed buffers back in ({faults['default'][1]} faults a step)")
    assert faults["keep"][1] * 10 < faults["default"][1], faults  # kept: 0 on the median step


def test_training_bar_names_the_epoch():
    from rich.console import Console

    from fercli import console

    screen = Console(record=True, force_terminal=True, width=150)
    reporter = console.RichReporter()
    original, console.err = console.err, screen
    try:
        reporter.start({"model": "vgg", "params": 1e6, "device": "cpu", "train": 10, "val": 2, "epochs": 40,
                        "start_epoch": 6})
        reporter.batch(1, 5, 1.9, 0.2, 100.0)
        reporter.progress.refresh()
        reporter.epoch({"epoch": 7, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.1, "seconds": 1.0})
    finally:
        console.err = original
    assert "epoch 7/40" in screen.export_text()
    assert reporter.current == 8


def test_the_epoch_table_shows_the_weight_average_once_it_starts():
    from rich.console import Console

    from fercli import console

    screen = Console(record=True, width=150)
    reporter = console.RichReporter()
    original, console.err = console.err, screen
    row = {"train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.1, "seconds": 1.0}
    try:
        reporter.start({"model": "vgg", "params": 1e6, "device": "cpu", "train": 10, "val": 2, "epochs": 3,
                        "start_epoch": 0, "swa": True})
        reporter.epoch({"epoch": 1, **row, "swa_val_acc": ""})
        reporter.epoch({"epoch": 2, **row, "swa_val_acc": 0.7123})
    finally:
        console.err = original
    header, first, second = screen.export_text().splitlines()[1:4]
    assert header.split()[-1] == "swa_val_acc" and first.split()[-1] == "1.0" and second.split()[-1] == "71.23%"


def test_init_starts_from_a_checkpoints_weights_and_refuses_another_model(tmp_path, fer_folders, trained_checkpoint):
    import pytest

    from fercli.errors import ConfigError

    base = tiny_overrides(fer_folders, tmp_path / "runs", epochs=1) + ["optim.lr=1e-9", "optim.warmup_epochs=0"]
    run_dir, _ = train(load_config(None, base + [f"train.init={trained_checkpoint}"]), tmp_path / "runs", "tuned")
    start, tuned = read_checkpoint(trained_checkpoint), read_checkpoint(run_dir / "best.pt")
    # With a vanishing learning rate the conv weights stay the starting ones (BatchNorm statistics still move).
    for name, weight in start["state_dict"].items():
        if name.endswith("weight") and weight.ndim == 4:
            assert torch.allclose(tuned["state_dict"][name], weight, atol=1e-6), name
    assert tuned["preprocess"] == start["preprocess"]
    wider = base + [f"train.init={trained_checkpoint}", "model.args={widths: [8, 8], depth: 1, dropout: 0.0}"]
    with pytest.raises(ConfigError, match="train.init: .* set model.name and model.args"):
        train(load_config(None, wider), tmp_path / "runs", "wider")
    with pytest.raises(ConfigError, match="train.init: checkpoint not found"):
        train(load_config(None, base + [f"train.init={tmp_path / 'none.pt'}"]), tmp_path / "runs", "missing")


def test_weight_average_is_the_mean_of_the_learnt_weights_only():
    from fercli.train.averaging import WeightAverage

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    average, seen = WeightAverage(), []
    for step in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(float(step * step))  # 0, 1, 4: mean 5/3
        net[1].running_mean.fill_(10.0 + step)
        average.add(net)
        seen.append(step * step)
    assert average.count == 3 and "1.running_mean" not in average.state
    assert torch.allclose(average.state["0.weight"], torch.full((2, 2), sum(seen) / 3))
    again = WeightAverage(average.to_dict())  # what last.pt keeps for a resume
    model = again.averaged_model(net)
    assert torch.allclose(model[0].bias, torch.full((2,), 5 / 3)) and net[0].bias[0].item() == 4.0  # net untouched


def test_batchnorm_statistics_are_measured_again_on_the_centre_crops():
    from fercli.model.views import tta_views
    from fercli.train.averaging import recompute_batchnorm
    from fercli.model.preprocess import Preprocess

    pre = Preprocess(image_size=8, input_size=6, channels=1, mean=0.5, std=0.25)
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(1))
    model[0].running_mean.fill_(3.0)
    recompute_batchnorm(model, images, pre, torch.device("cpu"), batch_size=16)
    (view,) = tta_views(images, pre, "none")
    assert torch.allclose(model[0].running_mean, view.mean().reshape(1), atol=1e-4)
    # the mean of the batches' variances: the whole set's, less the small spread of the batch means
    assert torch.allclose(model[0].running_var, view.var().reshape(1), rtol=0.05)
    assert model[0].momentum == 0.1 and not model.training


def test_save_period_keeps_every_nth_epoch_as_a_checkpoint(tmp_path, fer_folders):
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=4) + ["train.save_period=2"])
    run_dir, state = train(cfg, tmp_path / "runs", "kept")
    assert sorted(p.name for p in run_dir.glob("epoch*.pt")) == ["epoch2.pt", "epoch4.pt"]
    kept = torch.load(run_dir / "epoch2.pt", weights_only=True)
    assert kept["metrics"]["epoch"] == 2 and kept["metrics"]["val_acc"] == state.history[1]["val_acc"]
    assert load_model(run_dir / "epoch4.pt", torch.device("cpu")).model is not None
    with pytest.raises(ConfigError, match="train.save_period"):
        load_config(None, ["train.save_period=-1"])


def test_weight_averaging_saves_swa_pt_and_resumes_to_the_uninterrupted_average(tmp_path, fer_folders):
    cfg = load_config(None, tiny_overrides(fer_folders, tmp_path / "runs", epochs=3) + ["train.swa_start=2"])
    full_dir, state = train(cfg, tmp_path / "runs", "full")
    assert state.history[0]["swa_val_acc"] == "" and 0 <= state.history[2]["swa_val_acc"] <= 1
    swa = torch.load(full_dir / "swa.pt", weights_only=True)
    assert swa["metrics"]["swa_epochs"] == 2 and swa["metrics"]["val_acc"] == state.history[2]["swa_val_acc"]
    assert 0.05 < swa["temperature"] < 20  # calibrated like best.pt
    assert load_model(full_dir / "swa.pt", torch.device("cpu")).model is not None
    part_dir = new_run_dir(tmp_path / "runs", "part")
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, load_dataset(cfg.data), part_dir, torch.device("cpu"), StopAfter(2))
    train(cfg, tmp_path / "runs", resume={"dir": part_dir})
    resumed = torch.load(part_dir / "swa.pt", weights_only=True)
    for key in swa["state_dict"]:
        assert torch.allclose(swa["state_dict"][key].float(), resumed["state_dict"][key].float(), atol=1e-5), key
