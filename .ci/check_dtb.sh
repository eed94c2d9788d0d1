#!/usr/bin/env bash
# Checks that every committed platforms/*.dtb is exactly what dtc makes from
# its .dts (twice, to catch non-deterministic output) and that the embedded
# platforms/*_dtb.ts modules are what tools/embed_dtb.ts generates.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v dtc >/dev/null 2>&1; then
  echo "dtc not found: installing device-tree-compiler" >&2
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq device-tree-compiler
fi

if command -v deno >/dev/null 2>&1; then
  deno_cmd=(deno)
else
  deno_cmd=(npx -y deno@2.9.6)
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

status=0
shopt -s nullglob
sources=(platforms/*.dts)
if [ ${#sources[@]} -eq 0 ]; then
  echo "no platforms/*.dts found" >&2
  exit 1
fi
for dts in "${sources[@]}"; do
  stem="$(basename "$dts" .dts)"
  dtb="platforms/$stem.dtb"
  dtc -I dts -O dtb -o "$tmp/$stem.1.dtb" "$dts"
  dtc -I dts -O dtb -o "$tmp/$stem.2.dtb" "$dts"
  if ! cmp -s "$tmp/$stem.1.dtb" "$tmp/$stem.2.dtb"; then
    echo "FAIL: dtc output for $dts is not deterministic" >&2
    status=1
  fi
  if [ ! -f "$dtb" ]; then
    echo "FAIL: $dtb is missing (dtc -I dts -O dtb -o $dtb $dts)" >&2
    status=1
  elif ! cmp -s "$tmp/$stem.1.dtb" "$dtb"; then
    echo "FAIL: $dtb differs from what dtc makes of $dts (dtc -I dts -O dtb -o $dtb $dts)" >&2
    status=1
  else
    echo "ok: $dtb matches $dts"
  fi
done

for mod in platforms/*_dtb.ts; do
  if [ ! -f "${mod%_dtb.ts}.dtb" ]; then
    echo "FAIL: $mod has no ${mod%_dtb.ts}.dtb (delete it or restore the blob)" >&2
    status=1
  fi
done

for dtb in platforms/*.dtb; do
  if [ ! -f "${dtb%.dtb}.dts" ]; then
    echo "FAIL: $dtb has no ${dtb%.dtb}.dts source" >&2
    status=1
  fi
done

if "${deno_cmd[@]}" run --allow-read tools/embed_dtb.ts --check; then
  echo "ok: embedded platforms/*_dtb.ts modules are up to date"
else
  echo "FAIL: run: deno run --allow-read --allow-write tools/embed_dtb.ts" >&2
  status=1
fi

exit "$status"
