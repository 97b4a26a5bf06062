"""The ``fer`` command line: thin Typer wrappers over the library. Heavy imports live inside commands."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fercli.choices import DETECT_SIZE, MIN_FACE, MIN_SCORE, SEGMENT_S, TTA, DetectorName, Faces, Labels

# Typer's plain help writes an argument's Python type after its metavar ("[KEY=VALUE]... <list[str]>"); the
# metavars below say what to type, so arguments show only those.
typer.core.TyperArgument.display_type_rich = lambda self, ctx: None

app = typer.Typer(
    help="Facial expression recognition: train, evaluate, visualize, predict and export.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,  # fer --install-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    # Plain help text: Typer's Rich help formatter imports rich.markdown and markdown-it, which cost
    # 0.1-0.2 s on every --help; results and progress still go through Rich.
    rich_markup_mode=None,
)

# What the base install leaves out (it predicts and serves on onnxruntime): a command that needs it says which extra.
TRAINING_STACK = {"torch", "pandas", "sklearn", "matplotlib"}

DeviceOpt = Annotated[str, typer.Option("--device", metavar="DEVICE", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")]
DataOpt = Annotated[Optional[str], typer.Option("--data", metavar="DATA", help="Dataset folder or csv (default: the checkpoint's training data).")]
CheckpointOpt = Annotated[Optional[list[Path]], typer.Option("--checkpoint", "-c", metavar="MODEL", help="Checkpoint(s) or shipped model names (fer2013, ferplus); several are ensembled. Default: the shipped fer2013 model.")]
SplitOpt = Annotated[str, typer.Option("--split", metavar="SPLIT", help="train, val, test (test = PrivateTest for FER-2013) or all (every image).")]


def friendly_errors(command):
    """Turn domain errors into one red line and an exit code; a traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from fercli.errors import FerError

        debug = kwargs.get("debug", False)
        try:
            return command(*args, **kwargs)
        except FerError as exc:
            if debug:
                raise
            from fercli import console

            console.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            from fercli import console

            console.error("interrupted")
            raise typer.Exit(130) from None
        except OSError as exc:  # a path fer could not create, read or write that no check caught: say which
            if debug or not exc.filename:
                raise
            from fercli import console

            console.error(f"{os.path.abspath(exc.filename)}: {exc.strerror or exc}; {os_error_hint(exc.errno)}")
            raise typer.Exit(1) from None
        except ModuleNotFoundError as exc:
            if debug or exc.name not in TRAINING_STACK:
                raise
            from fercli import console

            console.error(f"fer {command.__name__.replace('evaluate', 'eval')} needs {exc.name}, part of the training tools "
                          "(PyTorch, pandas, scikit-learn, matplotlib): pip install \"fercli[train]\"")
            raise typer.Exit(1) from None

    return wrapper


def os_error_hint(errno_code: int | None) -> str:
    import errno

    if errno_code in (errno.EEXIST, errno.ENOTDIR):
        return "a file stands where a folder is needed; choose another path"
    if errno_code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a place you can write to"
    if errno_code == errno.ENOSPC:
        return "free some space and run it again"
    return "check the path and run it again"


