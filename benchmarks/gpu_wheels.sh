#!/usr/bin/env bash
# Prepares what benchmarks/gpu_proof.py reads on a device machine, which reaches no registry and
# gets only the repository: the wheels of the lists beside this script (for Python 3.12 on x86-64)
# and a copy of the shared material, in one ignored folder sent along with the repository.
#   bash benchmarks/gpu_wheels.sh            .whl/          gpu_wheels.txt, data/ = parity fixtures, hub configs, checker
#   bash benchmarks/gpu_wheels.sh comfyui    .whl-comfyui/  gpu_wheels.txt + gpu_wheels_comfyui.txt, data/ = ComfyUI 0.33.0
# Prints the size of what is sent (the repository's files, untracked ones included, and the folder):
# at most 64 MiB a command.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
SHARED=${SHARED:-../shared}
case "${1:-proof}" in
  proof) dest=.whl; lists=(benchmarks/gpu_wheels.txt) ;;
  comfyui) dest=.whl-comfyui; lists=(benchmarks/gpu_wheels.txt benchmarks/gpu_wheels_comfyui.txt) ;;
  *) echo "usage: bash benchmarks/gpu_wheels.sh [comfyui]" >&2; exit 2 ;;
esac
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF "/$dest/" "$exclude" 2>/dev/null || echo "/$dest/" >>"$exclude"
rm -rf "$dest"
mkdir -p "$dest/data"
manylinux=()
for p in manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 \
         manylinux2014 manylinux1; do
  manylinux+=(--platform "${p}_x86_64")
done
grep -hv '^\s*#' "${lists[@]}" | while read -r spec marker; do
  [ -n "$spec" ] || continue
  if [ "$marker" = "[any]" ]; then where=(--implementation py --platform any); else where=(--implementation cp "${manylinux[@]}"); fi
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 "${where[@]}" -d "$dest" "$spec"
done
if [ "$dest" = .whl ]; then
  mkdir -p "$dest/data/fixtures" "$dest/data/tools"
  cp -r "$SHARED/fixtures/parity" "$SHARED/fixtures/hub_configs" "$dest/data/fixtures/"
  cp "$SHARED/tools/check_parity.py" "$dest/data/tools/"
else
  mkdir -p "$dest/data/comfyui"
  cp "$SHARED/comfyui/ComfyUI-0.33.0.tar.gz" "$dest/data/comfyui/"
fi
chmod -R u+w "$dest"
total() { du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1; }
wheels=$(find "$dest" -maxdepth 1 -type f -name '*.whl' -print0 | total)
data=$(find "$dest/data" -type f -print0 | total)
tracked=$(git ls-files -z | total)
untracked=$(git ls-files -z --others --exclude-standard | total)
all=$((wheels + data + tracked + untracked))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "$(ls "$dest"/*.whl | wc -l) wheels $(mib "$wheels"), data $(mib "$data"), repository $(mib "$tracked") tracked +" \
     "$(mib "$untracked") untracked: $(mib "$all") sent with $dest (limit 64 MiB)"
[ "$all" -le $((64 * 1048576)) ] || { echo "too large to send" >&2; exit 1; }
