"""One UNet call of a benchmark stage, timed after one warm-up call: the smallest piece of work that
tells a code change from the machine's drift. Half of the spec's guidance batch (one video), random
inputs of the spec's `unet_input_shape`, seeded.

    python benchmarks/unet_call.py --spec ../shared/bench/spec.json --models ../shared/fixtures/parity/models sr1

Only `show1_core.loading.load_stage` and the UNet's call are used, so the same file times another
checkout of the pack (run it from that checkout's root). Prints the seconds of the timed call and
the mean |output|, which must agree between two checkouts that compute the same function.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path.cwd()))

from show1_core.loading import load_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("stage", help="a stage of the spec with a UNet: keyframes, interpolation, if_ii_first_frame, "
                                  "sr1, sr2")
    args = ap.parse_args()
    spec = json.loads(args.spec.read_text())
    stage = spec["stages"][args.stage]
    folder = spec["models"][stage["model"]]["folder"]
    unet = load_stage(args.models / folder).unet
    config = unet.config
    width = getattr(config, "encoder_hid_dim", None) or config.cross_attention_dim
    torch.manual_seed(0)
    x = torch.randn(1, *stage["unet_input_shape"][1:])
    text = torch.randn(1, 77, width)
    extra = {"class_labels": torch.tensor([stage.get("noise_level", 0)])} if "noise_level" in stage else {}
    with torch.inference_mode():
        for _ in range(2):
            start = time.perf_counter()
            out = unet(x, 500, encoder_hidden_states=text, **extra)
            seconds = time.perf_counter() - start
    print(json.dumps({"stage": args.stage, "seconds": round(seconds, 3), "mean_abs_output": float(out.abs().mean())}))


if __name__ == "__main__":
    main()
