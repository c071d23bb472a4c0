"""Run an exported ONNX model (`c100 export --format onnx`, fp32 or int8) through ONNX Runtime on the CPU.

``load_onnx(path)`` gives a ``LoadedModel`` whose ``model`` calls an ``onnxruntime.InferenceSession``
(CPUExecutionProvider), so ``c100 predict`` and ``c100 eval`` treat it like a checkpoint. The graph
holds the normalisation and takes float images in [0, 1], so the model's normaliser is ``x / 255``.
The metadata comes from the file's ``metadata_props`` (the weights-file keys, c100.weights).
"""
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from c100.data.cifar import NUM_CLASSES
from c100.errors import C100Error, CheckpointError, ConfigError
from c100.loaded_model import LoadedModel

INSTALL = "pip install 'c100[export]'"
PROVIDERS = ["CPUExecutionProvider"]
# metadata_props keys that `c100 export --quantize int8` adds (c100.quantize)
QUANT_KEYS = ("quantization", "quant_method", "quant_per_channel", "quant_reduce_range", "quant_activation_type",
              "quant_weight_type", "quant_graph_rewrite",
              "calib_split", "calib_images", "calib_seed", "quant_eval_split", "quant_eval_images",
              "int8_test_top1_err", "int8_test_top5_err", "fp32_test_top1_err", "fp32_test_top5_err",
              "int8_fp32_top1_agreement")


class ExportError(C100Error):
    """An export that failed or whose outputs do not match PyTorch's (exit code 1). Here, not in
    c100.export, because c100.quantize raises it too and export imports quantize."""


