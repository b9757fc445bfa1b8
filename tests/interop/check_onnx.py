#!/usr/bin/python3
"""Checks an ONNX export against ONNX's own checker and OpenCV's dnn module.

usage: /usr/bin/python3 tests/interop/check_onnx.py MODEL_ONNX PROBS_JSON

MODEL_ONNX is an ONNX export of a model. It must pass onnx.checker.check_model (full check,
shape inference included), use opset >= 13 and only Conv, Relu, MaxPool, Flatten and Gemm,
take "input" float [batch, C, H, W] with a symbolic batch dimension and give "logits" float
[batch, classes]. PROBS_JSON is {"images": [[C*H*W floats in [0,1]], ...], "probabilities":
[[classes floats], ...]}: what the service's own model gives for those images. OpenCV's
cv2.dnn.readNetFromONNX must load the file, and the softmax of its logits must match those
probabilities (max abs difference < 1e-4) with the same top-1 label on every image, in one
batch of all the images and in batches of 1 and 7 (the batch dimension is dynamic).

Prints what it measured; exits 0 when everything holds, 1 otherwise (2 for bad usage).
Needs Debian's python3-onnx and python3-opencv (with numpy).
"""
import json
import sys

import cv2
import numpy as np
import onnx
from onnx import shape_inference

MIN_OPSET = 13
ALLOWED_OPS = {"Conv", "Relu", "MaxPool", "Flatten", "Gemm"}
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
TOLERANCE = 1e-4
SMALL_BATCHES = (1, 7)


class CheckFailed(Exception):
    pass


def dims(value_info):
    """The shape of a tensor's ValueInfo: ints for fixed dimensions, names for symbolic ones."""
    shape = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(dim.dim_value)
        elif dim.HasField("dim_param"):
            shape.append(dim.dim_param)
        else:
            shape.append(None)
    return shape


def check_model(path):
    """ONNX's checker and the graph's interface; returns the input's fixed [C, H, W]."""
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # onnx raises many kinds: report any as a failed check
        raise CheckFailed(f"onnx.checker rejected {path}: {type(e).__name__}: {e}")
    opsets = {o.domain: o.version for o in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset is None or opset < MIN_OPSET:
        raise CheckFailed(f"opset imports {opsets}; expected the default domain at >= {MIN_OPSET}")
    ops = [node.op_type for node in model.graph.node]
    if not set(ops) <= ALLOWED_OPS:
        raise CheckFailed(f"ops {sorted(set(ops) - ALLOWED_OPS)} are outside {sorted(ALLOWED_OPS)}")
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in graph.output] != [OUTPUT_NAME]:
        raise CheckFailed(f"graph inputs {[i.name for i in inputs]} and outputs "
                          f"{[o.name for o in graph.output]}; expected [{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]")
    for value in (inputs[0], graph.output[0]):
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise CheckFailed(f"{value.name} is not a float tensor")
    input_shape = dims(inputs[0])
    output_shape = dims(graph.output[0])
    if (len(input_shape) != 4 or not isinstance(input_shape[0], str) or
            not all(isinstance(d, int) and d > 0 for d in input_shape[1:])):
        raise CheckFailed(f"input shape {input_shape}; expected [symbolic batch, C, H, W]")
    if len(output_shape) != 2 or output_shape[0] != input_shape[0] or not isinstance(output_shape[1], int):
        raise CheckFailed(f"output shape {output_shape}; expected [{input_shape[0]!r}, classes]")
    # ONNX's shape inference must derive the declared output shape from the graph itself.
    try:
        inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as e:
        raise CheckFailed(f"shape inference failed: {type(e).__name__}: {e}")
    inferred_output = dims(inferred.graph.output[0])
    if inferred_output != output_shape:
        raise CheckFailed(f"shape inference gives logits {inferred_output}; declared {output_shape}")
    print(f"ok: onnx {onnx.__version__} checker: ir_version {model.ir_version}, opset {opset}, "
          f"{len(ops)} nodes ({' '.join(ops)}), input {input_shape}, output {output_shape}")
    return input_shape[1:], output_shape[1]


