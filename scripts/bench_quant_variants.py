"""Speed of ONNX Runtime int8 quantization variants against eager and ONNX Runtime fp32 (random weights).

    python scripts/bench_quant_variants.py resnet18      # images/s at batch 1 and 256, 2 threads

An experiment behind docs/BENCHMARKS.md section 4b: which quantize_static format and types run fast on
this CPU. Speed only: accuracy needs trained weights and the test set (c100 export --quantize int8).
The eager rows run without c100's CPU allocator setting, so compare them with bench_inference.py's
only as a lower bound.
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import numpy as np, torch
from c100 import create_model
from c100.export import NormalizedModel, onnx_bytes
from c100.quantize import reader
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static, CalibrationMethod
torch.set_num_threads(2)
name = sys.argv[1] if len(sys.argv) > 1 else "resnet18"
torch.manual_seed(0)
m = create_model(name, num_classes=100).eval()
fp32, _ = onnx_bytes(NormalizedModel(m, "cifar100").eval(), {})
calib = np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32), dtype=np.uint8)
d = tempfile.mkdtemp()
open(f"{d}/fp32.onnx", "wb").write(fp32)
variants = {
 "qdq_s8s8_pc_rr": dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True),
 "qdq_s8s8_pc": dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True, reduce_range=False),
 "qdq_u8s8_pc": dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True, reduce_range=False),
 "qop_u8s8_pc": dict(quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True, reduce_range=False),
 "qop_u8s8_pt": dict(quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=False, reduce_range=False),
}
graphs = {"fp32": f"{d}/fp32.onnx"}
for k, kw in variants.items():
    out = f"{d}/{k}.onnx"
    quantize_static(f"{d}/fp32.onnx", out, reader(calib), calibrate_method=CalibrationMethod.MinMax, **kw)
    graphs[k] = out
def rate(run, x, reps=5, t=1.0):
    for _ in range(2): run(x)
    rs = []
    for _ in range(reps):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < t:
            run(x); n += 1
        rs.append(n * len(x) / (time.perf_counter() - t0))
    return statistics.median(rs)
for b in (1, 256):
    x = torch.rand(b, 3, 32, 32)
    with torch.inference_mode():
        e = rate(lambda z: m(z), x)
    print(f"{name} b{b} eager {e:.0f}", flush=True)
    for k, g in graphs.items():
        so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
        s = ort.InferenceSession(g, so, providers=["CPUExecutionProvider"])
        r = rate(lambda z: s.run(None, {"images": z}), x.numpy())
        print(f"{name} b{b} {k} {r:.0f} ({r/e:.2f}x)", flush=True)
