#!/usr/bin/env bash
# Lays out an AppDir for Lumos Studio and, if `appimagetool` is on PATH, packs it into
# target/release/Lumos_Studio-x86_64.AppImage. Graphics libraries (Vulkan/GL, X11/Wayland)
# are loaded at run time from the host and are deliberately not bundled.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release -p lumos-studio
appdir="target/release/LumosStudio.AppDir"
rm -rf "$appdir"
install -Dm755 target/release/lumos-studio "$appdir/usr/bin/lumos-studio"
install -Dm644 packaging/linux/org.lumos.LumosStudio.desktop "$appdir/usr/share/applications/org.lumos.LumosStudio.desktop"
install -Dm644 packaging/linux/org.lumos.LumosStudio.metainfo.xml "$appdir/usr/share/metainfo/org.lumos.LumosStudio.appdata.xml"
install -Dm644 packaging/icons/org.lumos.LumosStudio.svg "$appdir/usr/share/icons/hicolor/scalable/apps/org.lumos.LumosStudio.svg"
install -Dm644 packaging/icons/org.lumos.LumosStudio.png "$appdir/usr/share/icons/hicolor/256x256/apps/org.lumos.LumosStudio.png"
ln -s usr/share/applications/org.lumos.LumosStudio.desktop "$appdir/org.lumos.LumosStudio.desktop"
ln -s usr/share/icons/hicolor/scalable/apps/org.lumos.LumosStudio.svg "$appdir/org.lumos.LumosStudio.svg"
cat > "$appdir/AppRun" <<'RUN'
#!/bin/sh
here="$(dirname "$(readlink -f "$0")")"
exec "$here/usr/bin/lumos-studio" "$@"
RUN
chmod +x "$appdir/AppRun"
if command -v appimagetool >/dev/null; then
  ARCH=x86_64 appimagetool "$appdir" target/release/Lumos_Studio-x86_64.AppImage
else
  echo "AppDir ready at $appdir; install appimagetool to pack it" >&2
fi
