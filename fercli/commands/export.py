"""``fer export``: a checkpoint (default: the shipped one) -> an ONNX file beside it, or where --output says."""

from __future__ import annotations

import functools
from pathlib import Path

from fercli import console
from fercli.model.export import export_onnx
from fercli.model.shipped import default_checkpoint


def run_export(*, checkpoint: Path | None, output: Path | None, int8: bool, data: str | None, overwrite: bool,
               device_name: str) -> dict:
    source = checkpoint or default_checkpoint()
    default_output = source.with_name(source.stem + "_int8.onnx") if int8 else source.with_suffix(".onnx")
    calibration = None
    if int8:
        from fercli.data.calibration import calibration_images

        calibration = functools.partial(calibration_images, data=data, warn=console.warn)
    written = export_onnx(source, output or default_output, overwrite=overwrite, calibration=calibration,
                          device_name=device_name)
    return {"output": str(written), "bytes": written.stat().st_size, "int8": int8}
