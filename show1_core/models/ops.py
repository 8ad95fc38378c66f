"""Layer sets: the classes a model builds its layers from.

ComfyUI's own models take their layer classes as a parameter (`operations=` throughout
`comfy/ldm`), so that its model manager can keep some weights off the GPU and cast them layer by
layer (partial "lowvram" loads, fp8 storage, dynamic VRAM). Every Show-1 model takes a layer set
the same way. This module has the two plain-torch sets; the nodes build a third from `comfy.ops`.

A layer set has the layer classes (`Linear`, `Conv2d`, `Conv3d`, `GroupNorm`, `LayerNorm`,
`Embedding`) and `weights(module, like)`: the weight and bias of one of its layers as the layer's
own forward would use them for an input like `like`, for the few places that call a functional op
with a reshaped weight (the temporal convolutions, embedding lookups).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import is_fp8


class TORCH_OPS:
    """Plain torch layers: weights are used as stored (their dtype is the compute dtype)."""

    Linear, Conv2d, Conv3d, GroupNorm, LayerNorm, Embedding = (nn.Linear, nn.Conv2d, nn.Conv3d, nn.GroupNorm,
                                                               nn.LayerNorm, nn.Embedding)

    @staticmethod
    def weights(module: nn.Module, like: torch.Tensor):
        return module.weight, getattr(module, "bias", None)


def cast_like(tensor: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """`tensor` in the dtype and on the device of `like` (no copy when it already is)."""
    if tensor is None:
        return None
    return tensor.to(device=like.device, dtype=like.dtype, non_blocking=True)


def _cast_weights(module: nn.Module, like: torch.Tensor):
    return cast_like(module.weight, like), cast_like(getattr(module, "bias", None), like)


class CastLinear(nn.Linear):
    def forward(self, x):
        return F.linear(x, *_cast_weights(self, x))


class CastConv2d(nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, *_cast_weights(self, x))


class CastConv3d(nn.Conv3d):
    def forward(self, x):
        return self._conv_forward(x, *_cast_weights(self, x))


class CastGroupNorm(nn.GroupNorm):
    def forward(self, x):
        return F.group_norm(x, self.num_groups, *_cast_weights(self, x), self.eps)


class CastLayerNorm(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, *_cast_weights(self, x), self.eps)


class CAST_OPS:
    """Layers that cast their weights to the input's dtype and device when they run: weights stored
    in another format than the arithmetic (fp8, or bf16 on a CPU that computes fp32), outside ComfyUI."""

    Linear, Conv2d, Conv3d, GroupNorm, LayerNorm, Embedding = (CastLinear, CastConv2d, CastConv3d, CastGroupNorm,
                                                               CastLayerNorm, nn.Embedding)
    weights = staticmethod(_cast_weights)


def operations_for(casts: bool) -> type:
    """The plain-torch layer set for a model whose storage dtype differs (`casts`) or not."""
    return CAST_OPS if casts else TORCH_OPS


def lookup(ops, module: nn.Module, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Embedding rows of `ids` in `dtype`. The rows are looked up where the table is stored (fp8
    too, on an offload device too) and only they are moved and cast: T5's 32128 x 4096 table is
    never cast whole. A table ComfyUI patches (LoRA) or has not materialised goes through ComfyUI's
    own cast. fp8 rows are cleaned of non-finite values, as ComfyUI does for its fp8 T5 files."""
    weight = module.weight
    if getattr(module, "weight_function", None) or weight.device.type == "meta":
        weight, _ = ops.weights(module, torch.empty((), dtype=dtype, device=ids.device))
        return F.embedding(ids, weight).to(dtype)
    rows = F.embedding(ids.to(weight.device), weight).to(ids.device, dtype)
    return torch.nan_to_num(rows) if is_fp8(weight.dtype) else rows
