#!/usr/bin/env bash
# Downloads the pinned sources of the default image prior's training corpus.
#
# Usage: bash tools/corpus/fetch.sh [DOWNLOAD_DIR]
#   DOWNLOAD_DIR defaults to $LUMOS_CORPUS_DL, then to $HOME/.cache/lumos-corpus/dl.
#
# Everything comes from package registries, by exact version, so the corpus can be rebuilt:
#   npm    @iconify/json@2.2.535            emoji and colour-icon sets as Iconify JSON (SVG bodies)
#   npm    @lobehub/fluent-emoji-3d@1.1.0   Fluent Emoji 3D, WebP 256x256, MIT
#   Debian openclipart-png 1:0.18+dfsg-19   public-domain clip art PNGs (~130 MB)
#
# Layout written (read by `lumos-corpus build --downloads DIR`):
#   DIR/iconify-json/package.json, DIR/iconify-json/json/<set>.json
#   DIR/fluent-emoji-3d/package.json, DIR/fluent-emoji-3d/assets/*.webp
#   DIR/openclipart-png/VERSION, DIR/openclipart-png/usr/share/...
# Each part is marked done by a `.fetched` stamp holding its pinned version; a part whose
# stamp matches is skipped, so running this again downloads nothing.
set -euo pipefail

ICONIFY_VERSION="2.2.535"
FLUENT_3D_VERSION="1.1.0"
OPENCLIPART_VERSION="1:0.18+dfsg-19"
# Only these sets are used, each with the one licence (SPDX id) it must declare in its
# `info.license`; a set declaring anything else (e.g. CC-BY-SA) is refused and deleted.
# The builder checks the same list again.
ICONIFY_SETS=(fluent-emoji fluent-emoji-flat noto noto-v1 twemoji emojione streamline-emojis fxemoji
    streamline-color streamline-flex-color streamline-plump-color streamline-sharp-color
    streamline-ultimate-color streamline-kameleon-color fluent-color flat-color-icons circle-flags)
declare -A ICONIFY_LICENCE=(
    [fluent-emoji]=MIT [fluent-emoji-flat]=MIT
    [noto]=Apache-2.0 [noto-v1]=Apache-2.0 [fxemoji]=Apache-2.0
    [twemoji]=CC-BY-4.0 [emojione]=CC-BY-4.0 [streamline-emojis]=CC-BY-4.0
    [streamline-color]=CC-BY-4.0 [streamline-flex-color]=CC-BY-4.0
    [streamline-plump-color]=CC-BY-4.0 [streamline-sharp-color]=CC-BY-4.0
    [streamline-ultimate-color]=CC-BY-4.0
    [streamline-kameleon-color]=CC-BY-4.0
    [fluent-color]=MIT [flat-color-icons]=MIT [circle-flags]=MIT
)

DL="${1:-${LUMOS_CORPUS_DL:-$HOME/.cache/lumos-corpus/dl}}"
mkdir -p "$DL"
DL="$(cd "$DL" && pwd)"
WORK="$DL/.work"
mkdir -p "$WORK"

is_fetched() { # DIR VERSION
    [[ -f "$1/.fetched" && "$(cat "$1/.fetched")" == "$2" ]]
}

fetch_npm() { # PACKAGE VERSION DEST STAMP [FILES_INSIDE_PACKAGE...]
    # STAMP: what the `.fetched` stamp must hold for DEST to count as done (the version, plus
    # the list of files taken when that list can change).
    local package="$1" version="$2" dest="$3" stamp="$4"
    shift 4
    if is_fetched "$dest" "$stamp"; then
        echo "skip   npm $package@$version (already in $dest)"
        return
    fi
    rm -rf "$dest" "$WORK/npm"
    mkdir -p "$WORK/npm" "$dest"
    local tarball
    tarball="$(cd "$WORK/npm" && npm pack --silent "$package@$version" 2>/dev/null | tail -n 1)"
    if [[ $# -gt 0 ]]; then
        tar xzf "$WORK/npm/$tarball" -C "$dest" --strip-components=1 "${@/#/package/}"
    else
        tar xzf "$WORK/npm/$tarball" -C "$dest" --strip-components=1
    fi
    rm -rf "$WORK/npm"
    echo "$stamp" >"$dest/.fetched"
    echo "fetched npm $package@$version -> $dest ($(find "$dest" -type f | wc -l) files)"
}

check_iconify_licences() { # DIR
    local set spdx
    for set in "${ICONIFY_SETS[@]}"; do
        local file="$1/json/$set.json"
        if [[ ! -f "$file" ]]; then
            echo "  absent: $set (refused on an earlier run)" >&2
            continue
        fi
        spdx="$(node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
            console.log((d.info && d.info.license && d.info.license.spdx) || "none")' "$file")"
        if [[ "$spdx" == "${ICONIFY_LICENCE[$set]}" ]]; then
            echo "  licence ok: $set ($spdx)"
        else
            echo "  REFUSED: $set declares licence '$spdx', expected '${ICONIFY_LICENCE[$set]}'; deleted" >&2
            rm -f "$file"
        fi
    done
}

fetch_deb() { # PACKAGE VERSION DEST
    local package="$1" version="$2" dest="$3"
    if is_fetched "$dest" "$version"; then
        echo "skip   deb $package=$version (already in $dest)"
        return
    fi
    rm -rf "$dest" "$WORK/deb"
    mkdir -p "$WORK/deb" "$dest"
    (cd "$WORK/deb" && apt-get download -q "$package=$version")
    local deb
    deb="$(ls "$WORK/deb"/*.deb)"
    dpkg-deb -x "$deb" "$dest"
    dpkg-deb -f "$deb" Version >"$dest/VERSION"
    rm -rf "$WORK/deb"
    echo "$version" >"$dest/.fetched"
    echo "fetched deb $package=$version -> $dest ($(find "$dest" -type f | wc -l) files)"
}

iconify_files=(package.json)
for set in "${ICONIFY_SETS[@]}"; do iconify_files+=("json/$set.json"); done
fetch_npm "@iconify/json" "$ICONIFY_VERSION" "$DL/iconify-json" \
    "$ICONIFY_VERSION ${ICONIFY_SETS[*]}" "${iconify_files[@]}"
check_iconify_licences "$DL/iconify-json"
fetch_npm "@lobehub/fluent-emoji-3d" "$FLUENT_3D_VERSION" "$DL/fluent-emoji-3d" "$FLUENT_3D_VERSION"
fetch_deb openclipart-png "$OPENCLIPART_VERSION" "$DL/openclipart-png"
rmdir "$WORK" 2>/dev/null || true
echo "downloads ready in $DL"
