"""requirements.txt (what ComfyUI-Manager installs) and pyproject's dependencies (what the registry and
`pip install .` read) say the same, in the same order: the order is part of what they say (README,
"What installing the pack holds"). The install itself is tested against real ComfyUI venvs in the
integration suite."""

from __future__ import annotations

import re
import tomllib

from conftest import ROOT


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def test_pyproject_dependencies_mirror_requirements_txt():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    # the frontend range is for ComfyUI and the registry, which strips it; pip never sees it
    assert [d for d in declared if name(d) != "comfyui-frontend-package"] == requirement_lines()


def test_diffusers_comes_after_transformers_and_huggingface_hub():
    order = [name(r) for r in requirement_lines()]
    assert order.index("diffusers") > max(order.index("transformers"), order.index("huggingface-hub"))
