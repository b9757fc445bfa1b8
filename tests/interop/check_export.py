#!/usr/bin/python3
"""Checks that exported weights are what the tutorial's own Python code accepts.

usage: /usr/bin/python3 tests/interop/check_export.py WEIGHTS_FILE PROBS_JSON

WEIGHTS_FILE is a PYTORCH_STATE_DICT export: torch.load() must give a dict of tensors with
exactly the tutorial CNN's keys, and the CNN's load_state_dict() (strict) must take it.
PROBS_JSON is {"images": [[784 floats in [0,1]], ...], "probabilities": [[10 floats], ...]}:
what the service answered for those images. The tutorial's model, loaded with these weights,
must give the same softmax probabilities, max abs difference < 1e-5.

Prints the max difference; exits 0 when everything holds, 1 otherwise (2 for bad usage).
"""
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

EXPECTED_KEYS = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias"}
PIXELS = 28 * 28
CLASSES = 10
TOLERANCE = 1e-5


class CNN(nn.Module):
    """The tutorial's network, exactly (see shared/bench/seed_train.py)."""

    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc1(x.reshape(x.shape[0], -1))


class CheckFailed(Exception):
    pass


def load_weights(path):
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as e:  # torch.load raises many kinds: report any as a failed check
        raise CheckFailed(f"torch.load({path!r}) failed: {type(e).__name__}: {e}")
    if not isinstance(state, dict):
        raise CheckFailed(f"torch.load gave a {type(state).__name__}, not a dict")
    keys = set(state.keys())
    if keys != EXPECTED_KEYS:
        raise CheckFailed(f"keys {sorted(map(str, keys))}; expected exactly {sorted(EXPECTED_KEYS)} "
                          f"(missing {sorted(EXPECTED_KEYS - keys)}, extra {sorted(map(str, keys - EXPECTED_KEYS))})")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckFailed(f"{key} is a {type(value).__name__}, not a tensor")
        if value.dtype != torch.float32:
            print(f"note: {key} is {value.dtype}; the tutorial's weights are float32")
    model = CNN()
    try:
        model.load_state_dict(state)  # strict: every key and shape must match
    except RuntimeError as e:
        raise CheckFailed(f"CNN.load_state_dict rejected the weights: {e}")
    model.eval()
    print(f"ok: {path}: a dict of {len(state)} tensors that the tutorial's CNN loads")
    return model


def load_probes(path):
    try:
        with open(path) as f:
            probes = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"cannot read {path}: {e}")
    if not isinstance(probes, dict) or "images" not in probes or "probabilities" not in probes:
        raise CheckFailed(f'{path}: expected an object with "images" and "probabilities"')
    try:
        images = torch.tensor(probes["images"], dtype=torch.float32)
        expected = torch.tensor(probes["probabilities"], dtype=torch.float64)
    except (TypeError, ValueError) as e:
        raise CheckFailed(f"{path}: images and probabilities must be arrays of numbers: {e}")
    if images.dim() != 2 or images.shape[1] != PIXELS or images.shape[0] == 0:
        raise CheckFailed(f"{path}: images has shape {list(images.shape)}, expected [N>0, {PIXELS}]")
    if expected.shape != (images.shape[0], CLASSES):
        raise CheckFailed(f"{path}: probabilities has shape {list(expected.shape)}, "
                          f"expected [{images.shape[0]}, {CLASSES}]")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise CheckFailed(f"{path}: image pixels must be finite and in [0, 1]")
    return images.reshape(-1, 1, 28, 28), expected


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        model = load_weights(argv[1])
        images, expected = load_probes(argv[2])
        with torch.no_grad():
            got = F.softmax(model(images), dim=1).double()
        diff = (got - expected).abs().max().item()
        if diff != diff:  # NaN
            raise CheckFailed("the probabilities differ by NaN")
        print(f"max abs difference over {images.shape[0]} images x {CLASSES} classes: {diff:.3g}")
        if not diff < TOLERANCE:
            raise CheckFailed(f"max abs difference {diff:.3g} is not below {TOLERANCE}")
    except CheckFailed as e:
        print(f"FAIL: {e}")
        return 1
    print("ok: the tutorial's CNN reproduces the service's probabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
