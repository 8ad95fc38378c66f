"""How far each weight dtype moves the public parity cascade from the full-precision run, and what
it saves: the cascade of `../shared/fixtures/parity` (case cascade_run_inference, its settings and
seed), with every UNet's weights stored in each dtype and computed in fp32.

    python benchmarks/weight_dtypes.py --fixtures ../shared/fixtures/parity

Per dtype: the UNets' weight bytes, and the deviation of every stage's output from the fp32-weights
run (max and RMS of |difference|, on outputs in about [-1, 1]). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from parity_adapter import cascade_inputs, cascade_models  # noqa: E402

from show1_core.budget import weight_bytes  # noqa: E402
from show1_core.cascade import run_cascade  # noqa: E402
from show1_core.context import RunContext  # noqa: E402
from show1_core.precision import WEIGHT_DTYPES, Precision  # noqa: E402
from show1_core.registry import STAGES  # noqa: E402

OUTPUTS = tuple(spec.output for spec in STAGES if spec.output)


def run(fixtures: Path, weights: str) -> tuple[dict[str, torch.Tensor], int]:
    manifest = json.loads((fixtures / "manifest.json").read_text())
    call = next(c for c in manifest["cases"] if c["kind"] == "cascade")["call"]
    models = cascade_models(fixtures, Precision(torch.float32, WEIGHT_DTYPES[weights]))
    out = {}
    run_cascade(models, *cascade_inputs(call), RunContext(record=lambda name, t: out.__setitem__(name, t.clone())))
    unets = sum(weight_bytes(s.unet) for s in models.stages.values())
    return {k: out[k] for k in OUTPUTS}, unets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared" / "fixtures" / "parity")
    args = ap.parse_args()
    reference, full_bytes = run(args.fixtures, "default")
    result = {"fp32_unet_weight_bytes": full_bytes, "dtypes": {}}
    for weights in ("fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2"):
        outputs, unet_bytes = run(args.fixtures, weights)
        result["dtypes"][weights] = {
            "unet_weight_bytes": unet_bytes, "saving": round(1 - unet_bytes / full_bytes, 3),
            "deviation": {k: {"max": round(float((outputs[k] - reference[k]).abs().max()), 4),
                              "rms": round(float((outputs[k] - reference[k]).pow(2).mean().sqrt()), 4)}
                          for k in OUTPUTS}}
        print(weights, json.dumps(result["dtypes"][weights]), file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
