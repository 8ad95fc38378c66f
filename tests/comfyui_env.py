"""The ComfyUI releases the integration and browser suites run against, prepared as users prepare them.

Each source snapshot in ../shared/comfyui (`ComfyUI-<version>.tar.gz`) is extracted once, outside the
repository, under SHOW1_COMFYUI_HOME (default ~/.cache/show1-comfyui), and gets a venv of its own made
as ComfyUI-Manager users make theirs: torch, the release's own requirements.txt, then the pack's
requirements.txt with plain `pip install -r` (what ComfyUI-Manager runs). Before that last step,
`pip install --dry-run --report` records what the pack's requirements would change in a venv holding
ComfyUI's packages alone, with the venv's own pip and with the newest pip (the suite asserts on
both: older pips resolve differently). A venv is reused while what it was built from is
unchanged; pip's cache is shared by all. COMFYUI_DIR (and COMFYUI_PYTHON) name one other ComfyUI
instead, used as it is.

    python tests/comfyui_env.py [--browser]     # prepare every snapshot (what `bash .ci/setup comfyui` runs)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(os.environ.get("SHOW1_COMFYUI_SNAPSHOTS") or ROOT.parent / "shared" / "comfyui")
HOME = Path(os.environ.get("SHOW1_COMFYUI_HOME") or Path.home() / ".cache" / "show1-comfyui")
BROWSER_DIR = ROOT / "tests" / "browser"
# No CUDA here: torch 2.14.1 and torchvision 0.29.1 install from this machine's disk; torchaudio, which
# ComfyUI 0.33 imports at start, has no 2.14 release, and 2.11.1 (torch>=2.11) imports beside them.
TORCH = tuple((os.environ.get("SHOW1_COMFYUI_TORCH") or "torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.1").split())
# The oldest release is installed with the versions of its time that the pack declares as lower bounds
# (.ci/constraints.txt: transformers 4.57, huggingface_hub 0.36); newer releases get the newest releases.
PERIOD_PINS = {"0.3.64": ROOT / ".ci" / "constraints.txt"}
NEWEST_FRONTEND = os.environ.get("SHOW1_FRONTEND_NEWEST", "1.58.1")


def version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.+-]", version))


def snapshots() -> dict[str, Path]:
    """version -> snapshot archive, oldest first."""
    found = {p.name[len("ComfyUI-"):-len(".tar.gz")]: p for p in SNAPSHOTS.glob("ComfyUI-*.tar.gz")}
    return dict(sorted(found.items(), key=lambda kv: version_key(kv[0])))


def targets() -> list[str]:
    """What the suites run against: COMFYUI_DIR where it is set, else every snapshot."""
    return ["COMFYUI_DIR"] if os.environ.get("COMFYUI_DIR") else list(snapshots())


def why_none() -> str:
    return (f"no ComfyUI to test against: no ComfyUI-*.tar.gz snapshot in {SNAPSHOTS} and COMFYUI_DIR is not set "
            "(see README, 'Integration tests')")


@dataclass(frozen=True)
class ComfyUI:
    version: str
    dir: Path
    python: Path
    venv: Path | None = None  # None: a ComfyUI named by COMFYUI_DIR, used as it is

    def frontend_pin(self) -> str | None:
        """The comfyui-frontend-package version this release's requirements.txt pins."""
        found = re.search(r"^comfyui-frontend-package==([0-9.]+)", (self.dir / "requirements.txt").read_text(), re.M)
        return found.group(1) if found else None

    def frontends(self) -> list[str]:
        """The frontend the release pins, then the newest one tested."""
        return list(dict.fromkeys(v for v in (self.frontend_pin(), NEWEST_FRONTEND) if v))

    @property
    def base_packages(self) -> dict[str, str]:
        """ComfyUI's own packages (name -> version) as its requirements installed them."""
        return json.loads((self.venv / BASE_PACKAGES).read_text())

    @property
    def pack_reports(self) -> list[dict]:
        """pip's --dry-run reports of `pip install -r requirements.txt` over ComfyUI's packages alone,
        by the venv's own pip and by the newest pip."""
        return json.loads((self.venv / PACK_REPORTS).read_text())


BASE_PACKAGES, PACK_REPORTS, VENV_STAMP, PACK_STAMP = ("show1-comfyui-packages.json", "show1-pack-reports.json",
                                                      "show1-venv.json", "show1-pack.json")


def log(message: str) -> None:
    print(f"show1: {message}", file=sys.stderr, flush=True)


def run(*cmd, **kwargs) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}"
                           f"\n{done.stderr[-3000:]}")
    return done.stdout


def digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.read_bytes() if isinstance(part, Path) else str(part).encode())
    return h.hexdigest()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(python: Path) -> dict[str, str]:
    listed = json.loads(run(python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"))
    return {canonical(p["name"]): p["version"] for p in listed}


def extract(version: str) -> Path:
    """The snapshot unpacked once under HOME (again if the archive changed)."""
    archive = snapshots()[version]
    target, stamp = HOME / f"ComfyUI-{version}", HOME / f"ComfyUI-{version}.sha256"
    wanted = digest(archive)
    if (target / "main.py").is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return target
    log(f"extracting {archive.name} to {HOME}")
    HOME.mkdir(parents=True, exist_ok=True)
    partial = HOME / f".extract-{version}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")
    shutil.rmtree(target, ignore_errors=True)
    (partial / f"ComfyUI-{version}").rename(target)
    partial.rmdir()
    stamp.write_text(wanted)
    return target


def build_venv(version: str, comfy_dir: Path) -> Path:
    """torch, then the release's requirements.txt (period pins for old releases), with the pip that
    `python -m venv` brings; reused while those and the base Python are unchanged."""
    venv = HOME / f"venv-{version}"
    base_python = os.environ.get("PYTHON") or shutil.which("python3") or sys.executable
    pins = PERIOD_PINS.get(version)
    wanted = {"python": run(base_python, "--version").strip(), "torch": list(TORCH),
              "pip": run(base_python, "-c", "import ensurepip; print(ensurepip.version())").strip(),
              "requirements": digest(comfy_dir / "requirements.txt"), "pins": digest(pins) if pins else None}
    stamp = venv / VENV_STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted and (venv / "bin" / "python").exists():
        return venv
    log(f"building the venv of ComfyUI {version} in {venv} (torch, its requirements.txt)")
    shutil.rmtree(venv, ignore_errors=True)
    run(base_python, "-m", "venv", venv)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(*pip, *TORCH)
    run(*pip, "-r", comfy_dir / "requirements.txt", *(["-c", pins] if pins else []))
    (venv / BASE_PACKAGES).write_text(json.dumps(installed(python), indent=1, sort_keys=True))
    stamp.write_text(json.dumps(wanted))
    return venv


def install_pack(venv: Path) -> None:
    """The pack's requirements.txt as ComfyUI-Manager installs it (plain `pip install -r`), after a dry
    run against ComfyUI's packages alone; redone, from those packages, when requirements.txt changes."""
    requirements = ROOT / "requirements.txt"
    wanted = digest(requirements)
    stamp = venv / PACK_STAMP
    if stamp.is_file() and stamp.read_text() == wanted:
        return
    python = venv / "bin" / "python"
    base = json.loads((venv / BASE_PACKAGES).read_text())
    now = installed(python)
    extra = sorted(set(now) - set(base))
    if extra:
        run(python, "-m", "pip", "uninstall", "-q", "-y", *extra)
    changed = [f"{name}=={version}" for name, version in base.items() if now.get(name) != version]
    if changed:
        run(python, "-m", "pip", "install", "-q", "--no-deps", *changed)
    log(f"installing the pack's requirements.txt into {venv}")
    reports = []
    for pip in ([python, "-m", "pip"], [python, newest_pip() / "pip"]):
        report = venv / "show1-dry-run.json"
        run(*pip, "install", "-q", "--disable-pip-version-check", "--dry-run", "--report", report, "-r", requirements)
        reports.append(json.loads(report.read_text()))
        report.unlink()
    (venv / PACK_REPORTS).write_text(json.dumps(reports))
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", requirements)
    stamp.write_text(wanted)


def newest_pip() -> Path:
    """The newest pip's wheel (pip runs from its wheel), fetched into HOME."""
    target = HOME / "pip-newest"
    shutil.rmtree(target, ignore_errors=True)
    run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check", "-d", target, "pip")
    return next(target.glob("pip-*.whl"))


def prepare(target: str) -> ComfyUI:
    """The ComfyUI of one target of `targets()`, ready to start."""
    if target == "COMFYUI_DIR":
        comfy_dir = Path(os.environ["COMFYUI_DIR"])
        return ComfyUI("COMFYUI_DIR", comfy_dir, Path(os.environ.get("COMFYUI_PYTHON", sys.executable)))
    comfy_dir = extract(target)
    venv = build_venv(target, comfy_dir)
    install_pack(venv)
    return ComfyUI(target, comfy_dir, venv / "bin" / "python", venv)


def prepare_browser() -> None:
    """The browser suite's node modules (playwright-core, which drives the system's chromium)."""
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir() and shutil.which("npm"):
        log("npm ci in tests/browser")
        run("npm", "ci", "--no-audit", "--no-fund", cwd=BROWSER_DIR)


def frontend_root(version: str, python: str = sys.executable) -> Path:
    """The static files of comfyui-frontend-package==version, pip-installed once under HOME."""
    target = HOME / "frontends" / version
    static = target / "comfyui_frontend_package" / "static"
    if not (static / "index.html").is_file():
        log(f"installing comfyui-frontend-package {version}")
        shutil.rmtree(target, ignore_errors=True)
        run(python, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", "--target", target,
            f"comfyui-frontend-package=={version}")
    return static


if __name__ == "__main__":
    if not targets():
        log(why_none())
    for name in targets():
        comfyui = prepare(name)
        log(f"ComfyUI {comfyui.version}: {comfyui.dir}, {comfyui.python}")
        if "--browser" in sys.argv[1:]:
            for frontend in comfyui.frontends():
                frontend_root(frontend)
    if "--browser" in sys.argv[1:]:
        prepare_browser()
