"""Static int8 quantization of an exported fp32 ONNX model (``c100 export --format onnx --quantize int8``).

ONNX Runtime's ``quantize_static`` in QOperator format (QLinearConv / QGemm nodes): unsigned int8
activations and signed int8 weights (U8S8), per-channel weight scales for Conv and Gemm, MinMax
calibration, and 7-bit weights (``reduce_range``). Why these (docs/BENCHMARKS.md section 4b, measured
on a 2-core AMD EPYC with AVX-512 VNNI): the QDQ S8S8 graph that ONNX Runtime's guide names first ran
resnet18 at 1.2x ORT fp32 at most; U8S8 runs it about 3x faster. QOperator rather than QDQ because
QDQ U8S8 ran the simple CNN slower than fp32. reduce_range: the guide warns that on x86 CPUs without
VNNI (AVX2, AVX-512 before VNNI) the u8s8 kernels' VPMADDUBSW can saturate; measured on such a CPU
(AVX2, shipped simplecnn) per-channel weights without reduce_range lost 14 points of top-1; a file
may run on either kind of CPU, so reduce_range is always on.

Before quantizing, ``relu_before_maxpool`` rewrites MaxPool -> Relu into Relu -> MaxPool (the same
function: both are monotone, so max(relu(x)) = relu(max(x)) exactly). c100's simple CNN pools
before its ReLU because that is faster in PyTorch; ONNX Runtime's QOperator quantizer drops a Relu
whose input is already quantized and so loses it behind a MaxPool, whose quantization parameters are
the convolution's, negatives included: the shipped simplecnn went from 44.5% to 95.7% top-1 error.
After the rewrite the Relu follows the Conv and is folded into the QLinearConv's output range.

The calibration images are ``calib_images`` images of the **train split only**, drawn without
replacement with ``numpy.random.default_rng(seed)``, fed as the export's graph takes them (float32
[0, 1], the normalisation is inside the graph). The test split is read only afterwards, to measure
the int8 and the fp32 graphs' test errors for the metadata.
"""
import io
import logging

import numpy as np

from c100.errors import ConfigError
from c100.onnx_runtime import ExportError, logits_of, require_ort, session

DEFAULT_CALIB_IMAGES = 512
DEFAULT_SEED = 0
CALIB_BATCH = 64
QUANT_METHOD = "onnxruntime.quantization.quantize_static QOperator MinMax"


def calibration_images(root, n, seed, verify="full") -> np.ndarray:
    """``n`` uint8 train images (sorted indices drawn with ``seed``); never the test split."""
    from c100.data import cifar

    train = cifar.load_split(root, "train", verify)
    if not 1 <= n <= len(train.images):
        raise ConfigError(f"--calib-images must be between 1 and {len(train.images)} (the train split), got {n}")
    idx = np.sort(np.random.default_rng(seed).choice(len(train.images), size=n, replace=False))
    return train.images[idx]