@app.command(context_settings={"allow_extra_args": False})
@friendly_errors
def train(
    overrides: Annotated[Optional[list[str]], typer.Argument(metavar="KEY=VALUE", help="KEY=VALUE overrides, e.g. train.epochs=3 optim.lr=0.05.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", metavar="RECIPE", help="Recipe: a YAML file, or the name of one that ships with fer (quick, seed, fer2013, fer_vgg, ferplus, ...).")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", metavar="RUN", help="Run folder (or its last.pt) to continue, from any directory.")] = None,
    data: Annotated[Optional[str], typer.Option("--data", metavar="DATA", help="Dataset folder or csv (the same as data.root=PATH).")] = None,
    project: Annotated[Optional[Path], typer.Option("--project", metavar="DIR", help="Folder for run folders (the same as train.project=DIR; default runs/train).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print only a JSON summary (run folder, epochs, best validation accuracy) to stdout.")] = False,
    device: DeviceOpt = "",
    debug: DebugOpt = False,
) -> None:
    """Train a model; writes runs/train/<name>/ (config, metrics.csv, curves.png, best.pt, last.pt).

    \b
    Example: fer train --config quick --data ../shared/data/fer2013 train.epochs=3
    """
    from fercli.commands.train import run_training

    extra = ([f"data.root={data}"] if data else []) + ([f"train.project={project}"] if project else [])
    summary = run_training(config_path=config, overrides=extra + list(overrides or []), resume=resume, device_name=device)
    if summary is not None:
        # The run folder is the last line on stdout, so scripts can pick it up either way.
        print(json.dumps(summary) if json_ else summary["run"])


@app.command("eval")
@friendly_errors
def evaluate(
    checkpoint: CheckpointOpt = None,
    data: DataOpt = None,
    split: SplitOpt = "test",
    tta: Annotated[TTA, typer.Option("--tta", help="Test-time augmentation (.onnx files: none or flip).")] = TTA.none,
    labels: Annotated[Optional[Labels], typer.Option("--labels", help="fer2013: the dataset's labels; ferplus: FER+'s crowd majority (votes shipped with fer for FER-2013's Kaggle folders; Microsoft's fer2013new.csv beside a fer2013.csv; images without a majority among the model's classes are left out, and counted). Default: what the model was trained on.", show_default=False)] = None,
    detect: Annotated[bool, typer.Option("--detect", help="The images are photos: find each one's largest face as fer predict does (detector, alignment, framing) and score its crop; a photo with no face found counts as wrong (accuracy on the faces found is shown beside). Crops are cached per dataset.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print only metrics.json to stdout.")] = False,
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Name of the runs/eval/ folder.")] = "exp",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, metavar="N", help="Images per forward pass.")] = 512,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """Evaluate checkpoint(s) on a split: metric tables, confusion matrix, calibration; writes runs/eval/<name>/.

    \b
    Example: fer eval --data ../shared/data/fer2013 --tta tencrop --labels ferplus

    \b
    Photos of faces, one folder per class: fer eval --data my_photos/ --split all --detect
    """
    from fercli.commands.eval import run_eval

    run_eval(checkpoints=checkpoint, data=data, split=split, tta=tta, as_json=json_, name=name, batch_size=batch_size, device_name=device,
             labels_from=labels, detect=detect)


@app.command()
@friendly_errors
def visualize(
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=400, metavar="N", help="Number of images in the grid (a 20x20 grid at most).")] = 16,
    checkpoint: CheckpointOpt = None,
    data: DataOpt = None,
    split: SplitOpt = "test",
    seed: Annotated[int, typer.Option("--seed", min=0, metavar="N", help="Sample seed (same seed, same images).")] = 0,
    errors: Annotated[bool, typer.Option("--errors", help="Only wrong predictions.")] = False,
    pair: Annotated[Optional[str], typer.Option("--pair", metavar="TRUE:PRED", help="Only this true:pred confusion, e.g. angry:sad.")] = None,
    least_confident: Annotated[bool, typer.Option("--least-confident", help="The images the model is least sure of.")] = False,
    out: Annotated[Optional[Path], typer.Option("--output", "-o", "--out", metavar="FILE", help="Picture to write: .png, .jpg, .pdf or .svg (default: a new file in runs/visualize/).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing an existing --output file.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print only a JSON summary (picture path, images, how many right) to stdout.")] = False,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """Draw a grid of images titled true -> pred (green right, red wrong).

    \b
    Example: fer visualize -n 16 --errors --data ../shared/data/fer2013 -o errors.png
    """
    from fercli.commands.visualize import run_visualize

    summary = run_visualize(n=n, checkpoints=checkpoint, data=data, split=split, seed=seed, errors=errors, pair=pair,
                            least_confident=least_confident, out=out, overwrite=overwrite, device_name=device)
    print(json.dumps(summary) if json_ else summary["output"])


@app.command()
@friendly_errors
def predict(
    inputs: Annotated[Optional[list[str]], typer.Argument(metavar="PHOTO|VIDEO|FOLDER|GLOB|URL", help="Photos, videos (.mp4, .mov, .avi, .mkv, .3gp, ...; animated GIFs too), folders (recursive), globs, or addresses (https://.../photo.jpg, .../clip.mp4, rtsp://camera/stream).", show_default=False)] = None,
    source: Annotated[Optional[str], typer.Option("--source", metavar="CAMERA", help="Read camera N (0: the first webcam), or a stream's address (rtsp://...), until Ctrl-C, like a video.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", metavar="MODEL", help="A .pt checkpoint (PyTorch), an .onnx export (onnxruntime, CPU), or a shipped model: fer2013 (the default, 7 classes) or ferplus (8, trained on FER+ labels).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON object per input on stdout, nothing else.")] = False,
    save: Annotated[Optional[Path], typer.Option("--output", "-o", "--save", metavar="PATH", help="Write annotated images (.jpg, .png) or videos (.mp4, .webm, .avi) to this file or folder.")] = None,
    csv_file: Annotated[Optional[Path], typer.Option("--csv", metavar="FILE", help="Also write a spreadsheet, one row per face of each photo and of each video's analysed frames (and per input without one): file, frame, face, box, label, every class's probability. A rerun with the same file goes on with it, skipping the inputs it holds.")] = None,
    parquet: Annotated[Optional[Path], typer.Option("--parquet", metavar="FILE", help="The same rows as --csv, as a Parquet file (for pandas, pyarrow, DuckDB, Spark; needs pyarrow); resumed the same way.")] = None,
    ray: Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS", help="Run on a Ray cluster: local (start one on this machine), auto (the one `ray start` made here) or its address (ray://HEAD:10001). Inputs must be readable at the same path from every node. Needs pip install \"fercli[ray]\".")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, metavar="N", help="With --ray: analyzers working side by side, one core each (default: the cluster's cores).", show_default=False)] = None,
    segment: Annotated[float, typer.Option("--segment", min=0, metavar="SECONDS", help="With --ray: a video longer than two segments is cut into segments of this many seconds, analysed side by side, its face tracks joined back (0: each video whole).")] = SEGMENT_S,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing --save files, and start --csv and --parquet tables afresh (without it, a rerun goes on with them).")] = False,
    top_k: Annotated[int, typer.Option("--top-k", min=1, metavar="K", help="Show the K most likely emotions.")] = 2,
    detector: Annotated[DetectorName, typer.Option("--detector", help="yunet: a small CNN that also finds eyes, nose and mouth (used to level the eyes; compared in benchmarks/detector.py). haar: OpenCV's older cascade, boxes only.")] = DetectorName.yunet,
    detect_size: Annotated[int, typer.Option("--detect-size", metavar="PIXELS", help="Longest side, in pixels, of the copy the detector looks at; raise it for small faces in big group photos.")] = DETECT_SIZE,
    min_score: Annotated[float, typer.Option("--min-score", metavar="SCORE", help="YuNet's face score threshold (0-1); higher: fewer false faces, more missed ones.")] = MIN_SCORE,
    faces: Annotated[Faces, typer.Option("--faces", help="all faces, or the largest only.")] = Faces.all,
    min_face: Annotated[int, typer.Option("--min-face", min=8, metavar="PIXELS", help="Smallest face side to keep, in the photo's pixels.")] = MIN_FACE,
    no_align: Annotated[bool, typer.Option("--no-align", help="Do not turn face crops to level the eyes.")] = False,
    no_orient: Annotated[bool, typer.Option("--no-orient", help="Photos: look for faces upright only. By default, when no face is found confidently upright, the photo is also tried turned by 90, 180 and 270 degrees (photos stored sideways or upside down without an EXIF tag).")] = False,
    no_small_faces: Annotated[bool, typer.Option("--no-small-faces", help="Photos: skip the closer look for small faces. By default a big photo whose faces are all small (or none) is looked at again at twice the detector's size, for the faces of a group photo.")] = False,
    no_detect: Annotated[bool, typer.Option("--no-detect", help="Treat each whole image as one face crop.")] = False,
    tta: Annotated[TTA, typer.Option("--tta", help="Test-time augmentation per face: flip (default) averages each crop with its mirror image (twice the classifier's work); none skips it; tencrop needs a .pt model.")] = TTA.flip,
    fps: Annotated[float, typer.Option("--fps", min=0, metavar="FPS", help="Videos: analyse this many frames per second (0: every frame).")] = 0.0,
    every: Annotated[int, typer.Option("--every", min=1, metavar="K", help="Videos: analyse every K-th frame (when --fps is 0).")] = 1,
    smooth: Annotated[float, typer.Option("--smooth", min=0, metavar="SECONDS", help="Videos: smooth each face's probabilities over about this many seconds (0: off).")] = 0.5,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """Find faces in photos, videos or a camera (YuNet by default) and classify each face's expression.

    Videos write runs/predict/<name>/ (timeline.csv, summary.json, timeline.png); faces keep a face_id across frames.

    \b
    Example: fer predict examples/astronaut.jpg --top-k 3 -o annotated/
    """
    from fercli.commands.predict import run_predict
    from fercli.faces.media import Sampling

    # --source 0 is a camera; anything else given there (rtsp://..., a file) is read as an input, as people write it.
    camera = int(source) if source is not None and source.isdigit() else None
    inputs = [*(inputs or []), *([source] if source is not None and camera is None else [])]
    code = run_predict(inputs=inputs, camera=camera, checkpoint=checkpoint, as_json=json_, save=save, csv_file=csv_file, overwrite=overwrite, top_k=top_k,
                       detector=detector, detect_size=detect_size, min_score=min_score, faces=faces, min_face=min_face,
                       no_detect=no_detect, align=not no_align, orient=not no_orient, small_faces=not no_small_faces, sampling=Sampling(fps=fps, every=every), smooth_s=smooth,
                       device_name=device, tta=tta, parquet=parquet, ray=ray, workers=workers, segment_s=segment)
    raise typer.Exit(code)


@app.command()
@friendly_errors
def serve(
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on; 127.0.0.1 keeps it to this computer.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, metavar="PORT", help="Port to listen on.")] = 8000,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", metavar="MODEL", help="A .pt checkpoint, an .onnx export, or a shipped model: fer2013 (default) or ferplus.")] = None,
    detector: Annotated[DetectorName, typer.Option("--detector", help="yunet (default) or haar.")] = DetectorName.yunet,
    certfile: Annotated[Optional[Path], typer.Option("--certfile", metavar="PEM", help="Serve HTTPS with this certificate (and --keyfile): browsers open the camera only on https:// pages or on this computer's own.")] = None,
    keyfile: Annotated[Optional[Path], typer.Option("--keyfile", metavar="PEM", help="The certificate's private key.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=64, metavar="N", help="Analyzer processes working side by side (default: one per CPU core); 1 analyses in the server's own process.", show_default=False)] = None,
    allow_host: Annotated[Optional[list[str]], typer.Option("--allow-host", metavar="NAME", help="Another name the server answers to (its Host header): bound to this computer it answers only to localhost, 127.0.0.1 and [::1], so no web page can reach it through DNS rebinding.")] = None,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """Serve the web page (photos, and the webcam live) and the HTTP API: POST an image to /v1/predict.

    Example: fer serve, then open http://127.0.0.1:8000 (API docs at /docs).
    """
    from fercli.commands.serve import run_serve

    run_serve(host=host, port=port, checkpoint=checkpoint, detector=detector, certfile=certfile, keyfile=keyfile,
              allow_hosts=tuple(allow_host or ()), workers=workers or os.cpu_count() or 1, device_name=device)


@app.command()
@friendly_errors
def audit(
    data: Annotated[str, typer.Option("--data", metavar="DATA", help="Dataset folder or csv to audit.")],
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Name of the runs/audit/ folder.")] = "exp",
    json_: Annotated[bool, typer.Option("--json", help="Print only the summary as JSON to stdout.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Find images that occur twice (within and across splits), twins with different labels, unreadable files
    and the class balance; writes runs/audit/<name>/ (twins.csv, unreadable.txt, summary.json).

    Example: fer audit --data ../shared/data/fer2013
    """
    from fercli.commands.audit import run_audit

    run_audit(data=data, name=name, as_json=json_)


@app.command()
@friendly_errors
def runs(
    projects: Annotated[Optional[list[Path]], typer.Argument(metavar="DIR", help="Folders holding run folders (default: runs/train).", show_default=False)] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print only a JSON list to stdout.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Where each training run stands: epochs done, best validation accuracy, state, how to resume.

    State: finished, stopped (resume it), not started, or running (last.pt written in the last 10 minutes).

    \b
    Example: fer runs ~/fer-runs
    """
    from fercli.commands.runs import run_runs

    raise typer.Exit(run_runs(projects=list(projects or [Path("runs/train")]), as_json=json_))


@app.command()
@friendly_errors
def export(
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", metavar="MODEL", help="Checkpoint to export (default: the shipped model).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE", help="ONNX file to write (default: the checkpoint's path with .onnx, or _int8.onnx).")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Quantise to 8 bits (faster on CPUs with fast int8 arithmetic); calibrates on training images.")] = False,
    data: Annotated[Optional[str], typer.Option("--data", metavar="DATA", help="Training data for --int8 calibration (default: the checkpoint's training data).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Allow replacing an existing output file.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print only a JSON summary (output file, bytes, int8) to stdout.")] = False,
    device: Annotated[str, typer.Option("--device", metavar="DEVICE", help="Where to load and trace the model: cpu (default), cuda, cuda:N or mps; the ONNX file is the same.")] = "cpu",
    debug: DebugOpt = False,
) -> None:
    """Export a checkpoint to ONNX: fer predict -c model.onnx then runs without PyTorch and starts fast.

    \b
    Example: fer export -c runs/train/exp/best.pt --int8 -o model_int8.onnx
    """
    from fercli.commands.export import run_export

    summary = run_export(checkpoint=checkpoint, output=output, int8=int8, data=data, overwrite=overwrite, device_name=device)
    print(json.dumps(summary) if json_ else summary["output"])


def show_version(value: bool) -> None:
    if value:
        from fercli import __version__

        print(f"fer {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True, help="Print fer's version and exit.")] = False,
) -> None:
    """Facial expression recognition: train, evaluate, visualize, predict and export."""


def main() -> None:
    app(prog_name="fer")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
