"""benchmarks/gpu_proof.py in its dry run: the code a GPU machine runs, on the CPU with scaled-down
hub configs, so a renamed library function shows here and not on a lent GPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from comfyui_env import SNAPSHOTS, prepare, snapshots
from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_proof.py"
SHARED = ROOT.parent / "shared"
needs_shared = pytest.mark.skipif(not (SHARED / "fixtures" / "hub_configs").is_dir(),
                                  reason="../shared (parity fixtures, hub configs) is not beside the checkout")


def dry_run(tmp_path, *extra: str, timeout: float = 240) -> tuple[dict, str]:
    out = tmp_path / "proof.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout + done.stderr


def numbers(*values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


@pytest.mark.slow
@needs_shared
def test_the_dry_run_runs_every_part_and_records_numbers(tmp_path):
    proof, output = dry_run(tmp_path)
    parts = proof["parts"]
    assert sorted(parts) == list("abcde"), output[-3000:]
    for name, part in parts.items():
        assert part["status"] == "ok" and not part["failures"] and not part["skipped"], (name, part, output[-3000:])
    assert (tmp_path / "proof.md").is_file()

    a = parts["a"]["data"]
    assert a["cases"] and all(c["pass"] and numbers(c["max_diff_over_atol"]) for c in a["cases"].values())
    assert a["demo"] and all(d["ok"] and d["finite"] for d in a["demo"].values())

    stages = parts["b"]["data"]["stages"]
    assert set(stages) == {"keyframes", "interpolation", "if_ii", "sr1", "sr2", "vae_encode", "vae_decode", "t5",
                           "clip"}
    for name, entry in stages.items():
        assert entry["dtypes"], name
        for record in entry["dtypes"].values():
            assert numbers(record["weight_bytes"], record["peak_bytes"], record["seconds_per_call"],
                           record["estimate_bytes"]) and record["weight_bytes"] > 0, (name, record)

    runs = parts["c"]["data"]["runs"]
    done = [r for r in runs.values() if r.get("done")]
    refused = [r for r in runs.values() if r.get("refused")]
    assert {"keep", "stage"} <= {r["offload"] for r in done}
    assert all(numbers(r["peak_bytes"], r["figure_bytes"], r["figure_over_peak"]) for r in done)
    assert refused and all(numbers(r["figure_bytes"]) and "needs about" in r["refused"] for r in refused)

    d = parts["d"]["data"]
    assert numbers(d["matmul_flops_per_s"], d["projected_s"], d["limit_s"], d["ratio"]) and d["ratio"] > 0
    assert set(d["stages"]) == {"keyframes", "interpolation", "if_ii", "sr1", "sr2"}

    e = parts["e"]["data"]
    assert e["stages"] and all(numbers(s["ratio"]) and s["ratio"] > 0 for s in e["stages"].values())
    assert e["cascade"] and all(numbers(r) for r in e["cascade"].values())
    rows = [line for line in output.splitlines() if line.startswith("| ")]
    assert len(rows) == len(proof["rows"]) + 1  # the header, then every row as it came


@pytest.mark.comfyui
@pytest.mark.slow
@needs_shared
@pytest.mark.skipif("0.33.0" not in snapshots(), reason=f"no ComfyUI-0.33.0.tar.gz in {SNAPSHOTS}: part f runs that "
                                                         "release")
def test_the_comfyui_dry_run_runs_the_published_workflow(tmp_path):
    python = str(prepare("0.33.0").python)  # 0.33.0's own venv, as `bash .ci/setup comfyui` builds it
    proof, output = dry_run(tmp_path, "--comfyui", "--comfyui-python", python, timeout=600)
    f = proof["parts"]["f"]
    assert f["status"] == "ok" and f["data"]["workflow_status"] == "success", (f, output[-3000:])
    assert {m["patcher"] for m in f["data"]["patchers"]["loaded"]} == {"ModelPatcher"}  # --cpu: no dynamic VRAM
