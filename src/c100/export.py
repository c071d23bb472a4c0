"""Export a trained model as ONNX, TorchScript or safetensors, with a dynamic batch dimension.

ONNX and TorchScript exports carry the training normalisation inside them (``NormalizedModel``):

    input  "images"  float32 (N, 3, 32, 32), RGB in [0, 1]  (uint8 pixels / 255, after the resize rule)
    output "logits"  float32 (N, 100)                        (softmax for probabilities)

N is free (1, 7, 256, ...). The resize rule is c100.images.PREPROCESSING; the class names and
the rest of the metadata go into the file (ONNX metadata_props; a TorchScript extra file
``c100_metadata.json``; safetensors metadata). Each export is checked before it is written:
the exported model's logits must match PyTorch's at batch sizes 1 and 7.
"""
import io
import json
import os
import stat
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from c100.errors import ConfigError
from c100.onnx_runtime import ExportError, require_ort

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "safetensors": ".safetensors"}
TORCHSCRIPT_METADATA = "c100_metadata.json"
INPUT_DOC = "float32 (N, 3, 32, 32) RGB in [0, 1]; the normalisation is inside the model"
TOLERANCE = 1e-4  # max |exported - PyTorch| logit difference, relative to the largest logit (at least 1)


class NormalizedModel(nn.Module):
    """``model((images - mean) / std)``: takes float images in [0, 1] instead of normalised ones."""

    def __init__(self, model, normalize):
        from c100.data.loader import NORMALIZATIONS

        super().__init__()
        mean, std = NORMALIZATIONS[normalize]
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, images):
        return self.model((images - self.mean) / self.std)


def wrap(loaded) -> NormalizedModel:
    return NormalizedModel(loaded.model, loaded.metadata["normalize"]).to("cpu").eval()


def export_metadata(loaded) -> dict:
    from c100.weights import weights_metadata

    return {**weights_metadata(loaded), "input": INPUT_DOC, "output": "float32 (N, num_classes) logits"}


def _example(batch):
    return torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))


def onnx_bytes(wrapper, metadata) -> tuple[bytes, str]:
    """The serialised ONNX model and the exporter that made it (dynamo, else the TorchScript-based one)."""
    import onnx

    x = _example(2)  # not 1: a batch of 1 would be specialised
    try:
        from torch.export import Dim

        prog = torch.onnx.export(wrapper, (x,), None, input_names=["images"], output_names=["logits"],
                                 dynamic_shapes={"images": {0: Dim("batch", min=1)}}, dynamo=True,
                                 external_data=False, verbose=False)
        proto, exporter = prog.model_proto, "torch.onnx dynamo"
    except Exception as dynamo_error:  # an op the dynamo exporter lacks: try the older exporter once
        buf = io.BytesIO()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(wrapper, (x,), buf, input_names=["images"], output_names=["logits"],
                                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
        except Exception as e:
            raise ExportError(f"ONNX export failed: dynamo exporter ({type(dynamo_error).__name__}: "
                              f"{dynamo_error}); TorchScript-based exporter ({type(e).__name__}: {e})") from e
        proto, exporter = onnx.load_from_string(buf.getvalue()), "torch.onnx torchscript-based"
    for key, value in {**metadata, "exporter": exporter}.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString(), exporter


def torchscript_bytes(wrapper, metadata) -> tuple[bytes, str]:
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export, and still works
        warnings.filterwarnings("ignore", message=".*torch.jit.*")
        traced = torch.jit.trace(wrapper, _example(2), check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata)})
    return buf.getvalue(), "torch.jit.trace"


def run_exported(fmt, data: bytes, images: torch.Tensor) -> torch.Tensor:
    """Logits of an exported model (bytes as written) on float images in [0, 1]."""
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        return torch.from_numpy(sess.run(["logits"], {"images": images.numpy()})[0])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*")
        return torch.jit.load(io.BytesIO(data), map_location="cpu")(images)


