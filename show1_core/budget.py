"""Memory a stage needs, estimated before it runs: its weights, and the peak of its activations.

The activation estimate of a UNet call is linear in the elements of its first-level activation
(`activation_elements` x videos in the call), plus, where weights are cast as they are used (fp8 or
bf16 storage, ComfyUI's partial loads), the temporaries of the largest layers. The coefficients
were fitted to the real-size measurements of `benchmarks/real_size.py` (the real hub configs,
random weights, one step at the published size; `benchmarks/BENCH.md`); the tests hold the
estimate to those measurements. They were measured on CPU kernels (no GPU was available), whose
attention and convolutions keep their temporaries per call as the GPU kernels do.

`plan_cascade` adds it up for the whole cascade under each offload policy, so the CLI and the nodes
can refuse what cannot fit before any weight moves, and say which lever makes it fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import DoesNotFit
from .models.unet import Show1UNet
from .models.vae import AutoencoderKL
from .precision import Precision, element_size, is_fp8

# bytes of peak activation per element of the first-level activation, per byte of the compute dtype
CALL_BYTES_PER_ELEMENT = {"if": 13.9, "modelscope": 1.58}
# cast temporaries, in units of the largest parameter tensor in the compute dtype
CAST_LAYERS = {"if": 1.67, "modelscope": 2.88, "t5": 1.3, "clip": 2.9}
# VAE: bytes per element of one frame's first-level activation (frames x H x W x ch0), per byte of the
# compute dtype: k_frames per frame of the chunk plus k_fixed once
VAE_ENCODE, VAE_DECODE = (5.71, 0.17), (4.27, 3.1)
GIB = 2 ** 30


def largest_parameter(module: torch.nn.Module) -> int:
    """Elements of the largest weight a layer casts at once (embedding tables are looked up by row)."""
    return max((m.weight.numel() for m in module.modules()
                if getattr(m, "weight", None) is not None and m.weight.dim() >= 2 and not hasattr(m, "num_embeddings")),
               default=0)


def weight_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def casts(module: torch.nn.Module) -> bool:
    """Whether the module's layers cast their weights (storage in another dtype than compute)."""
    return any(p.dtype != module.compute_dtype for p in module.parameters() if p.dim() >= 2)


CPU_ACTIVATION_ELEMENTS = 1 << 22
# Share of a GPU's total memory one UNet call's activations may take. A property of the card, not of
# the moment: what happens to be free never decides how a stage splits its batch.
GPU_CALL_SHARE = 0.25


