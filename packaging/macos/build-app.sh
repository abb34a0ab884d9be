#!/usr/bin/env bash
# Builds target/release/bundle/Lumos Studio.app on macOS:
#   Contents/Info.plist, Contents/MacOS/lumos-studio, Contents/Resources/LumosStudio.icns
# Usage: packaging/macos/build-app.sh [--features metal]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release -p lumos-studio "$@"
app="target/release/bundle/Lumos Studio.app"
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
cp packaging/macos/Info.plist "$app/Contents/"
cp target/release/lumos-studio "$app/Contents/MacOS/"
# The icon: SVG -> 1024 px PNG -> .icns (needs rsvg-convert or qlmanage, and iconutil).
iconset="$(mktemp -d)/LumosStudio.iconset"
mkdir -p "$iconset"
if command -v rsvg-convert >/dev/null; then
  for size in 16 32 128 256 512; do
    rsvg-convert -w $size -h $size packaging/icons/org.lumos.LumosStudio.svg -o "$iconset/icon_${size}x${size}.png"
    rsvg-convert -w $((size * 2)) -h $((size * 2)) packaging/icons/org.lumos.LumosStudio.svg -o "$iconset/icon_${size}x${size}@2x.png"
  done
  iconutil -c icns "$iconset" -o "$app/Contents/Resources/LumosStudio.icns"
else
  echo "rsvg-convert not found (brew install librsvg): the bundle has no icon" >&2
fi
echo "built $app"
