"""``fer train``: resolve config, device, data and run folder, then hand over to ``train.loop.fit``."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from fercli import console
from fercli.model.checkpoint import read_checkpoint
from fercli.config import Config, config_from_dict, load_config, parse_override, save_config, set_dotted
from fercli.data.dataset import load_dataset
from fercli.model.device import resolve_device, tune_cpu
from fercli.train.distributed import broadcast, init_distributed, shutdown
from fercli.train.loop import SilentReporter, fit
from fercli.train.build import build_model, build_optimizer, init_checkpoint, lr_factor
from fercli.errors import ConfigError, OutputError
from fercli.runs import hold_run, new_run_dir

RESUME_OVERRIDABLE = ("train.epochs", "runtime.")


def run_training(*, config_path: Path | None, overrides: list[str], resume: Path | None, device_name: str) -> dict | None:
    """Returns the run folder (None on the non-zero ranks of a torchrun job)."""
    if resume is not None:
        cfg, run_dir, state = prepare_resume(resume, overrides)
    else:
        if config_path is None and not overrides:
            raise ConfigError("give --config RECIPE (a packaged name such as quick, or a YAML file) or --resume RUN_DIR")
        cfg = anchor_paths(load_config(config_path, overrides))
        state = None
    ddp, device_name = init_distributed(device_name or cfg.runtime.device)
    device = resolve_device(device_name)
    tune_cpu(device, cfg.runtime.threads)  # before the data loads: its first parallel operation starts the threads
    data = load_dataset(cfg.data, warn=console.warn)
    if cfg.data.labels == "ferplus":
        from fercli.data.ferplus import ferplus_dataset

        data = ferplus_dataset(data, Path(cfg.data.root), warn=console.warn, soft=cfg.data.targets == "votes")
    elif cfg.data.targets == "mixed":
        from fercli.data.ferplus import mix_vote_targets

        data = mix_vote_targets(data, Path(cfg.data.root), cfg.data.vote_weight, warn=console.info)
    check_recipe(cfg, data.classes)
    check_fits(cfg, len(data.splits["train"]), len(data.classes), resume is None)
    if resume is None and ddp.is_main:
        run_dir = writable(lambda: new_run_dir(cfg.train.project, cfg.train.name or (config_path.stem if config_path else "exp")),
                           "set train.project to a folder you can write to")
    run_dir = broadcast(run_dir if ddp.is_main else None, ddp)
    lock = None
    if ddp.is_main:
        how = "copy the run folder somewhere writable and resume the copy" if resume else "set train.project elsewhere"
        lock = writable(lambda: hold_run(run_dir), how)  # before anything is written: a second trainer stops here
        writable(lambda: save_config(cfg, run_dir / "config.yaml"), how)
        console.info(f"run folder: {run_dir}" + (f" ({ddp.world} processes)" if ddp.world > 1 else ""))
    reporter = console.RichReporter() if ddp.is_main else SilentReporter()
    try:
        fit(cfg, data, run_dir, device, reporter, resume=state, ddp=ddp)
    except OSError as exc:  # a full disk or a folder that went read-only: say where, and how to go on
        done = (f"last.pt holds the last finished epoch; free some space, then fer train --resume {run_dir}"
                if (run_dir / "last.pt").is_file() else "nothing to resume yet; free some space and start again")
        raise OutputError(f"cannot write to {run_dir}: {exc.strerror or exc}; {done}") from None
    except KeyboardInterrupt:
        if (run_dir / "last.pt").is_file():
            reporter.message(f"interrupted: last.pt holds the last finished epoch; continue with fer train --resume {run_dir}")
        else:
            reporter.message("interrupted before the first epoch finished: there is nothing to resume; start it again")
        raise
    finally:
        if ddp.is_main:
            draw_curves(run_dir)
        if lock is not None:
            lock.close()
        shutdown(ddp)
    if not ddp.is_main:
        return None
    return summarize(run_dir)


def writable(make, how: str):
    """``make()``, with a folder that cannot be created or written (read-only, no permission) said in one line."""
    try:
        return make()
    except OSError as exc:
        raise OutputError(f"cannot write to {exc.filename or 'the run folder'}: {exc.strerror or exc}; {how}") from None


def anchor_paths(cfg: Config, base: Path | None = None) -> Config:
    """Data, cache, init and teacher paths made absolute (relative ones read from ``base``, default the working
    directory), so config.yaml and every checkpoint still find them when resumed or evaluated from elsewhere."""

    def absolute(path: str) -> str:
        if not path:
            return path
        expanded = Path(path).expanduser()
        return str((expanded if expanded.is_absolute() else (base or Path.cwd()) / expanded).resolve())

    data = replace(cfg.data, root=absolute(cfg.data.root), cache_dir=absolute(cfg.data.cache_dir))
    train = replace(cfg.train, init=absolute(cfg.train.init), teacher=tuple(absolute(t) for t in cfg.train.teacher))
    return replace(cfg, data=data, train=train)


def check_fits(cfg: Config, train_images: int, num_classes: int, new_run: bool) -> None:
    """Data and settings that would run but cannot make a sensible model: stop before a run folder exists."""
    if train_images < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size}: more than the {train_images} training images, so no "
                          "training step would run; lower it")
    if num_classes < 2:
        raise ConfigError(f"{cfg.data.root}: only {num_classes} class; a classifier needs at least two class folders")
    project = Path(cfg.train.project).expanduser()
    if new_run and project.exists() and not project.is_dir():
        raise ConfigError(f"train.project={cfg.train.project}: a file, not a folder; give a folder for run folders")


def check_recipe(cfg: Config, classes: tuple[str, ...]) -> None:
    """Fail on a bad model, optimizer, schedule or starting checkpoint before a run folder exists."""
    model = build_model(cfg, len(classes))
    build_optimizer(cfg, model)
    lr_factor(cfg, 0.0)
    if cfg.train.init:
        init_checkpoint(cfg.train.init, cfg, classes)


def prepare_resume(resume: Path, overrides: list[str]) -> tuple[Config, Path, dict]:
    last = resume / "last.pt" if resume.is_dir() else resume
    run_dir = last.parent
    if not last.is_file():  # read_checkpoint's hint (omit --checkpoint) does not fit a resume
        raise ConfigError(f"--resume {resume}: no run to continue there (no {last.name}); "
                          "fer runs PROJECT lists the run folders that can be resumed")
    payload = read_checkpoint(last)
    if "train_state" not in payload:
        raise ConfigError(f"{last}: has no training state to resume from (only last.pt has it)")
    for item in overrides:
        if not item.startswith(RESUME_OVERRIDABLE):
            raise ConfigError(f"cannot change {item.split('=')[0]} when resuming: the run's config.yaml fixes it "
                              "(only train.epochs and runtime.* may change)")
    tree = copy.deepcopy(payload["config"])
    for item in overrides:
        set_dotted(tree, *parse_override(item))
    cfg = config_from_dict(tree)
    # Runs written before paths were stored absolute: relative ones were relative to the folder that held the
    # project (runs/train/<name> -> three levels up), wherever fer is run from now.
    origin = run_dir.resolve().parent
    for _part in Path(cfg.train.project).parts if not Path(cfg.train.project).is_absolute() else ():
        origin = origin.parent
    return anchor_paths(cfg, base=origin.resolve()), run_dir, payload


def draw_curves(run_dir: Path) -> None:
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        from fercli.plots import plot_training_curves

        try:
            plot_training_curves(metrics, run_dir / "curves.png")
        except OSError as exc:  # a full disk must not hide the training's own outcome
            console.warn(f"curves.png not written: {exc.strerror or exc}")


def summarize(run_dir: Path) -> dict:
    """The finished run in one line on stderr, and as the dict ``fer train --json`` prints."""
    import pandas as pd

    frame = pd.read_csv(run_dir / "metrics.csv")
    best = frame.loc[frame["val_acc"].idxmax()]
    minutes = frame["seconds"].sum() / 60
    console.info(
        f"best val accuracy {best['val_acc']:.2%} at epoch {int(best['epoch'])}; "
        f"{minutes:.1f} min of training. Results saved to {run_dir}"
    )
    return {"run": str(run_dir), "epochs": int(frame["epoch"].max()), "best_val_acc": round(float(best["val_acc"]), 4),
            "best_epoch": int(best["epoch"]), "minutes": round(float(minutes), 2)}

