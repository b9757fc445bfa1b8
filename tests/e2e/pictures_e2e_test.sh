#!/usr/bin/env bash
# Datasets and pictures end to end, with the built binaries: `register-dataset` of a folder of
# IDX files (refusals naming the file or the field, kept across a restart), `datasets`,
# training on the registered name, `samples` (a PNG grid whose tiles are the dataset's images,
# decoded here with Python's zlib), `watch --plot` and `evaluate --plot` (SVGs parsed with
# xml.etree and compared with the events and the evaluation the CLI prints as JSON).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch_mnist "$work/data"
# A registered set: the first 1,500 training and 300 test digits of MNIST, 0-4 only (5 classes).
python3 - "$work/data" <<'PY'
import gzip, os, struct, sys
data = sys.argv[1]
def read(path):
    raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    return raw
def images(path):
    raw = read(path); n, r, c = struct.unpack(">III", raw[4:16]); return [raw[16 + i * r * c:16 + (i + 1) * r * c] for i in range(n)], r, c
def labels(path):
    raw = read(path); return list(raw[8:])
def find(base):
    for name in (base + ".gz", base):
        if os.path.exists(os.path.join(data, "mnist", name)): return os.path.join(data, "mnist", name)
out = os.path.join(data, "sets", "digits04")
os.makedirs(out, exist_ok=True)
for prefix, keep in (("train", 1500), ("t10k", 300)):
    imgs, r, c = images(find(prefix + "-images-idx3-ubyte"))
    labs = labels(find(prefix + "-labels-idx1-ubyte"))
    pairs = [(i, l) for i, l in zip(imgs, labs) if l < 5][:keep]
    with open(os.path.join(out, prefix + "-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(pairs), r, c) + b"".join(i for i, _ in pairs))
    with open(os.path.join(out, prefix + "-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(pairs)) + bytes(l for _, l in pairs))
PY
# Broken copies of it, and a link out of the data directory.
cp -r "$work/data/sets/digits04" "$work/data/sets/truncated"
truncate -s -50 "$work/data/sets/truncated/train-images-idx3-ubyte"
cp -r "$work/data/sets/digits04" "$work/data/sets/mismatched"
head -c 208 "$work/data/sets/digits04/t10k-labels-idx1-ubyte" >"$work/data/sets/mismatched/t10k-labels-idx1-ubyte"
mkdir -p "$work/outside"
cp -r "$work/data/sets/digits04" "$work/outside/set"
ln -s "$work/outside/set" "$work/data/sets/escape"

start_server "$work/data" "$work/state"

# register-dataset: refusals first, each naming the file or the field.
refused() {  # refused CODE MENTION NAME PATH
  local output status=0
  output=$(cli register-dataset "$3" "$4" 2>&1) || status=$?
  [[ $status -eq 1 && $output == *"error: $1"* && $output == *"$2"* ]] || { echo "$output"; return 1; }
}
check "a truncated image file is refused, naming it" refused INVALID_ARGUMENT train-images-idx3-ubyte truncated sets/truncated
check "labels of another count are refused, naming the file" refused INVALID_ARGUMENT t10k-labels-idx1-ubyte mismatched sets/mismatched
check "a symbolic link out of the data directory is refused" refused INVALID_ARGUMENT "symbolic link" escape sets/escape
check "'..' is refused" refused INVALID_ARGUMENT '..' up sets/../sets/digits04
check "an absolute path is refused" refused INVALID_ARGUMENT path abs "$work/data/sets/digits04"
check "a bad name is refused" refused INVALID_ARGUMENT name Bad_Name sets/digits04
check "a built-in name is reserved" refused INVALID_ARGUMENT reserved mnist sets/digits04

cli register-dataset digits04 sets/digits04 >"$work/register.txt"
check "register-dataset reports the counts and the classes from the labels" \
  grep -qx "registered digits04 (sets/digits04): 1500 train + 300 test images of 28x28, 5 classes" "$work/register.txt"
check "a second registration under the name is ALREADY_EXISTS" refused ALREADY_EXISTS digits04 digits04 sets/digits04

cli datasets >"$work/datasets.txt"
check "datasets lists mnist, fashion-mnist and the registered set" bash -c "
  grep -qE '^mnist +[0-9]+ +[0-9]+ +10 +28x28 +built-in' '$work/datasets.txt' &&
  grep -qE '^fashion-mnist ' '$work/datasets.txt' &&
  grep -qE '^digits04 +1500 +300 +5 +28x28 +registered +sets/digits04' '$work/datasets.txt'"

# samples: a PNG grid; its tiles are images of the set with the labels printed.
cli samples --dataset digits04 --count 10 --seed 5 --out "$work/grid.png" >"$work/samples.txt"
check "samples reports a 3 x 4 grid of 122x92 pixels" grep -q "^saved $work/grid.png: 10 images of digits04 (train split, seed 5), 3 rows of 4, 122x92 pixels$" "$work/samples.txt"
check "the PNG decodes, has that size, and each tile is an image of the set with the printed label" \
  python3 - "$work/grid.png" "$work/samples.txt" "$work/data/sets/digits04" <<'PY'
import struct, sys, zlib
png, text, folder = sys.argv[1:]
raw = open(png, "rb").read()
assert raw[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, header = 8, b"", None
while pos < len(raw):
    length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
    body = raw[pos + 8:pos + 8 + length]
    assert zlib.crc32(kind + body) == struct.unpack(">I", raw[pos + 8 + length:pos + 12 + length])[0]
    if kind == b"IHDR": header = struct.unpack(">IIBBBBB", body)
    if kind == b"IDAT": idat += body
    pos += 12 + length
width, height, depth, colour, _, _, interlace = header
assert (width, height, depth, colour, interlace) == (122, 92, 8, 0, 0), header
data, rows, prev = zlib.decompress(idat), [], bytearray(width)
for y in range(height):
    line = data[y * (width + 1):(y + 1) * (width + 1)]
    kind, row = line[0], bytearray(line[1:])
    for x in range(width):
        a = row[x - 1] if x else 0; b = prev[x]; c = prev[x - 1] if x else 0
        if kind == 1: row[x] = (row[x] + a) & 255
        elif kind == 2: row[x] = (row[x] + b) & 255
        elif kind == 3: row[x] = (row[x] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(row)); prev = row
lines = open(text).read().splitlines()
labels = [int(l) for line in lines[lines.index("labels in grid order:") + 1:] for l in line.split()]
assert len(labels) == 10, labels
imgs = open(folder + "/train-images-idx3-ubyte", "rb").read()[16:]
labs = open(folder + "/train-labels-idx1-ubyte", "rb").read()[8:]
known = {}
for i in range(len(labs)): known.setdefault(imgs[i * 784:(i + 1) * 784], set()).add(labs[i])
for i, label in enumerate(labels):
    top, left = 2 + (i // 4) * 30, 2 + (i % 4) * 30
    tile = b"".join(rows[top + y][left:left + 28] for y in range(28))
    assert tile in known, f"tile {i} is not an image of the set"
    assert label in known[tile], (i, label, known[tile])
assert all(v == 128 for v in rows[0]) and all(v == 128 for v in rows[-1])  # the frame
PY
check "the same seed gives the same grid" bash -c "
  '$cli_bin' --server $server_addr samples --dataset digits04 --count 10 --seed 5 --out '$work/again.png' >/dev/null &&
  cmp -s '$work/grid.png' '$work/again.png'"
status=0
cli samples --dataset digits04 --out "$work/missing-dir/grid.png" >/dev/null 2>&1 || status=$?
check "an unwritable --out exits 3 and leaves nothing" bash -c "[[ $status -eq 3 && ! -e '$work/missing-dir' ]]"
check "no temporary file is left beside the outputs" bash -c "! ls -a '$work' | grep -q tmp"

# Train on the registered name, then plot its curves and its confusion matrix.
cli train --dataset digits04 --epochs 3 --batch_size 50 --seed 3 --validation_fraction 0.2 --detach >"$work/job.txt"
job=$(cat "$work/job.txt")
cli watch "$job" --json --plot "$work/curves.svg" >"$work/watch.json" 2>"$work/watch.err"
check "watch --plot says where the curves went" grep -qx "saved the curves of 3 epochs to $work/curves.svg" "$work/watch.err"
check "the curves SVG parses and holds every epoch's values, axes and labels" \
  python3 - "$work/curves.svg" "$work/watch.json" <<'PY'
import json, sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
events = [json.loads(l) for l in open(sys.argv[2])]
ends = [e["epoch_end"] for e in events if "epoch_end" in e]
assert len(ends) == 3, len(ends)
assert events[-1]["finished"]["state"] == "JOB_STATE_SUCCEEDED", events[-1]
for series, key in (("train-loss", "train_loss"), ("validation-loss", "validation_loss"),
                    ("train-accuracy", "train_accuracy"), ("validation-accuracy", "validation_accuracy")):
    points = root.findall(f".//s:circle[@class='{series}']", ns)
    assert [int(p.get("data-epoch")) for p in points] == [1, 2, 3], series
    for p, end in zip(points, ends):
        assert abs(float(p.get("data-value")) - end[key]) < 1e-6, (series, p.get("data-value"), end[key])
    assert root.find(f".//s:polyline[@class='{series}']", ns) is not None, series
texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
for label in ("epoch", "loss (cross-entropy)", "accuracy (%)", "train", "validation", "1", "2", "3"):
    assert label in texts, (label, texts)
assert len(root.findall(".//s:line[@class='axis']", ns)) == 4
assert len(root.findall(".//s:line[@class='tick']", ns)) >= 8
# Higher accuracy is drawn higher: y grows downwards in SVG.
acc = root.findall(".//s:circle[@class='train-accuracy']", ns)
values = [float(p.get("data-value")) for p in acc]; ys = [float(p.get("cy")) for p in acc]
assert all((v1 < v2) == (y1 > y2) for v1, v2, y1, y2 in zip(values, values[1:], ys, ys[1:]) if v1 != v2)
PY

cli evaluate --dataset digits04 --json --plot "$work/confusion.svg" >"$work/evaluate.json"
check "the confusion matrix SVG parses and holds every count, shaded, with labels" \
  python3 - "$work/confusion.svg" "$work/evaluate.json" <<'PY'
import json, sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
evaluation = json.loads(open(sys.argv[2]).read())
matrix = [[int(c) for c in row["counts"]] for row in evaluation["confusion_matrix"]]
cells = root.findall(".//s:rect[@class='cell']", ns)
n = len(matrix)
assert n >= 5 and len(cells) == n * n, (n, len(cells))
largest = max(max(r) for r in matrix)
for cell in cells:
    t, p, count = int(cell.get("data-true")), int(cell.get("data-predicted")), int(cell.get("data-count"))
    assert matrix[t][p] == count, (t, p, count)
    red = int(cell.get("fill")[4:-1].split(",")[0])
    assert (red == 8) == (count == largest) and (red == 255) == (count == 0), (count, cell.get("fill"))
counts = [t.text for t in root.findall(".//s:text[@class='count']", ns)]
assert sorted(counts) == sorted(str(c) for r in matrix for c in r)
texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
assert "predicted class" in texts and "true class" in texts
assert [t.text for t in root.findall(".//s:text[@class='true-label']", ns)] == [str(i) for i in range(n)]
assert [t.text for t in root.findall(".//s:text[@class='predicted-label']", ns)] == [str(i) for i in range(n)]
title = root.find(".//s:text[@class='title']", ns).text
assert "digits04" in title and "%.2f%%" % (100 * evaluation["accuracy"]) in title, title
PY

# Registrations survive a restart.
check "the server stops cleanly" stop_server
start_server "$work/data" "$work/state"
cli datasets >"$work/datasets-after.txt"
check "after a restart the registered set is still listed" grep -qE '^digits04 +1500 +300 +5 +28x28 +registered' "$work/datasets-after.txt"
check "and still taken" refused ALREADY_EXISTS digits04 digits04 sets/digits04
check "the server stops cleanly again" stop_server
finish
