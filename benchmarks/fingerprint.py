"""Fingerprints of stage outputs, so the benchmark can show that it does the published side's work.

Both runners (`bench.py` and `published.py`, which runs in the published implementation's own
environment) print the same fingerprint of every stage output: its shape, a few moments and a
coarse signature (the tensor average-pooled to at most 512 values). Two implementations of the
same work agree to rounding; different work (another size, seed, step count or schedule) does not.
Only torch is needed.
"""

import torch
import torch.nn.functional as F

SIGNATURE = 512


def fingerprint(tensor) -> dict:
    x = torch.as_tensor(tensor).detach().float().cpu()
    flat = x.reshape(1, 1, -1)
    signature = F.adaptive_avg_pool1d(flat, min(SIGNATURE, flat.shape[-1]))[0, 0]
    return {"shape": list(x.shape), "mean": round(float(x.mean()), 6), "std": round(float(x.std()), 6),
            "min": round(float(x.min()), 6), "max": round(float(x.max()), 6),
            "signature": [round(float(v), 5) for v in signature]}


def difference(a: dict, b: dict) -> float | None:
    """Largest difference of two fingerprints' signatures and moments (None: not the same shape)."""
    if a["shape"] != b["shape"]:
        return None
    moments = [abs(a[k] - b[k]) for k in ("mean", "std", "min", "max")]
    return max([*moments, *(abs(x - y) for x, y in zip(a["signature"], b["signature"]))])