def load_probes(path, image_shape, classes):
    try:
        with open(path) as f:
            probes = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"cannot read {path}: {e}")
    if not isinstance(probes, dict) or "images" not in probes or "probabilities" not in probes:
        raise CheckFailed(f'{path}: expected an object with "images" and "probabilities"')
    try:
        images = np.asarray(probes["images"], dtype=np.float32)
        expected = np.asarray(probes["probabilities"], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CheckFailed(f"{path}: images and probabilities must be arrays of numbers: {e}")
    pixels = int(np.prod(image_shape))
    if images.ndim != 2 or images.shape[1] != pixels or images.shape[0] == 0:
        raise CheckFailed(f"{path}: images has shape {list(images.shape)}, expected [N>0, {pixels}]")
    if expected.shape != (images.shape[0], classes):
        raise CheckFailed(f"{path}: probabilities has shape {list(expected.shape)}, "
                          f"expected [{images.shape[0]}, {classes}]")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise CheckFailed(f"{path}: image pixels must be finite and in [0, 1]")
    return images.reshape(-1, *image_shape), expected


def softmax(logits):
    logits = logits.astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run(net, blob, classes):
    net.setInput(blob, INPUT_NAME)
    logits = net.forward(OUTPUT_NAME)
    if logits.shape != (blob.shape[0], classes):
        raise CheckFailed(f"OpenCV gave logits of shape {list(logits.shape)} for a batch of "
                          f"{blob.shape[0]}; expected [{blob.shape[0]}, {classes}]")
    return softmax(logits)


def compare(what, got, expected):
    """Max abs difference and top-1 agreement; fails past the tolerance or on any other label."""
    diff = float(np.abs(got - expected).max())
    if diff != diff:  # NaN
        raise CheckFailed(f"{what}: the probabilities differ by NaN")
    ours, theirs = expected.argmax(axis=1), got.argmax(axis=1)
    agree = int((ours == theirs).sum())
    # How telling the comparison is: saturated probabilities (all near 0 or 1) hide errors.
    top2 = np.sort(expected, axis=1)[:, -2:]
    print(f"{what}: max abs difference of probabilities {diff:.3g}, "
          f"top-1 agrees on {agree}/{len(ours)} images (top-1 probability mean "
          f"{top2[:, 1].mean():.3f}, min {top2[:, 1].min():.3f}; smallest top-1/top-2 gap "
          f"{(top2[:, 1] - top2[:, 0]).min():.2g})")
    if not diff < TOLERANCE:
        raise CheckFailed(f"{what}: max abs difference {diff:.3g} is not below {TOLERANCE}")
    if agree != len(ours):
        bad = int(np.nonzero(ours != theirs)[0][0])
        raise CheckFailed(f"{what}: image {bad} is {theirs[bad]} for OpenCV, {ours[bad]} for the "
                          f"service (probabilities {got[bad].round(6).tolist()} vs "
                          f"{expected[bad].round(6).tolist()})")


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        image_shape, classes = check_model(argv[1])
        images, expected = load_probes(argv[2], image_shape, classes)
        try:
            net = cv2.dnn.readNetFromONNX(argv[1])
        except cv2.error as e:
            raise CheckFailed(f"cv2.dnn.readNetFromONNX rejected {argv[1]}: {e}")
        if net.empty():
            raise CheckFailed(f"cv2.dnn.readNetFromONNX gave an empty network for {argv[1]}")
        compare(f"opencv {cv2.__version__}, one batch of {len(images)}",
                run(net, images, classes), expected)
        # The batch dimension is dynamic: the same network takes other batch sizes, and
        # cv2.dnn.blobFromImages' NCHW blobs (one channel here, as the images are grey).
        for size in SMALL_BATCHES:
            index = np.arange(size) % len(images)
            if image_shape[0] == 1:
                blob = cv2.dnn.blobFromImages([images[i, 0] for i in index])
            else:
                blob = np.ascontiguousarray(images[index])
            if blob.shape != (size, *image_shape):
                raise CheckFailed(f"blob of shape {list(blob.shape)} for a batch of {size}")
            compare(f"opencv, a batch of {size}", run(net, blob, classes), expected[index])
    except CheckFailed as e:
        print(f"FAIL: {e}")
        return 1
    print("ok: OpenCV runs the ONNX export and reproduces the service's probabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
