"""Resolve the compute device once; everything else receives it as an argument."""

from __future__ import annotations

import ctypes

import torch

from fercli.errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit name must be available."""
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device(name)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError("--device mps: Apple MPS is not available on this machine (use --device cpu or auto)")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise InputError(f"--device {name!r}: unknown device (use auto, cpu, cuda, cuda:N or mps)")


def tune_cpu(device: torch.device, threads: int) -> None:
    """For training on a CPU: flush denormal floats to zero and keep freed memory; then set torch's thread count
    (0 keeps torch's default).

    Weights and Adam moments that decay towards zero become denormal floats, which x86 cores compute many times
    slower (the seed recipe's dead hidden units took its epochs from 120 s to 500 s); flushing them changes
    nothing a model can tell apart. Call it before the first parallel operation: each OpenMP worker copies the
    floating-point mode of the thread that starts it, so set later it reaches the main thread only.
    """
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        keep_freed_memory()
    if threads > 0:
        torch.set_num_threads(threads)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for the next allocation instead of returning it to the kernel.

    Each training step frees and re-allocates the same activation buffers. By default glibc serves the large
    ones with fresh memory mappings and unmaps them on free (and trims its heap), so every step page-faults them
    in again: about 8,000 minor faults a step for the default recipe, which trains 1.09x faster without them on
    the 2-core Xeon (benchmarks/cpu_allocator.py; the seed recipe's smaller steps gain nothing). Linux with
    glibc only; elsewhere it does nothing and returns False.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    # 32 MiB is the largest mmap threshold glibc accepts on 64-bit; the heap then keeps up to 1 GiB unreturned.
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


def autocast_dtype(device: torch.device, cuda_amp: bool, cpu_bf16: bool = False) -> torch.dtype | None:
    """bf16 autocast on CUDA cards (``runtime.amp``), and on CPUs with bf16 matrix units (Intel AMX) when
    asked (``runtime.cpu_bf16``); otherwise fp32.

    CPU bf16 is opt-in: on a 2-core Xeon with AMX it trained quick.yaml 1.5x faster (17.5 vs 26.5 s an
    epoch; the default VGG's step 2.1x) but ended 1.8 and 0.3 points lower on PublicTest in two seeds.
    CPUs without native bf16 would only emulate it, slower than fp32, so they always keep fp32.
    """
    if device.type == "cuda" and cuda_amp and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_bf16 and cpu_has_bf16_units():
        return torch.bfloat16
    return None


def cpu_has_bf16_units() -> bool:
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)  # a private helper: absent in some torch versions
    return bool(check and check())
