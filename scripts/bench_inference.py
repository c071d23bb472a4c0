"""CPU inference speed of the seed models: images per second at batch 1 and batch 256.

    python scripts/bench_inference.py                         # logreg, simplecnn, resnet18; batch 1 and 256
    python scripts/bench_inference.py --runtimes eager ort-fp32 ort-int8   # also ONNX Runtime fp32 and int8
    python scripts/bench_inference.py --out benchmarks/results/cpu_inference.json
    python scripts/bench_inference.py --models resnet18 --batch-sizes 1 64 --threads 1 4

What is timed: the model's forward pass on an already normalised float batch (N, 3, 32, 32), random
initialised weights (speed does not depend on their values), eval mode, torch.inference_mode, NCHW
float32. Image decoding and resizing are not included. Per (model, batch): warm-up passes, then
``--runs`` timed repetitions of ``--iters`` passes each (at least ``--min-time`` seconds); the
median repetition is reported. ``--runtimes``: eager (PyTorch, the default), ort-fp32 (the model
exported as by ``c100 export --format onnx``, run by an onnxruntime InferenceSession on the
CPUExecutionProvider with intra_op_num_threads = the thread count) and ort-int8 (that graph quantized
as by ``c100 export --quantize int8``, c100.quantize, calibrated here on 64 random images: speed
does not depend on the calibration). The ONNX graphs include the normalisation (x - mean) / std,
which the eager row does not time; each ONNX row gives its ratio to the eager row of the same model,
batch and threads. The load average before and after is recorded: other work on the
machine slows the numbers down. The CPU allocator is set as in the ``c100`` command (c100.cpu_alloc;
``C100_CPU_MALLOC=0`` measures without it), and the JSON records which was in effect.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from c100 import __version__, create_model  # noqa: E402
from c100.cpu_alloc import allocator_state, tune_cpu_allocator  # noqa: E402
from c100.data.cifar import NUM_CLASSES  # noqa: E402


def time_forward(model, batch, runs, min_time, warmup, x=None):
    """Median images/s over ``runs`` repetitions, each at least ``min_time`` seconds of forward passes."""
    x = torch.randn(batch, 3, 32, 32) if x is None else x
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < min_time or n < 1:  # passes per repetition: fill min_time
            model(x)
            n += 1
        per_pass = (time.perf_counter() - t0) / n
        iters = max(1, round(min_time / per_pass))
        rates = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for _ in range(iters):
                model(x)
            rates.append(batch * iters / (time.perf_counter() - t0))
    return {"images_per_s": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": runs,
            "passes_per_run": iters, "ms_per_batch": 1000 * batch / statistics.median(rates)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["logreg", "simplecnn", "resnet18"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 256])
    ap.add_argument("--runs", type=int, default=7, help="timed repetitions; the median is reported")
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds of passes per repetition")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", nargs="+", type=int, default=[0],
                    help="torch thread counts to measure, each in turn (0: torch's default)")
    ap.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=["eager"],
                    help="eager (PyTorch), ort-fp32, ort-int8 (ONNX Runtime; needs pip install 'c100[export]')")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    tune_cpu_allocator()  # what `c100 predict` runs with
    default_threads = torch.get_num_threads()
    load_before = os.getloadavg()
    rows = []
    try:
        for threads in args.threads:
            torch.set_num_threads(threads or default_threads)
            for name in args.models:
                torch.manual_seed(0)
                model = create_model(name, num_classes=NUM_CLASSES).eval()
                graphs = onnx_graphs(model, args.runtimes)
                for runtime in args.runtimes:
                    run = model if runtime == "eager" else ort_runner(graphs[runtime], torch.get_num_threads())
                    for b in args.batch_sizes:
                        x = None if runtime == "eager" else torch.rand(b, 3, 32, 32).numpy()
                        rows.append({"model": name, "batch": b, "threads": torch.get_num_threads(), "runtime": runtime,
                                     **time_forward(run, b, args.runs, args.min_time, args.warmup, x)})
        add_ratios(rows)
    finally:
        torch.set_num_threads(default_threads)
    result = {"c100_version": __version__, "torch": torch.__version__, "default_threads": default_threads,
              "cpu": cpu_name(), "cpu_count": os.cpu_count(), "cpu_allocator": allocator_state(),
              "load_avg_before": [round(v, 2) for v in load_before],
              "load_avg_after": [round(v, 2) for v in os.getloadavg()],
              "what": "forward pass only, float32 NCHW, eval + inference_mode, random weights; median of runs; "
                      "ort-*: onnxruntime CPUExecutionProvider, graph includes the normalisation",
              "onnxruntime": ort_version(args.runtimes),
              "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "results": rows}
    print(markdown(result))
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


RUNTIMES = ("eager", "ort-fp32", "ort-int8")


def ort_version(runtimes):
    if all(r == "eager" for r in runtimes):
        return None
    import onnxruntime

    return onnxruntime.__version__


def onnx_graphs(model, runtimes):
    """{"ort-fp32": bytes, "ort-int8": bytes} as c100 export writes them (random weights)."""
    if all(r == "eager" for r in runtimes):
        return {}
    import numpy as np

    from c100.export import NormalizedModel, onnx_bytes
    from c100.onnx_runtime import require_ort
    from c100.quantize import quantize_bytes

    require_ort()
    fp32, _ = onnx_bytes(NormalizedModel(model, "cifar100").eval(), {})
    graphs = {"ort-fp32": fp32}
    if "ort-int8" in runtimes:
        calib = np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32), dtype=np.uint8)
        graphs["ort-int8"] = quantize_bytes(fp32, calib).SerializeToString()
    return graphs


def ort_runner(graph, threads):
    from c100.onnx_runtime import session

    sess = session(graph, threads=threads)
    return lambda x: sess.run(["logits"], {"images": x})


def add_ratios(rows):
    """``x_eager``: images/s over the eager row's of the same model, batch and threads (when measured)."""
    eager = {(r["model"], r["batch"], r["threads"]): r["images_per_s"] for r in rows if r["runtime"] == "eager"}
    for r in rows:
        base = eager.get((r["model"], r["batch"], r["threads"]))
        r["x_eager"] = round(r["images_per_s"] / base, 3) if base else None


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(result):
    lines = [f"CPU inference ({result['cpu']}, {result['cpu_count']} cores), torch {result['torch']}, load average "
             f"{result['load_avg_before'][0]} before / {result['load_avg_after'][0]} after (1 min), "
             f"allocator {result.get('cpu_allocator', 'default')}", "",
             "| model | batch | threads | images/s (median) | min-max | ms/batch | runtime | x eager |",
             "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in result["results"]:
        ratio = f"{r['x_eager']:.2f}" if r.get("x_eager") is not None else "-"
        lines.append(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['images_per_s']:,.0f} | "
                     f"{r['min']:,.0f}-{r['max']:,.0f} | {r['ms_per_batch']:.2f} | {r.get('runtime', 'eager')} | "
                     f"{ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
