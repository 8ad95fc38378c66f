"""Number formats: the dtype a model computes in, and the dtype its weights are stored in.

One table for the CLI, the nodes and the benchmark. Weights may be stored in a narrower format
than the arithmetic (fp8 or bf16 storage, bf16/fp16/fp32 compute, as ComfyUI's UNETLoader offers):
the layers then cast each weight to the compute dtype when they use it (`models.ops`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .errors import InputError

COMPUTE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
COMPUTE_CHOICES = ("auto", *COMPUTE_DTYPES)
WEIGHT_DTYPES = {"default": None, "fp16": torch.float16, "bf16": torch.bfloat16,
                 "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
WEIGHT_CHOICES = tuple(WEIGHT_DTYPES)
FP8_LIMITS = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}  # largest finite values
NAMES = {**{v: k for k, v in COMPUTE_DTYPES.items()}, **{v: k for k, v in WEIGHT_DTYPES.items() if v is not None}}


def dtype_name(dtype: torch.dtype) -> str:
    return NAMES.get(dtype, str(dtype).replace("torch.", ""))


@dataclass(frozen=True)
class Precision:
    """How one model is held: `compute` is the dtype of its arithmetic, `weights` the dtype its
    weights are stored in (None: the compute dtype)."""

    compute: torch.dtype = torch.float32
    weights: torch.dtype | None = None
    text: torch.dtype | None = None  # the text encoders' weight storage (None: as their files hold them)

    @property
    def storage(self) -> torch.dtype:
        return self.weights or self.compute

    def with_weights(self, weights: torch.dtype | None) -> "Precision":
        return dataclasses.replace(self, weights=weights)

    @property
    def casts(self) -> bool:
        """Whether layers cast their weights before use (storage differs from compute)."""
        return self.storage != self.compute

    def __str__(self) -> str:
        if not self.casts:
            return dtype_name(self.compute)
        return f"{dtype_name(self.storage)} weights computed in {dtype_name(self.compute)}"


def default_compute(device: torch.device) -> torch.dtype:
    """bf16 on a GPU that has it, else fp16 on a GPU; fp32 on the CPU (most CPUs emulate bf16 and
    fp16 arithmetic: 0.3 GFLOP/s bf16 against 100 fp32 matrix products on an AVX2 server)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def parse_precision(compute: str, weights: str = "default", device: torch.device | None = None,
                    names: tuple[str, ...] = ("dtype", "weight_dtype", "text_weight_dtype"),
                    text: str = "default") -> Precision:
    """A Precision from the names of the choices ("auto"/"fp32"/..., "default"/"fp8_e4m3fn"/...):
    the UNets compute in `compute` and store their weights in `weights`; the text encoders always
    compute in float32 and store theirs in `text` ("default": as their files hold them)."""
    if compute not in COMPUTE_CHOICES:
        raise InputError(f"{names[0]}: {compute!r} is not one of {', '.join(COMPUTE_CHOICES)}; pick one of those")
    for name, value in ((names[1], weights), (names[-1], text)):
        if value not in WEIGHT_DTYPES:
            raise InputError(f"{name}: {value!r} is not one of {', '.join(WEIGHT_CHOICES)}; pick one of those")
    dtype = COMPUTE_DTYPES.get(compute) or default_compute(device or torch.device("cpu"))
    return Precision(dtype, WEIGHT_DTYPES[weights], WEIGHT_DTYPES[text])


def is_fp8(dtype: torch.dtype | None) -> bool:
    return dtype in FP8_LIMITS


def to_storage(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`tensor` in `dtype`; into fp8 it saturates at the format's largest finite value, where a plain
    cast turns every value beyond it into NaN (e4m3fn has no infinity), which would poison a whole
    layer's output (T5's embedding table holds values beyond 448)."""
    if is_fp8(dtype) and tensor.is_floating_point() and not is_fp8(tensor.dtype):
        limit = FP8_LIMITS[dtype]
        tensor = tensor.clamp(-limit, limit)
    return tensor.to(dtype)


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