def activation_budget(device: torch.device, unet: Show1UNet) -> int:
    """How many elements of first-level activation (`activation_elements`) one UNet call may hold.

    Calls above it are split (the guidance pair, then windows) into several calls with the same
    arithmetic, so memory is set by this bound, not by how many windows a stage has. The bound
    depends only on the device: on the CPU it is small (larger batches gain nothing, the kernels
    are compute-bound); on a GPU it is a fixed share of the card's memory by the estimate of
    `unet_call_bytes`. Free memory never enters it: a split that followed what is free would change
    the batch shapes, and with them the rounding of the video, from run to run. The stage asks its
    model manager for the memory of the chosen split before it starts.
    """
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        per_element = CALL_BYTES_PER_ELEMENT[unet.config.family] * element_size(unet.compute_dtype)
        return max(CPU_ACTIVATION_ELEMENTS, int(total * GPU_CALL_SHARE // per_element))
    return CPU_ACTIVATION_ELEMENTS


def unet_call_bytes(unet: Show1UNet, frames: int, height: int, width: int, videos: int = 1,
                    cast: bool | None = None) -> int:
    """Peak activation bytes of one call of `unet` on `videos` videos of frames x height x width."""
    size = element_size(unet.compute_dtype)
    family = unet.config.family
    activations = CALL_BYTES_PER_ELEMENT[family] * unet.activation_elements(frames, height, width) * videos * size
    cast = casts(unet) if cast is None else cast
    return int(activations + (CAST_LAYERS[family] * largest_parameter(unet) * size if cast else 0))


def vae_call_bytes(vae: AutoencoderKL, frames: int, height: int, width: int, direction: str = "both") -> int:
    """Peak activation bytes of encoding ("encode"), decoding ("decode") or either ("both") `frames`
    frames of height x width at once."""
    per_frame = height * width * vae.config.block_out_channels[0] * element_size(vae.compute_dtype)
    factors = {"encode": [VAE_ENCODE], "decode": [VAE_DECODE], "both": [VAE_ENCODE, VAE_DECODE]}[direction]
    return int(max(k * frames + k0 for k, k0 in factors) * per_frame)


def text_call_bytes(model: torch.nn.Module) -> int:
    """Text encoders run 2 x 77 tokens: their peak is the cast of their largest layers (fp32)."""
    kind = "clip" if hasattr(model, "text_model") else "t5"
    return int(CAST_LAYERS[kind] * largest_parameter(model) * element_size(torch.float32))


@dataclass(frozen=True)
class StageNeed:
    """What one step of the cascade holds at its peak: the weights of its models and activations.
    A `transient` step's models are dropped when it ends, whatever the offload policy (T5)."""

    name: str
    weights: int
    activations: int
    transient: bool = False

    @property
    def peak(self) -> int:
        return self.weights + self.activations


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


@dataclass(frozen=True)
class CascadePlan:
    """The cascade's peak on one device under each offload policy."""

    needs: tuple[StageNeed, ...]
    resident: bool = False  # every model's weights stay on the device (the CPU: it is the offload device)

    def peak(self, offload: str) -> int:
        """keep: every model stays, so all weights plus the largest activation; stage / window: one
        stage's models at a time (windows offload more often, but the peak is a window's)."""
        transient = max((n.peak for n in self.needs if n.transient), default=0)
        kept = [n for n in self.needs if not n.transient]
        if offload == "keep" or self.resident:
            return max(transient, sum(n.weights for n in kept) + max(n.activations for n in kept))
        return max(transient, max(n.peak for n in kept))

    def describe(self) -> str:
        return ", ".join(f"{n.name} {gib(n.weights)} weights + {gib(n.activations)} activations" for n in self.needs)


OFFLOADS = ("keep", "stage", "window")


def require_fit(plans: dict[str, CascadePlan], chosen: tuple[str, str], free: int, where: str,
                levers: dict[str, str], text_elsewhere: dict[str, CascadePlan] | None = None) -> None:
    """Refuse a run whose estimate exceeds `free` bytes before any weight loads. `plans` maps a
    weight dtype to its plan; `chosen` is (weight dtype, offload); `levers` names the flag of each
    lever; `text_elsewhere` (optional) holds the plans with the text encoder on another device,
    lever `levers["text"]`. The message gives the figures, and the levers that make it fit (the
    fewest, lossless ones first), or says none does."""
    weights, offload = chosen
    need = plans[weights].peak(offload)
    if need <= free:
        return
    candidates = {**{(w, False): p for w, p in plans.items()}, **{(w, True): p for w, p in (text_elsewhere or {}).items()}}
    options = [(w, o, moved, plan.peak(o)) for (w, moved), plan in candidates.items() for o in OFFLOADS
               if o == offload or not plan.resident]
    order = list(plans)

    def cost(option):  # fewest levers changed, the lossless ones (offload, text device) before the weights
        w, o, moved, _ = option
        return (w != weights) + (o != offload) + moved, w != weights, moved, OFFLOADS.index(o), order.index(w)

    fitting = sorted((option for option in options if option[3] <= free), key=cost)
    head = (f"the run needs about {gib(need)} on {where} ({plans[weights].describe()}; weights "
            f"{weights}, offload {offload}), but {gib(free)} are free")
    if fitting:
        w, o, moved, peak = fitting[0]
        change = [f"{levers['offload']} {o}" if o != offload else "", levers["text"] if moved else "",
                  f"{levers['weights']} {w}" if w != weights else ""]
        raise DoesNotFit(f"{head}; it fits with {' and '.join(c for c in change if c)} (about {gib(peak)})")
    smallest = min(peak for *_, peak in options)
    every = [f"{levers['offload']} window", levers["text"] if text_elsewhere else "", f"{levers['weights']} fp8_e4m3fn"]
    raise DoesNotFit(f"{head}; even with {' and '.join(c for c in every if c)} it needs about {gib(smallest)}: "
                     f"{levers['smaller']}")


def free_bytes(device: torch.device) -> int | None:
    """Memory free for a run on `device`, counted as ComfyUI counts it: on a GPU what the driver has
    free plus what PyTorch's allocator holds reserved but unused (it hands that out first); on the
    CPU the system's available memory (None where it cannot be read)."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        stats = torch.cuda.memory_stats(device)
        return free + stats.get("reserved_bytes.all.current", 0) - stats.get("active_bytes.all.current", 0)
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def scaled_weights(module: torch.nn.Module, precision: Precision) -> int:
    """Weight bytes of a (meta) model once stored in `precision` (1-D tensors stay in the compute
    dtype under fp8 storage, as the loader keeps them)."""
    total = 0
    fp8 = is_fp8(precision.storage)
    for p in module.parameters():
        dtype = precision.compute if fp8 and p.dim() < 2 else precision.storage
        total += p.numel() * element_size(dtype)
    return total