def verify_export(fmt, data, wrapper, batches=(1, 7)) -> float:
    """Largest |exported - PyTorch| logit difference over the batch sizes; ExportError past TOLERANCE."""
    worst = 0.0
    for b in batches:
        x = _example(b)
        with torch.inference_mode():
            ref = wrapper(x)
        got = run_exported(fmt, data, x)
        if got.shape != ref.shape:
            raise ExportError(f"the {fmt} export gives shape {tuple(got.shape)} for batch {b}, "
                              f"PyTorch {tuple(ref.shape)}: the batch dimension is not dynamic")
        diff = (got - ref).abs().max().item()
        worst = max(worst, diff)
        if diff > TOLERANCE * max(1.0, ref.abs().max().item()):
            raise ExportError(f"the {fmt} export differs from PyTorch by {diff:.3g} at batch {b}; not written")
    return worst


def default_out(source, model_name, fmt) -> Path:
    """RUN/export/<model><ext> for a run folder or a checkpoint in RUN/checkpoints/, else beside the file."""
    src = Path(source)
    base = src if src.is_dir() else (src.parent.parent if src.parent.name == "checkpoints" else src.parent)
    return base / "export" / f"{model_name}{FORMATS[fmt]}"


def check_out(out: Path, fmt):
    """``out`` must be a new path or a regular file: the atomic write replaces whatever is there, so a
    device (/dev/full, /dev/null), pipe, socket or folder there would be replaced by a plain file."""
    try:
        st = os.stat(out)  # follows links: a link to a device is refused too
    except FileNotFoundError:
        return
    except OSError as e:  # e.g. a parent that is a file
        raise ConfigError(f"--out {out}: cannot be used ({e.strerror or e}); give a new file name") from e
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"--out {out} is a folder; give a file name, e.g. {out / ('model' + FORMATS[fmt])}")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"--out {out} is not a regular file (a device, pipe or socket); c100 export writes "
                          f"only to a regular file or a new path")


def measure_stored(data: bytes, loaded, root, verify="full", batch_size=1000) -> dict:
    """Test errors of the weights exactly as stored in ``data`` (a weights file's bytes), evaluated as
    `c100 eval FILE` does: the fp32 model with the stored values loaded, the run's TTA and precision."""
    from safetensors.torch import load as load_bytes

    from c100.engine.config import TrainConfig
    from c100.engine.device import autocast_for
    from c100.engine.evaluate import evaluate
    from c100.eval_inputs import eval_images
    from c100.restore import build_model

    md = loaded.metadata
    cfg = TrainConfig.from_dict(md["config"]) if md.get("config") else None
    model = build_model(md["model"], load_bytes(data), "the stored weights", md.get("config")).eval()
    images, labels, _ = eval_images(root, "test", cfg, verify)
    tta = md.get("test_tta") or (cfg.tta if cfg else "none")
    autocast, _ = autocast_for(cfg.amp if cfg else "none", torch.device("cpu"))
    metrics, _ = evaluate(model, torch.from_numpy(images), torch.from_numpy(labels), loaded.normalizer, batch_size,
                          tta, autocast)
    return {"test_top1_err": metrics["top1_err"], "test_top5_err": metrics["top5_err"], "test_tta": tta}


def reduced_weights(loaded, dtype, root, verify="full", measure=True) -> tuple[bytes, dict]:
    """(bytes, report) of a weights file in ``dtype`` (fp16/bf16). Its test errors are measured from
    the stored values (``measure``), or dropped: those of the source were measured on other weights.
    The source's errors stay in the metadata as source_test_top1_err / source_test_top5_err."""
    from c100.weights import weights_bytes

    md = loaded.metadata
    changes = {"test_top1_err": None, "test_top5_err": None, "test_err_of": None,
               "source_test_top1_err": md.get("test_top1_err"), "source_test_top5_err": md.get("test_top5_err")}
    data = weights_bytes(loaded, dtype, changes)
    if not measure:
        return data, {"storage_dtype": dtype, "test_errors": "not measured (--no-measure): none recorded"}
    measured = measure_stored(data, loaded, root, verify)
    changes.update(measured, test_err_of=f"the stored {dtype} weights, evaluated by c100 export")
    report = {"storage_dtype": dtype, **measured,
              "source_test_top1_err": md.get("test_top1_err"), "source_test_top5_err": md.get("test_top5_err")}
    return weights_bytes(loaded, dtype, changes), report