def require_ort():
    """The onnxruntime module, or a ConfigError saying how to install it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ConfigError(f"ONNX Runtime is not installed (needed for .onnx models and --quantize): {INSTALL}") from e
    return onnxruntime


def is_onnx(path) -> bool:
    """An ONNX file: named .onnx, or a file of another name that parses as an ONNX model with a graph.

    ONNX is protobuf, which has no magic number; a ModelProto starts with field 1 (ir_version, byte
    0x08), which neither a torch checkpoint (zip "PK", or a pickle 0x80) nor safetensors starts with.
    """
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return True
    if p.suffix.lower() in (".safetensors", ".pt", ".pth"):  # those formats' own loaders say what is wrong
        return False
    try:
        with open(p, "rb") as f:
            if f.read(1) != b"\x08":
                return False
        import onnx

        return bool(onnx.load(str(p), load_external_data=False).graph.node)
    except Exception:  # not a file, unreadable, onnx missing, not protobuf: not (usable as) ONNX here
        return False


def session(model_bytes_or_path, threads=0):
    ort = require_ort()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    src = model_bytes_or_path if isinstance(model_bytes_or_path, bytes) else str(model_bytes_or_path)
    return ort.InferenceSession(src, sess_options=opts, providers=PROVIDERS)


class OrtModule(nn.Module):
    """An InferenceSession as an nn.Module: float (N, 3, 32, 32) in [0, 1] -> float32 logits (N, C)."""

    def __init__(self, sess):
        super().__init__()
        self.sess = sess

    def forward(self, images):
        x = np.ascontiguousarray(images.detach().cpu().float().numpy())
        return torch.from_numpy(self.sess.run(["logits"], {"images": x})[0])


def read_props(path) -> dict:
    """The metadata_props of an ONNX file; CheckpointError when it is not a readable ONNX model."""
    try:
        import onnx
    except ImportError as e:
        raise ConfigError(f"the onnx package is not installed (needed for .onnx models): {INSTALL}") from e
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError as e:
        raise CheckpointError(f"{path} does not exist") from e
    except Exception as e:  # DecodeError, ValueError, ...: truncated or not protobuf
        raise CheckpointError(f"{path} is not a readable ONNX model: truncated or corrupt "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if not proto.graph.node:
        raise CheckpointError(f"{path} is not a readable ONNX model: it holds no graph (truncated or not ONNX)")
    return {p.key: p.value for p in proto.metadata_props}


def load_onnx(path) -> "OnnxLoadedModel":
    """A LoadedModel running ``path`` through ONNX Runtime; CheckpointError for corrupt or foreign files."""
    from c100.weights import WEIGHTS_FORMAT, parse_metadata

    require_ort()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (give an .onnx file from `c100 export --format onnx`)")
    raw = read_props(path)
    if raw.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(f"{path} is an ONNX model but not one c100 exported (no c100 metadata); "
                              f"export one with `c100 export RUN --format onnx`")
    md, names = parse_metadata(raw, path)
    try:
        sess = session(path)
    except Exception as e:  # onnxruntime's InvalidGraph, Fail, ...
        raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e
    ins, outs = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
    if ins != ["images"] or "logits" not in outs:
        raise CheckpointError(f"{path}: inputs {ins} / outputs {outs}; a c100 export has input 'images' and "
                              f"output 'logits'")
    md.update(runtime="onnxruntime (CPUExecutionProvider)", quantization=raw.get("quantization", "none (fp32)"),
              onnx={k: raw[k] for k in QUANT_KEYS if k in raw})
    return OnnxLoadedModel(OrtModule(sess), md, names, "cpu")


class OnnxLoadedModel(LoadedModel):
    """A LoadedModel whose graph normalises itself (it takes x / 255) and stays on the CPU."""

    def __init__(self, model, metadata, names, device="cpu"):
        super().__init__(model, metadata, names, "cpu")
        self.normalizer = unit_normalizer()

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise ConfigError(f"{self.metadata['source']}: .onnx models run on the CPU (onnxruntime "
                              f"CPUExecutionProvider), not on {device}")
        return self


def unit_normalizer():
    """uint8 -> float in [0, 1], what an exported graph takes."""
    from c100.data.loader import Normalizer

    return Normalizer(torch.zeros(1, 3, 1, 1), torch.full((1, 3, 1, 1), 255.0))


def logits_of(sess_or_module, images_uint8, batch_size=256) -> torch.Tensor:
    """Float32 logits of uint8 images (N, 3, 32, 32) through an exported graph, in batches."""
    run = sess_or_module if isinstance(sess_or_module, nn.Module) else OrtModule(sess_or_module)
    x = torch.as_tensor(images_uint8)
    out = [run(x[s:s + batch_size].float() / 255.0) for s in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, NUM_CLASSES)


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def run_eval(args):
    """c100 eval for an .onnx file: the test (or validation) errors through ONNX Runtime."""
    import json
    import sys

    from c100.atomic import atomic_write_json
    from c100.data.cifar import ensure_data
    from c100.engine.config import TrainConfig
    from c100.engine.evaluate import evaluate
    from c100.eval_inputs import eval_images

    if args.run_out:
        raise ConfigError("--run-out takes a .safetensors weights file; evaluate the .onnx file without it")
    if args.device == "cuda":
        raise ConfigError(".onnx models run on the CPU (onnxruntime CPUExecutionProvider); leave out --device cuda")
    if args.analysis and not args.out:
        raise ConfigError("--analysis writes files: give --out DIR for an .onnx model")
    tta = args.tta or "none"
    if tta == "flip-translate":
        raise ConfigError("--tta flip-translate pads normalised images with zeros, which an exported graph (it takes "
                          "[0, 1] images) cannot reproduce; use --tta none or flip")
    source = Path(args.checkpoint)
    loaded = load_onnx(source)
    md = loaded.metadata
    cfg = TrainConfig.from_dict(md["config"]) if md.get("config") else None
    root = ensure_data(args.data_root)
    images, labels, coarse = eval_images(root, args.split, cfg, args.verify)
    metrics, logits = evaluate(loaded.model, torch.from_numpy(images), torch.from_numpy(labels), loaded.normalizer,
                               args.batch_size, tta, None,
                               progress=f"{args.split} (tta {tta}, onnxruntime)" if sys.stderr.isatty() else None)
    q = md["onnx"]
    result = {"model_file": source.name, "runtime": md["runtime"], "quantization": md["quantization"],
              "model": md["model"], "recipe": md["recipe"], "split": args.split, "tta": tta, **metrics,
              "recorded_test_top1_err": md.get("test_top1_err"), "recorded_test_top5_err": md.get("test_top5_err"),
              "fp32_test_top1_err": _float(q.get("fp32_test_top1_err")),
              "fp32_test_top5_err": _float(q.get("fp32_test_top5_err"))}
    out = Path(args.out) if args.out else None
    if out is not None:
        atomic_write_json(out / "eval.json", result)
        if args.analysis:
            from c100.data.cifar import load_meta
            from c100.report.analysis import analyse_predictions

            meta = load_meta(root)
            result["analysis"] = analyse_predictions(logits.numpy(), labels, coarse, meta.fine_names,
                                                     meta.coarse_names, out)
            atomic_write_json(out / "eval.json", result)
    if args.json:
        print(json.dumps(result, indent=1, default=float))
        return 0
    fp32 = (f"; the fp32 model (recorded at export, tta none): top-1 {result['fp32_test_top1_err']:.2f}%, "
            f"top-5 {result['fp32_test_top5_err']:.2f}%"
            if args.split == "test" and result["fp32_test_top1_err"] is not None
            and result["fp32_test_top5_err"] is not None else "")
    print(f"{md['model']} ({source.name}, onnxruntime, {md['quantization']}) on {args.split} ({metrics['n']} images, "
          f"tta {tta}): top-1 error {metrics['top1_err']:.2f}%, top-5 error {metrics['top5_err']:.2f}%, "
          f"loss {metrics['loss']:.4f}{fp32}" + (f"  -> {out}" if out is not None else ""))
    return 0
