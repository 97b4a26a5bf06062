"""All Rich output. Results go to stdout; progress, logs and errors go to stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.progress import Progress

out = Console(emoji=False)  # results; emoji=False: a file named "a:smile:.jpg" stays that name
err = Console(stderr=True, emoji=False)  # progress, messages, errors
WHOLE_TABLE = 400  # columns a table may take in a file or pipe

EPOCH_COLUMNS = [("epoch", 5, "d"), ("train_loss", 10, ".4f"), ("train_acc", 9, ".2%"), ("val_loss", 8, ".4f"),
                 ("val_acc", 7, ".2%"), ("lr", 9, ".2e"), ("seconds", 7, ".1f")]
SWA_COLUMN = ("swa_val_acc", 11, ".2%")  # with train.swa_start: the weight average's validation accuracy


# Messages carry file names and user input: printed literally, so "[red]holiday.jpg" stays that name and a
# path holding "[/b]" cannot break Rich's markup parser. Only fer's own prefixes are markup.


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def info(message: str) -> None:
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def result_line(text: str) -> None:
    """One line of results on stdout, printed literally."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def bar(*columns) -> Progress:
    """A progress bar on stderr, gone when done, only where stderr is a terminal (no stray lines in logs). It leaves
    stdout alone: Rich's default would route results printed meanwhile (JSON lines piped to a file) into the bar."""
    from rich.progress import Progress

    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal, redirect_stdout=False,
                    redirect_stderr=False)


class RichReporter:
    """Training progress: a live bar per epoch and one aligned table row per finished epoch."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None
        self.epochs = 0
        self.current = 1  # the epoch being trained, shown on the bar
        self.columns = EPOCH_COLUMNS

    def start(self, info_: dict) -> None:
        self.epochs = info_["epochs"]
        self.current = info_["start_epoch"] + 1
        self.columns = EPOCH_COLUMNS + [SWA_COLUMN] if info_.get("swa") else EPOCH_COLUMNS
        err.print(
            f"[bold]{info_['model']}[/] ({info_['params'] / 1e6:.2f} M params) on {info_['device']}: "
            f"{info_['train']:,} train / {info_['val']:,} val images, {info_['epochs']} epochs"
            + (f", resuming after epoch {info_['start_epoch']}" if info_["start_epoch"] else ""),
            highlight=False,
        )
        err.print(" ".join(name.rjust(width) for name, width, _ in self.columns), style="bold", highlight=False)

    def batch(self, done: int, total: int, loss: float, acc: float, ips: float) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if self.progress is None:
            self.progress = bar(
                TextColumn(f"[cyan]epoch {self.current}/{self.epochs}"), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}"),
                TextColumn("acc {task.fields[acc]:.1%}"), TextColumn("{task.fields[ips]:.0f} img/s"),
                TimeElapsedColumn(), TimeRemainingColumn(),
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=total, loss=0.0, acc=0.0, ips=0.0)
        self.progress.update(self.task, completed=done, loss=loss, acc=acc, ips=ips)

    def validating(self) -> None:
        """The epoch's steps are done; the bar says the validation pass is running."""
        if self.progress is not None:
            self.progress.update(self.task, description="validating")

    def epoch(self, row: dict) -> None:
        self.current = row["epoch"] + 1
        self._stop_bar()
        err.print(" ".join(f"{row[name]:>{width}{spec if row[name] != '' else ''}}" for name, width, spec in self.columns),
                  highlight=False)

    def message(self, text: str) -> None:
        self._stop_bar()
        info(text)

    def _stop_bar(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def make_table(title: str, columns: list[str], rows: list[list], **kwargs) -> Table:
    table = Table(title=escape(title), title_justify="left", **kwargs)
    for i, column in enumerate(columns):
        table.add_column(escape(column), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[escape(str(cell)) for cell in row])
    return table


def show(table: Table) -> None:
    """A results table on stdout: as wide as the terminal; into a file or pipe as wide as the table needs (Rich
    would fold it into 80 columns, cutting file and model names short)."""
    if out.is_terminal:
        out.print(table)
        return
    if isinstance(table.title, str):  # a title (a photo's path) would still be folded to the table's width
        title = Text.from_markup(table.title, emoji=False)
        title.no_wrap, title.overflow = True, "ignore"
        table.title = title
    Console(emoji=False, width=WHOLE_TABLE).print(table)


class WorkProgress:
    """A bar for a long batch job (scoring a split, drawing a grid): items done of a known total, time left.
    Use as ``with WorkProgress("scoring", total) as bar: ... bar.advance(n)``."""

    def __init__(self, label: str, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn())
        self.task = self.progress.add_task(escape(label), total=total)

    def __enter__(self) -> WorkProgress:
        self.progress.start()
        return self

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def __exit__(self, *exc) -> None:
        self.progress.stop()


class FrameProgress:
    """A bar for long frame-by-frame work (videos): frames done, frames/s, time left when the total is known, and what
    the last analysed frame shows (a webcam in a terminal: the expression now)."""

    def __init__(self, label: str, total: int | None):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[fps]:.1f} frames/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[now]}"))
        self.task = self.progress.add_task(escape(label), total=total or None, fps=0.0, now="")
        self.progress.start()

    def update(self, done: int, fps: float, now: str | None = None) -> None:
        """``now``: the last analysed frame's faces in a few words; None keeps the previous."""
        fields = {"fps": fps} if now is None else {"fps": fps, "now": escape(now)}
        self.progress.update(self.task, completed=done, **fields)

    def close(self) -> None:
        self.progress.stop()


class BatchProgress:
    """Progress of a long batch job over many inputs (``fer predict --ray``): inputs done of the total, faces/s and
    time left; a bar on a terminal, and a line every ``every_s`` seconds where stderr is a log file (a cluster job)."""

    def __init__(self, label: str, total: int, every_s: float = 30.0):
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.clock, self.label, self.total, self.every_s = time.monotonic, label, total, every_s
        self.start = self.last_line = self.clock()
        self.done = self.faces = 0
        self.progress = bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]:.1f} faces/s"), TimeElapsedColumn(), TimeRemainingColumn())
        self.task = self.progress.add_task(escape(label), total=total, rate=0.0)
        self.progress.start()

    def advance(self, inputs: int, faces: int) -> None:
        self.done, self.faces = self.done + inputs, self.faces + faces
        now = self.clock()
        rate = self.faces / max(now - self.start, 1e-9)
        self.progress.update(self.task, completed=self.done, rate=rate)
        if not err.is_terminal and now - self.last_line >= self.every_s:
            self.last_line = now
            left = (self.total - self.done) * (now - self.start) / max(self.done, 1)
            info(f"{self.label}: {self.done} of {self.total} inputs, {rate:.1f} faces/s, {left / 60:.0f} min left")

    def close(self) -> None:
        self.progress.stop()