def export_model(source, fmt, out=None, data_root=None, check=True, quantize=None, calib_images=None,
                 calib_seed=None, verify="full", measure=True, dtype="fp32") -> dict:
    """Export ``source`` (anything c100.load takes, or a LoadedModel); returns a report dict.

    ``quantize="int8"`` (ONNX only): the verified fp32 graph statically quantized (c100.quantize),
    calibrated on ``calib_images`` train images drawn with ``calib_seed``. ``dtype`` (safetensors
    only): storage precision of the floating-point tensors; for fp16/bf16 the test errors recorded
    are measured from the stored values on the test split of ``data_root`` (``measure``)."""
    from c100.atomic import atomic_write_bytes
    from c100.inference import LoadedModel, load, save_weights
    from c100.weights import STORAGE_DTYPES

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if quantize not in (None, "int8"):
        raise ConfigError(f"unknown --quantize {quantize!r}; c100 quantizes to int8")
    if quantize and fmt != "onnx":
        raise ConfigError("--quantize int8 needs --format onnx (ONNX Runtime's static quantization)")
    if dtype not in STORAGE_DTYPES:
        raise ConfigError(f"unknown --dtype {dtype!r}; choose one of {', '.join(STORAGE_DTYPES)}")
    if dtype != "fp32" and fmt != "safetensors":
        raise ConfigError("--dtype fp16/bf16 is for --format safetensors (ONNX and TorchScript exports are fp32; "
                          "for a smaller ONNX file use --quantize int8)")
    if quantize or (dtype != "fp32" and measure):
        from c100.data.cifar import ensure_data

        if quantize:
            require_ort()
        root = ensure_data(data_root)  # calibration / measurement needs the data: fail before the export
    if out:
        check_out(Path(out), fmt)  # before the (slow) export
    loaded = source if isinstance(source, LoadedModel) else load(source, "cpu", data_root)
    if str(loaded.metadata.get("runtime", "")).startswith("onnxruntime"):
        raise ConfigError(f"{loaded.metadata['source']} is already an ONNX export; export its run folder, checkpoint "
                          f"or .safetensors weights instead")
    loaded = loaded.to("cpu")
    if not out:
        out = default_out(loaded.metadata["source"], loaded.name, fmt)
        out = out.with_name(f"{loaded.name}.int8.onnx") if quantize else out
    out = Path(out)
    check_out(out, fmt)
    report = {"format": fmt, "out": str(out), "model": loaded.name, "source": loaded.metadata["source"],
              "weights": loaded.metadata["weights"]}
    if fmt == "safetensors":
        report["input"] = "uint8 images normalised as in training (c100.load applies it)"
        if dtype == "fp32":
            save_weights(loaded, out)
            return report
        data, added = reduced_weights(loaded, dtype, root if measure else None, verify, measure)
        atomic_write_bytes(out, data)
        return {**report, **added}
    wrapper = wrap(loaded)
    metadata = export_metadata(loaded)
    data, exporter = (onnx_bytes if fmt == "onnx" else torchscript_bytes)(wrapper, metadata)
    report.update(exporter=exporter, input=INPUT_DOC)
    if check:
        report["max_abs_diff"] = verify_export(fmt, data, wrapper)
    if quantize:
        from c100.quantize import DEFAULT_CALIB_IMAGES, DEFAULT_SEED, quantize_int8

        data, added = quantize_int8(data, root, DEFAULT_CALIB_IMAGES if calib_images is None else calib_images,
                                    DEFAULT_SEED if calib_seed is None else calib_seed, verify, measure)
        report.update(quantization=added)
    atomic_write_bytes(out, data)
    return report
