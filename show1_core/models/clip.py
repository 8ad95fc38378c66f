"""The CLIP text encoder of show-1-sr2, with the parameter names of its checkpoint
(`text_model.*`, as transformers' `CLIPTextModel` writes them).

Token and position embeddings, pre-norm layers of causal self-attention and an MLP, a final layer
norm; the last hidden states of all 77 positions are the text states of the latent UNet. Like the
published pipeline, it gets no padding mask, only the causal one. Float32 arithmetic, whatever the
weights are stored in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import from_config
from .ops import TORCH_OPS, lookup

ACTIVATIONS = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu,
               "gelu_new": lambda x: F.gelu(x, approximate="tanh")}


@dataclass
class CLIPTextConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5

    @classmethod
    def from_dict(cls, config: dict) -> "CLIPTextConfig":
        return from_config(cls, config, "text_encoder/config.json", "show-1-sr2's CLIP", ("hidden_act", ACTIVATIONS))


class Attention(nn.Module):
    def __init__(self, c: CLIPTextConfig, ops):
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (ops.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)),
                                             is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, -1))


class MLP(nn.Module):
    def __init__(self, c: CLIPTextConfig, ops):
        super().__init__()
        self.fc1 = ops.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = ops.Linear(c.intermediate_size, c.hidden_size)
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Layer(nn.Module):
    def __init__(self, c: CLIPTextConfig, ops):
        super().__init__()
        self.self_attn = Attention(c, ops)
        self.layer_norm1 = ops.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = MLP(c, ops)
        self.layer_norm2 = ops.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Embeddings(nn.Module):
    def __init__(self, c: CLIPTextConfig, ops):
        super().__init__()
        self.token_embedding = ops.Embedding(c.vocab_size, c.hidden_size)
        self.position_embedding = ops.Embedding(c.max_position_embeddings, c.hidden_size)


class Encoder(nn.Module):
    def __init__(self, c: CLIPTextConfig, ops):
        super().__init__()
        self.layers = nn.ModuleList([Layer(c, ops) for _ in range(c.num_hidden_layers)])


class TextModel(nn.Module):
    def __init__(self, c: CLIPTextConfig, ops):
        super().__init__()
        self.embeddings = Embeddings(c, ops)
        self.encoder = Encoder(c, ops)
        self.final_layer_norm = ops.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class CLIPTextEncoder(nn.Module):
    """Token ids (B, L) -> last hidden states (B, L, hidden_size), float32. The mask is not used."""

    IGNORED_KEYS = ("text_model.embeddings.position_ids",)  # a buffer older transformers saved

    def __init__(self, config: CLIPTextConfig, ops=TORCH_OPS):
        super().__init__()
        self.config, self.ops = config, ops
        self.compute_dtype = torch.float32
        self.text_model = TextModel(config, ops)

    @property
    def width(self) -> int:
        return self.config.hidden_size

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.text_model.embeddings
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = lookup(self.ops, emb.token_embedding, ids, torch.float32) \
            + lookup(self.ops, emb.position_embedding, positions, torch.float32)[None]
        for layer in self.text_model.encoder.layers:
            x = layer(x)
        return self.text_model.final_layer_norm(x)
