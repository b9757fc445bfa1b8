#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/ (small, real inputs of each parser).

Run from the repository root with a Python that has torch (Debian's /usr/bin/python3) for the
state-dict seeds and protoc for the request seeds:
    /usr/bin/python3 tests/fuzz/make_seeds.py [CPYTHON/Lib/test/imghdrdata]
The optional folder (CPython's test pictures) gives the JPEG seeds.
Crashers found by scripts/fuzz.sh live beside the seeds and are never rewritten here.
"""
import gzip
import os
import struct
import subprocess
import sys
import zlib

ROOT = "tests/fuzz/corpus"


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, "seed-" + name), "wb") as f:
        f.write(data)


def idx_images(count, rows, cols):
    body = bytes((i * 37) % 256 for i in range(count * rows * cols))
    return struct.pack(">IIII", 0x803, count, rows, cols) + body


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def idx_pair(images, labels):
    # The idx fuzzer's layout: 2 bytes (little-endian) of images length, images, labels.
    return struct.pack("<H", len(images)) + images + labels


def png(width, height, colour_type, bit_depth, rows, palette=None):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    if palette:
        out += chunk(b"PLTE", palette)
    out += chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in rows)))
    return out + chunk(b"IEND", b"")


def main():
    images = idx_images(3, 4, 4)
    labels = idx_labels([1, 7, 9])
    write("idx", "plain", idx_pair(images, labels))
    write("idx", "gzip", idx_pair(gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0)))
    write("idx", "mixed", idx_pair(gzip.compress(images, mtime=0), labels))
    write("idx", "bad-label", idx_pair(idx_images(1, 2, 2), idx_labels([12])))

    grey = [bytes((x * 32 + y * 16) % 256 for x in range(8)) for y in range(8)]
    write("image", "grey8.png", png(8, 8, 0, 8, grey))
    rgba = [b"".join(bytes(((x * 30) % 256, y * 20, 90, 200)) for x in range(6)) for y in range(6)]
    write("image", "rgba8.png", png(6, 6, 6, 8, rgba))
    write("image", "palette4.png",
          png(8, 4, 3, 4, [bytes([0x01, 0x23, 0x10, 0x32])] * 4, palette=b"\x00\x00\x00\xff\xff\xff"
              b"\x80\x80\x80\x10\x20\x30"))
    write("image", "grey16.png", png(4, 4, 0, 16, [bytes(range(8))] * 4))
    # JPEG (and a GIF the decoder must refuse): CPython's own test pictures, small and real.
    pictures = sys.argv[1] if len(sys.argv) > 1 else None
    if pictures:
        for name in ("python.jpg", "python.png", "python.gif"):
            with open(os.path.join(pictures, name), "rb") as f:
                write("image", name, f.read())

    requests = {
        "raw": 'images { raw_pixels: "%s" } top_k: 3' % ("\\001" * 784),
        "float": "images { float_pixels { %s } }" % " ".join(["values: 0.5"] * 784),
        "encoded": 'images { encoded: "%s" }' % "".join(
            "\\%03o" % b for b in png(8, 8, 0, 8, grey)),
        "two": 'images { raw_pixels: "%s" } images { encoded: "%s" } model_id: "m"' % (
            "\\377" * 784, "".join("\\%03o" % b for b in png(6, 6, 6, 8, rgba))),
    }
    for name, text in requests.items():
        data = subprocess.run(["protoc", "-Iproto", "--encode=classifier.v1.PredictRequest",
                               "classifier/v1/classifier.proto"], input=text.encode(),
                              check=True, capture_output=True).stdout
        write("predict_request", name, data)

    trains = {
        "tutorial": 'dataset: "mnist" epochs: 10 batch_size: 60 learning_rate: 0.001',
        "empty": "",
        "options": 'epochs: 3 optimizer: OPTIMIZER_KIND_SGD momentum: 0.9 weight_decay: 0.0001 '
                   'lr_schedule: LEARNING_RATE_SCHEDULE_STEP lr_step_size: 2 lr_gamma: 0.5 '
                   'validation_fraction: 0.1 keep_best: true early_stopping_patience: 2 '
                   'label_smoothing: 0.1 progress_reports_per_epoch: 4',
        "architecture": "architecture { conv_channels: 8 conv_channels: 16 conv_channels: 32 "
                        "kernel_size: 5 hidden_units: 64 dropout: 0.25 num_classes: 10 } "
                        "augmentation { rotation_degrees: 10 translation: 0.1 scale_min: 0.9 "
                        "scale_max: 1.1 }",
        "sweep": "sweep { learning_rates: 0.001 learning_rates: 0.01 batch_sizes: 32 "
                 "batch_sizes: 64 augment: true augment: false "
                 "architectures { conv_channels: 4 } architectures { hidden_units: 32 } }",
        "distributed": "epochs: 1 distributed { world_size: 2 }",
    }
    for name, text in trains.items():
        data = subprocess.run(["protoc", "-Iproto", "--encode=classifier.v1.TrainRequest",
                               "classifier/v1/classifier.proto"], input=text.encode(),
                              check=True, capture_output=True).stdout
        write("train_request", name, data)

    import torch  # Only the state-dict seeds need it.

    class Net(torch.nn.Module):
        """The tutorial's CNN at its defaults (model/network.h StateDictLayout)."""

        def __init__(self, classes=10, hidden=0):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
            self.fc1 = torch.nn.Linear(16 * 7 * 7, hidden or classes)
            if hidden:
                self.fc2 = torch.nn.Linear(hidden, classes)

    torch.manual_seed(0)
    import io
    for name, net, kwargs in (("tutorial.pt", Net(), {}),
                              ("hidden.pt", Net(classes=3, hidden=4), {}),
                              ("legacy.pt", Net(), {"_use_new_zipfile_serialization": False})):
        buffer = io.BytesIO()
        state = {k: v.half() if name == "hidden.pt" else v for k, v in net.state_dict().items()}
        torch.save(state, buffer, **kwargs)
        write("state_dict", name, buffer.getvalue())


if __name__ == "__main__":
    main()
