"""Device, precision and seeding: the parts of a run that depend on the machine."""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32" or "bf16"
    sequence_path: str  # "packed" or "padded"

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else cpu_name()
        return f"{self.device.type} ({name}), {self.precision}, {self.sequence_path} sequences"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "cpu"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: where oneDNN runs bf16 LSTMs fast. Elsewhere bf16 is emulated (slow)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_runtime(device: str = "auto", precision: str = "auto", sequence_path: str = "auto") -> Runtime:
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA GPU (see README: GPU install)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps was asked for, but this machine has no MPS backend")
    if precision == "auto":
        if device == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        elif device == "cpu":
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
        else:
            precision = "fp32"
    elif precision == "bf16" and device == "cpu" and not cpu_has_native_bf16():
        # oneDNN has no bf16 LSTM primitive for such CPUs (AVX2 only, e.g. AMD Zen 2): measured,
        # the first forward fails with "could not create a primitive descriptor".
        raise UserError(f"--precision bf16 needs a CPU with AVX512-BF16 or AMX; this one ({cpu_name()}) has "
                        "neither: use --precision fp32 (or auto, which picks it here)")
    if sequence_path == "auto":
        # cuDNN wants packed sequences; the CPU's fast bf16 kernels only take padded input.
        sequence_path = "packed" if device == "cuda" else "padded"
    return Runtime(torch.device(device), precision, sequence_path)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all CUDA devices too: torch.manual_seed covers them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
