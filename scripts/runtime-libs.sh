#!/usr/bin/env bash
# Copies the shared libraries that BINARY... load (their whole closure, as this machine's
# dynamic loader resolves it, links followed) into DEST under the same directories, so that a
# slim image can run the binaries with those files alone:
#
#   scripts/runtime-libs.sh DEST BINARY...
#
# Why not the runtime packages: Debian 12's libtorch1.13 package depends on OpenCV, FFmpeg, Qt,
# GDAL and the rest of Caffe2's optional parts, 1.39 GB in a slim image, and its maintainer
# scripts pull in more than the loader ever maps. The files copied are still Debian's, from
# the packages scripts/install-deps.sh installed in the build stage.
# Directories are resolved (/lib -> /usr/lib on a merged /usr) so that copying DEST over an
# image's root never replaces one of its links with a directory.
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 DEST BINARY..." >&2
  exit 2
fi
dest=$1; shift
listing=$(ldd "$@")
if grep -q "not found" <<<"$listing"; then
  echo "runtime-libs: a library is missing:" >&2
  grep "not found" <<<"$listing" >&2
  exit 1
fi
count=0
while read -r lib; do
  dir=$(readlink -f "$(dirname "$lib")")
  install -D -m 755 "$(readlink -f "$lib")" "$dest$dir/$(basename "$lib")"
  count=$((count + 1))
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' <<<"$listing" | sort -u)
echo "runtime-libs: $count libraries ($(du -sh "$dest" | cut -f1)) into $dest"
