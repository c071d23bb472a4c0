"""Use a trained model: load it with its preprocessing and class names, and predict image files.

    import c100
    m = c100.load("runs/resnet18-fast-s0")             # run folder, checkpoint (.pt) or .safetensors
    m.predict(["cat.jpg", "photos/dog.png"], topk=5)   # [{"file", "top": [...], "superclass"}, ...]
    x = m.preprocess(["cat.jpg"])                      # normalised float batch (N, 3, 32, 32)

``load`` is the one way from a file to a ready model: `c100 eval`, `c100 predict` and `c100 export`
call it (or, for a checkpoint, ``load_checkpoint_model``). The pieces live beside it: image decoding
(``PREPROCESSING``, ``load_image``) in c100.images, class names in c100.data.classes and
c100.data.cifar.class_names, the safetensors format (``read_weights``, ``weights_metadata``) in
c100.weights, and the model itself, from any saved state_dict, in c100.restore.build_model.
"""
import json
from pathlib import Path

from c100.data.cifar import NUM_CLASSES, class_names
from c100.errors import CheckpointError
from c100.images import PREPROCESSING, load_image  # noqa: F401  (public: c100.inference.load_image)
from c100.loaded_model import LoadedModel
from c100.model_catalog import REPO_WEIGHTS, weights_path  # noqa: F401  (REPO_WEIGHTS: public)
from c100.onnx_runtime import is_onnx, load_onnx
from c100.restore import build_model, model_from_checkpoint
from c100.run_folder import CHECKPOINTS, LAST, SUMMARY, last_checkpoint
from c100.weights import is_safetensors, parse_metadata, read_weights, write_weights  # noqa: F401  (read_weights: public)


def load(name_or_path, device="cpu", data_root=None) -> LoadedModel:
    """A ready model from a weights file (.safetensors), a checkpoint (.pt), a run folder, the
    name of a model whose weights ship in the repository (weights/<name>.safetensors), or an .onnx
    export (run by ONNX Runtime on the CPU, c100.onnx_runtime; ``device`` is then ignored)."""
    from c100.models import list_models

    p = Path(name_or_path)
    if not p.exists() and str(name_or_path) in list_models():
        p = shipped_weights(str(name_or_path))
    if p.is_dir():
        p = last_checkpoint(p)
    if not p.is_file():
        raise CheckpointError(f"{p} does not exist (give a .safetensors weights file, a checkpoint or a run folder)")
    if is_onnx(p):  # an export (fp32 or int8), by name or content: runs through ONNX Runtime on the CPU
        return load_onnx(p)
    if p.suffix == ".safetensors" or is_safetensors(p):
        return load_weights(p, device)
    return load_checkpoint_model(p, device, data_root)


def shipped_weights(name) -> Path:
    """weights/<name>.safetensors of the repository (or $C100_WEIGHTS); a clear error when absent."""
    path = weights_path(name)
    if not path.is_file():
        raise CheckpointError(
            f"no pretrained weights for {name!r}: {path} does not exist. They are made from a training run: "
            f"`c100 train {name} --recipe <recipe>` then `c100 export runs/<run> --format safetensors "
            f"--out {path}` (see weights/README.md), or point $C100_WEIGHTS at a folder holding {name}.safetensors")
    return path


def _run_summary(ckpt_path, ckpt):
    """The run's summary.json when the checkpoint is the run's final one, else None."""
    path = Path(ckpt_path)
    summary = path.parent.parent / SUMMARY
    if path.parent.name != CHECKPOINTS or path.name != LAST or not summary.is_file():
        return None
    try:
        s = json.loads(summary.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    test = s.get("test") or {}
    if s.get("status") != "finished" or s.get("epochs") != ckpt.get("epoch") or "top1_err" not in test:
        return None
    return s


def load_checkpoint_model(path, device="cpu", data_root=None) -> LoadedModel:
    from c100.checkpoint import load_checkpoint
    from c100.provenance import training_record

    ckpt = load_checkpoint(path)
    model, cfg, weights = model_from_checkpoint(ckpt, path)
    summary = _run_summary(path, ckpt)
    test = summary["test"] if summary else {}
    names = class_names(data_root)
    metadata = {"model": cfg.model, "recipe": cfg.recipe, "normalize": cfg.normalize, "num_classes": NUM_CLASSES,
                "weights": weights, "source": str(path), "epoch": ckpt.get("epoch"),
                "test_top1_err": test.get("top1_err"), "test_top5_err": test.get("top5_err"),
                "test_tta": test.get("tta"), "c100_version": ckpt.get("c100_version"),
                "config": ckpt["config"], "class_names_source": names.source,
                # how the run was trained (command, machine, time): what a shipped row names
                "training": training_record(summary, ckpt["config"]) if summary else None}
    return LoadedModel(model, metadata, names, device)


def load_weights(path, device="cpu") -> LoadedModel:
    """A LoadedModel from a c100 safetensors weights file (c100.weights)."""
    state, raw = read_weights(path)
    md, names = parse_metadata(raw, path)
    if md["num_classes"] != NUM_CLASSES:
        raise CheckpointError(f"{path}: {md['num_classes']} classes; c100 models have {NUM_CLASSES}")
    model = build_model(md["model"], state, path, md.get("config"))
    return LoadedModel(model, md, names, device)


def save_weights(source, out, data_root=None) -> Path:
    """Write a checkpoint's (or run folder's, or LoadedModel's) weights and metadata as safetensors."""
    m = source if isinstance(source, LoadedModel) else load(source, "cpu", data_root)
    return write_weights(m, out)