def reader(images_uint8):
    """A CalibrationDataReader giving {"images": float32 [0, 1]} batches of ``images_uint8``."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([(images_uint8[s:s + CALIB_BATCH].astype(np.float32) / 255.0)
                                 for s in range(0, len(images_uint8), CALIB_BATCH)])

        def get_next(self):
            x = next(self.batches, None)
            return None if x is None else {"images": x}

    return _Reader()


def relu_before_maxpool(model):
    """``model`` (an onnx ModelProto, changed in place) with every MaxPool -> Relu pair made Relu -> MaxPool.

    A pair is rewritten only when the MaxPool has one output and the Relu is its only consumer. The
    intermediate tensor keeps its name, and its stale shape annotation is dropped (shape inference
    fills it in again). Returns the number of pairs rewritten.
    """
    import onnx

    nodes = list(model.graph.node)
    consumers = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    swapped = set()
    for i, pool in enumerate(nodes):
        users = consumers.get(pool.output[0], []) if pool.op_type == "MaxPool" else []
        if len(pool.output) != 1 or len(users) != 1 or users[0].op_type != "Relu":
            continue
        relu = users[0]
        x, mid, y = pool.input[0], pool.output[0], relu.output[0]
        relu.input[0], relu.output[0], pool.input[0], pool.output[0] = x, mid, mid, y
        j = nodes.index(relu)
        nodes[i], nodes[j] = relu, pool  # each node stays after the nodes it reads
        swapped.add(mid)
    if swapped:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        kept = [v for v in model.graph.value_info if v.name not in swapped]
        del model.graph.value_info[:]
        model.graph.value_info.extend(kept)
        model.CopyFrom(onnx.shape_inference.infer_shapes(model))
    return len(swapped)


def quantize_bytes(fp32_bytes, calib_uint8):
    """The int8 QDQ ModelProto of an fp32 export, calibrated on ``calib_uint8`` (N, 3, 32, 32) images."""
    import tempfile
    from pathlib import Path

    import onnx

    require_ort()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp32 = onnx.load_from_string(fp32_bytes)
    relu_before_maxpool(fp32)
    with tempfile.TemporaryDirectory(prefix="c100-quant-") as tmp:
        out = Path(tmp) / "int8.onnx"
        root_logger = logging.getLogger()
        level = root_logger.level  # quantize_static logs a hint to run quant_pre_process: it changes no node here
        root_logger.setLevel(logging.ERROR)
        try:
            quantize_static(fp32, out, reader(calib_uint8), quant_format=QuantFormat.QOperator, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        finally:
            root_logger.setLevel(level)
        return onnx.load(str(out))


def quantize_int8(fp32_bytes, root, calib_images=DEFAULT_CALIB_IMAGES, seed=DEFAULT_SEED, verify="full",
                  measure=True, batch_size=256) -> tuple[bytes, dict]:
    """(int8 ONNX bytes, the metadata added to it). ``measure``: also the test errors of both graphs."""
    import onnx

    calib = calibration_images(root, calib_images, seed, verify)
    q = quantize_bytes(fp32_bytes, calib)
    fp32 = onnx.load_from_string(fp32_bytes)
    added = {"quantization": "int8 static", "quant_method": QUANT_METHOD,
             "quant_per_channel": "true", "quant_reduce_range": "true",
             "quant_activation_type": "QUInt8", "quant_weight_type": "QInt8",
             "quant_graph_rewrite": "relu before maxpool (exact)",
             "calib_split": "train", "calib_images": str(calib_images), "calib_seed": str(seed)}
    del q.metadata_props[:]  # the fp32 graph's props (quantize_static may or may not keep them), then ours
    for p in fp32.metadata_props:
        q.metadata_props.add(key=p.key, value=p.value)
    buf = io.BytesIO()
    onnx.save(q, buf)
    check_runs(buf.getvalue(), calib)
    if measure:
        added.update(measure_test(fp32_bytes, buf.getvalue(), root, verify, batch_size))
    for key, value in added.items():
        q.metadata_props.add(key=key, value=value)
    return q.SerializeToString(), added


def check_runs(int8_bytes, images_uint8):
    """The int8 graph loads in ONNX Runtime and gives (N, 100) finite logits at batch sizes 1 and 7."""
    from c100.data.cifar import NUM_CLASSES

    sess = session(int8_bytes)
    for b in (1, 7):
        got = logits_of(sess, images_uint8[:b])
        if tuple(got.shape) != (min(b, len(images_uint8)), NUM_CLASSES) or not bool(got.isfinite().all()):
            raise ExportError(f"the int8 graph gives shape {tuple(got.shape)} (or non-finite logits) for batch {b}; "
                              f"not written")


def measure_test(fp32_bytes, int8_bytes, root, verify="full", batch_size=256) -> dict:
    """Test top-1/top-5 errors of both graphs (tta none) and their top-1 agreement, as metadata strings."""
    import torch

    from c100.data import cifar
    from c100.metrics import summarize_logits

    test = cifar.load_split(root, "test", verify)
    labels = torch.from_numpy(np.asarray(test.fine, dtype=np.int64))
    out = {"quant_eval_split": "test", "quant_eval_images": str(len(labels))}
    tops = {}
    for name, data in (("fp32", fp32_bytes), ("int8", int8_bytes)):
        logits = logits_of(session(data), test.images, batch_size)
        m = summarize_logits(logits, labels)
        out[f"{name}_test_top1_err"], out[f"{name}_test_top5_err"] = str(m["top1_err"]), str(m["top5_err"])
        tops[name] = logits.argmax(1)
    out["int8_fp32_top1_agreement"] = str(round(float((tops["fp32"] == tops["int8"]).float().mean()), 6))
    return out
