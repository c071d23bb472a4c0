"""Weights files: a model's state_dict (EMA weights when the checkpoint has them) plus string
metadata, as safetensors (docs/INFERENCE.md). Beside c100.checkpoint, which holds whole training states.

The metadata (``weights_metadata``) names the model, recipe, normalisation, class names, the test
errors and training record of the run; ``parse_metadata`` reads it back, from a weights file or from
an ONNX export's metadata_props (the same keys).
"""
import json
from pathlib import Path

from c100.atomic import atomic_write_bytes
from c100.data.classes import ClassNames
from c100.data.loader import NORMALIZATIONS
from c100.errors import CheckpointError
from c100.images import PREPROCESSING, SIZE
from c100.provenance import TRAINING_KEYS
from c100.version import __version__

WEIGHTS_FORMAT, WEIGHTS_VERSION = "c100-weights", 1


def is_safetensors(path) -> bool:
    """Whether the file starts as safetensors does: a u64 header length (< 256 MiB) then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 28)


def weights_metadata(m) -> dict:
    """The string metadata of a weights file (safetensors admits str -> str only) for a LoadedModel ``m``."""
    md = m.metadata
    out = {"format": WEIGHTS_FORMAT, "format_version": str(WEIGHTS_VERSION), "c100_version": __version__,
           "model": md["model"], "recipe": md["recipe"], "normalize": md["normalize"],
           "num_classes": str(md["num_classes"]), "weights": md["weights"],
           "input": f"uint8 RGB {SIZE}x{SIZE} -> (x / 255 - mean) / std of 'normalize'",
           "preprocessing": PREPROCESSING,
           "fine_names": json.dumps(m.class_names.fine), "class_names_source": m.class_names.source}
    if m.class_names.coarse and m.class_names.fine_to_coarse:
        out["coarse_names"] = json.dumps(m.class_names.coarse)
        out["fine_to_coarse"] = json.dumps(m.class_names.fine_to_coarse)
    for key in ("test_top1_err", "test_top5_err", "test_tta", "test_err_of", "epoch"):
        if md.get(key) is not None:
            out[key] = str(md[key])
    if md.get("config") is not None:
        out["config"] = json.dumps(md["config"])
    for key, value in (md.get("training") or {}).items():
        if key in TRAINING_KEYS:
            out[TRAINING_KEYS[key]] = str(value)
    return out


# Storage precision of a weights file's floating-point tensors. fp16 halves the file (ResNet18: 45 -> 22 MB)
# and loads into the fp32 model unchanged (load_state_dict casts); its test errors are then measured from
# the stored values (c100.export), since rounding the weights may move them.
STORAGE_DTYPES = ("fp32", "fp16", "bf16")


def storage_tensors(m, dtype="fp32") -> dict:
    """The state_dict of a LoadedModel as safetensors takes it, floating-point tensors in ``dtype``."""
    import torch

    to = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    # contiguous NCHW copies: no shared storage (safetensors refuses it), no channels_last strides
    return {k: (v.detach().cpu().to(to) if v.is_floating_point() else v.detach().cpu()).contiguous().clone()
            for k, v in m.model.state_dict().items()}


def weights_bytes(m, dtype="fp32", changes=None) -> bytes:
    """A weights file's bytes; ``changes`` replaces metadata keys (a value of None removes the key)."""
    from safetensors.torch import save

    metadata = {**weights_metadata(m), "storage_dtype": dtype}
    for key, value in (changes or {}).items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = str(value)
    return save(storage_tensors(m, dtype), metadata=metadata)


def write_weights(m, out, dtype="fp32", changes=None) -> Path:
    """Write a LoadedModel's weights and metadata as a safetensors file, atomically."""
    out = Path(out)
    atomic_write_bytes(out, weights_bytes(m, dtype, changes))
    return out


def read_weights(path):
    """(state_dict, raw string metadata) of a safetensors file; CheckpointError if unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as e:  # SafetensorError, OSError, ...: a truncated or garbled file
        raise CheckpointError(f"{path} is not a readable safetensors file: truncated or corrupt "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    return state, raw


def parse_metadata(raw, path):
    """(metadata dict, ClassNames) from a weights file's (or an ONNX export's) string metadata;
    CheckpointError naming what is missing or malformed."""
    if not raw or raw.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a c100 weights file (no c100 metadata)")
    try:
        version = int(raw.get("format_version", "0"))
    except ValueError:
        version = -1
    if version < 1 or version > WEIGHTS_VERSION:
        raise CheckpointError(f"{path} has weights format version {raw.get('format_version')!r}; "
                              f"this c100 reads 1 to {WEIGHTS_VERSION}")
    missing = [k for k in ("model", "recipe", "normalize", "num_classes", "fine_names") if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: metadata lacks {', '.join(missing)}")
    if raw["normalize"] not in NORMALIZATIONS:
        raise CheckpointError(f"{path}: unknown normalisation {raw['normalize']!r}")
    try:
        fine = json.loads(raw["fine_names"])
        coarse = json.loads(raw["coarse_names"]) if "coarse_names" in raw else None
        table = json.loads(raw["fine_to_coarse"]) if "fine_to_coarse" in raw else None
        num = int(raw["num_classes"])
        floats = {k: float(raw[k]) if k in raw else None for k in ("test_top1_err", "test_top5_err")}
        config = json.loads(raw["config"]) if "config" in raw else None
        epoch = int(raw["epoch"]) if "epoch" in raw else None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: malformed metadata ({e})") from e
    training = {k: raw[key] for k, key in TRAINING_KEYS.items() if key in raw}
    for k in ("train_time_s", "wall_time_s", "images_per_s"):
        if k in training:
            try:
                training[k] = float(training[k])
            except ValueError as e:
                raise CheckpointError(f"{path}: malformed metadata {TRAINING_KEYS[k]} ({e})") from e
    names = ClassNames(fine, coarse, table, raw.get("class_names_source", "weights file metadata"))
    names.check(num, path)
    md = {"model": raw["model"], "recipe": raw["recipe"], "normalize": raw["normalize"], "num_classes": num,
          "weights": raw.get("weights", "model"), "source": str(path), "epoch": epoch, **floats,
          "test_tta": raw.get("test_tta"), "test_err_of": raw.get("test_err_of"),
          "storage_dtype": raw.get("storage_dtype", "fp32"), "c100_version": raw.get("c100_version"), "config": config,
          "class_names_source": f"weights file metadata ({names.source})", "training": training or None}
    return md, names
