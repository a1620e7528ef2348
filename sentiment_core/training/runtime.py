"""Device, precision and seeding: the parts of a run that depend on the machine.

What each ``--precision`` runs, per device (``Runtime.rnn_dtype`` is logged with every run;
:func:`what_runs` gives each part's dtype, and the GPU check compares it with what ran):

| precision | CPU | CUDA | MPS |
|---|---|---|---|
| fp32 | IEEE fp32 | IEEE fp32 (TF32 off in cuDNN and cuBLAS) | fp32 |
| tf32 | - | TF32 tensor cores in cuDNN RNNs and matmuls | - |
| bf16 | autocast bf16, AVX512-BF16/AMX only | TF32 but the head, which runs in bf16 (*) | - |
| fp16 | - | autocast fp16 with loss scaling (GradScaler) | - |
| auto | bf16 where native, else fp32 | fp16 on tensor-core GPUs, else fp32 | fp32 |

(*) PyTorch's autocast wrapper for cuDNN RNNs (aten/src/ATen/cudnn/AutocastRNN.cpp) casts input,
states and weights to fp16 whatever dtype autocast asked for: "bf16" there would silently be fp16
without loss scaling, where small gradients underflow. So the recurrent layers run outside
autocast, in TF32; the embedding, dropout and the final-state gather are no autocast ops either,
which leaves the head's Linear as the only bf16 part: on CUDA, bf16 is TF32 in all but name, and
fp16 is the fast choice.
"""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # fp32 | tf32 | bf16 | fp16
    sequence_path: str  # "packed" or "padded"
    deterministic: bool = False

    def rnn_dtype(self, cell: str = "lstm") -> str:
        """What ``cell``'s recurrent layers really compute in, short: fp32, tf32, bf16 or fp16
        (logged with every run; :func:`what_runs` has the details)."""
        parts = what_runs(self.device.type, self.precision, cell, self.sequence_path)
        short = {"bfloat16": "bf16", "float16": "fp16"}.get(parts["recurrent layers"])
        return short or ("tf32" if parts["math"] == "TF32" else "fp32")

    @property
    def recurrent_fp32(self) -> bool:
        """Run the recurrent layers outside autocast (CUDA bf16: see the module's note)."""
        return self.device.type == "cuda" and self.precision == "bf16"

    def autocast(self):
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(device_type=self.device.type, dtype=dtype)
        return nullcontext()

    def grad_scaler(self):
        """fp16 needs loss scaling, or small gradients flush to zero."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def apply(self) -> None:
        """Set what torch's backends must know before the first kernel runs (process-wide flags:
        TF32 and determinism are not per-call settings in PyTorch). Both ways: a long-lived process
        (a notebook, a study's worker) that trains a deterministic run and then another one gets
        the second one's flags, not the first one's left over."""
        if self.device.type == "cuda":
            tf32 = what_runs("cuda", self.precision)["math"] == "TF32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        if self.deterministic:
            set_cublas_workspace(os.environ)
            torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = self.deterministic
        torch.use_deterministic_algorithms(self.deterministic, warn_only=True)

    def describe(self, cell: str = "lstm") -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else cpu_name()
        parts = what_runs(self.device.type, self.precision, cell, self.sequence_path)
        head = f", head in {parts['head']}" if parts["head"] != parts["recurrent layers"] else ""
        return (f"{self.device.type} ({name}), {self.precision} (recurrent layers in {self.rnn_dtype(cell)}{head}), "
                f"{self.sequence_path} sequences")


# cuBLAS's deterministic workspace settings (CUDA's docs: "Results reproducibility").
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")


def set_cublas_workspace(environ) -> None:
    """Give cuBLAS a deterministic workspace setting unless ``environ`` has one. cuBLAS reads the
    variable when a handle is made (at a process's first matrix product on a GPU), so it counts
    only if set before that: the training scripts run this before any CUDA work. A value that is
    not one of the two deterministic ones is replaced, not kept (setdefault kept it)."""
    if environ.get("CUBLAS_WORKSPACE_CONFIG") not in CUBLAS_DETERMINISTIC:
        environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC[0]


def what_runs(device_type: str, precision: str, cell: str = "lstm", path: str = "padded") -> dict[str, str]:
    """The dtype each part of the model computes in, for a resolved precision on a device type,
    ``cell`` and sequence ``path``: ``recurrent layers``, ``embedding`` (with dropout and the
    final-state gather: no autocast ops) and ``head`` (the Linear); ``math`` says how float32
    matrix products run (TF32 tensor cores or IEEE); ``loss scaling`` whether a GradScaler runs.
    The GPU check compares the recurrent layers' entry with the dtype its hooks see."""
    recurrent = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision]
    head = {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32")
    if device_type == "cuda" and precision == "bf16":
        recurrent = "float32"  # outside autocast: the module's note
    if device_type == "cpu" and precision == "bf16" and (cell == "gru" or (cell == "lstm" and path == "packed")):
        # Seen by the GPU check's hooks: CPU autocast leaves nn.GRU in float32, and nn.LSTM on a
        # packed sequence too (oneDNN's bf16 LSTM takes padded input only); tanh RNNs run bf16.
        recurrent = "float32"
    tf32 = device_type == "cuda" and precision in ("tf32", "bf16")
    return {"recurrent layers": recurrent, "embedding": "float32", "head": head,
            "math": "TF32" if tf32 else "IEEE", "loss scaling": "yes" if precision == "fp16" else "no"}


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """Per-epoch loss totals: float64 on the device, except on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU as figures should name it. Virtual machines may show only "AMD EPYC" as the model
    name, which covers Zen 2 to Zen 5 (2-3x apart per core in this project's epochs): for AMD the
    family, model and microarchitecture follow, e.g. "AMD EPYC (family 26 model 2: Zen 5)"."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if name is None:
        import platform

        return platform.processor() or "cpu"
    if fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family", "").isdigit():
        family, model = int(fields["cpu family"]), int(fields.get("model", "0") or 0)
        generation = amd_microarchitecture(family, model, fields.get("flags", "").split())
        return f"{name} (family {family} model {model}{f': {generation}' if generation else ''})"
    return name


def amd_microarchitecture(family: int, model: int, flags: list[str]) -> str | None:
    """AMD's microarchitecture from /proc/cpuinfo's decimal family: 23 (17h) is Zen to Zen 2
    (Zen 2 from model 30h), 25 (19h) Zen 3 or Zen 4 (Zen 4 has AVX-512), 26 (1Ah) Zen 5."""
    if family == 23:
        return "Zen 2" if model >= 0x30 else "Zen or Zen+"
    if family == 25:
        return "Zen 4" if "avx512f" in flags else "Zen 3"
    if family == 26:
        return "Zen 5"
    return None


def cpu_has_native_bf16(flags: str | None = None) -> bool:
    """AVX512-BF16 or AMX: where oneDNN runs bf16 LSTMs fast. Elsewhere oneDNN has no bf16 LSTM."""
    if flags is None:
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def cuda_precision(requested: str, capability: tuple[int, int], native_bf16: bool) -> str:
    """The precision a CUDA run uses. ``auto``: fp16 with loss scaling on GPUs with fp16 tensor
    cores (compute capability 7.0 and later), where cuDNN's RNN kernels are fastest, else fp32.
    bf16 only where the GPU has it natively (``is_bf16_supported`` counts emulation unless told
    not to)."""
    if requested == "auto":
        return "fp16" if capability >= (7, 0) else "fp32"
    if requested == "bf16" and not native_bf16:
        raise UserError("--precision bf16: this GPU has no native bf16 (it would be emulated); use fp16 or tf32")
    if requested == "tf32" and capability < (8, 0):
        raise UserError("--precision tf32 needs an Ampere or later GPU (compute capability 8.0); use fp32 or fp16")
    return requested


def cuda_native_bf16(capability: tuple[int, int], is_bf16_supported=None) -> bool:
    """Whether the current GPU has bf16 in hardware, not emulated. ``including_emulation=False``
    says so on the torch releases that have the argument; the older ones that ``torch>=2.4`` also
    allows reject it (TypeError), and there native bf16 is what it reduces to on NVIDIA GPUs:
    compute capability 8.0 (Ampere) or later; ROCm's GPUs have it."""
    is_bf16_supported = is_bf16_supported or torch.cuda.is_bf16_supported
    try:
        return bool(is_bf16_supported(including_emulation=False))
    except TypeError:
        return bool(torch.version.hip) or tuple(capability) >= (8, 0)


def resolve_runtime(device: str = "auto", precision: str = "auto", sequence_path: str = "auto",
                    deterministic: bool = False) -> Runtime:
    if precision not in PRECISIONS:
        raise UserError(f"precision = {precision!r} is not one of: {', '.join(PRECISIONS)}")
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
    if device == "cuda":
        capability = torch.cuda.get_device_capability()
        precision = cuda_precision(precision, capability, cuda_native_bf16(capability))
    elif device == "cpu":
        precision = cpu_precision(precision)
    elif precision not in ("auto", "fp32"):
        raise UserError(f"--precision {precision} on {device}: this project runs fp32 there")
    else:
        precision = "fp32"
    if sequence_path == "auto":
        # cuDNN wants packed sequences; the CPU's fast bf16 kernels only take padded input.
        sequence_path = "packed" if device == "cuda" else "padded"
    return Runtime(torch.device(device), precision, sequence_path, deterministic)


def cpu_precision(requested: str, native_bf16: bool | None = None) -> str:
    """``auto`` on a CPU: what measured faster for its family. bf16 where the CPU has bf16
    instructions (AMX: 58k vs 36k tokens/s fp32; AMD Zen 4 with AVX512-BF16: 55k vs 27k), fp32
    elsewhere (AVX2-only CPUs such as AMD Zen 2 have no oneDNN bf16 LSTM at all)."""
    native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
    if requested == "auto":
        return "bf16" if native else "fp32"
    if requested in ("tf32", "fp16"):
        raise UserError(f"--precision {requested} is for CUDA GPUs; on a CPU use fp32 or bf16 (or auto)")
    if requested == "bf16" and not native:
        # oneDNN has no bf16 LSTM primitive for such CPUs (AVX2 only, e.g. AMD Zen 2): measured,
        # the first forward fails with "could not create a primitive descriptor".
        raise UserError(f"--precision bf16 needs a CPU with AVX512-BF16 or AMX; this one ({cpu_name()}) has "
                        "neither: use --precision fp32 (or auto, which picks it here)")
    return requested


def runtime_of(config) -> Runtime:
    """The runtime a TrainConfig asks for."""
    return resolve_runtime(config.device, config.precision, config.sequence_path, config.deterministic)


def resolved_config(config, runtime: Runtime | None = None):
    """A TrainConfig with device, precision and sequence path resolved, so params say what ran
    (untyped, like runtime_of: config.py imports this module)."""
    runtime = runtime or runtime_of(config)
    return config.replace(device=runtime.device.type, precision=runtime.precision,
                          sequence_path=runtime.sequence_path)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all CUDA devices too: torch.manual_seed covers them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
