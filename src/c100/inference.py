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
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from c100.data.cifar import NUM_CLASSES, class_names
from c100.data.classes import ClassNames
from c100.errors import CheckpointError
from c100.images import PREPROCESSING, as_uint8_batch, load_image  # noqa: F401  (PREPROCESSING, load_image: public)
from c100.restore import build_model, model_from_checkpoint
from c100.weights import is_safetensors, parse_metadata, read_weights, write_weights

# The repository's weights/ folder (hubconf.py and c100.load("resnet18") read it); $C100_WEIGHTS overrides.
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


class LoadedModel:
    """A model in eval mode with its normalisation, class names and metadata.

    ``metadata``: model, recipe, normalize, num_classes, weights ("ema" or "model"), source,
    test_top1_err / test_top5_err (None when unknown), c100_version (of the file's writer),
    config (the TrainConfig dict, when known), training (how the run was trained: command, machine,
    train_time_s, wall_time_s, images_per_s, finished_at; None when unknown).
    """

    def __init__(self, model, metadata: dict, names: ClassNames, device="cpu"):
        from c100.data.loader import Normalizer

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.metadata = metadata
        self.class_names = names
        self.normalizer = Normalizer.named(metadata["normalize"], self.device)

    def __repr__(self):
        return f"LoadedModel({self.metadata['model']!r}, recipe={self.metadata['recipe']!r}, source={self.metadata['source']!r})"

    @property
    def name(self):
        return self.metadata["model"]

    def to(self, device):
        """This model on ``device`` (the nn.Module is moved, not copied: keep using the returned one)."""
        return LoadedModel(self.model, self.metadata, self.class_names, device)

    def preprocess(self, images) -> torch.Tensor:
        """Normalised float (N, 3, 32, 32) on the model's device, ready for ``self.model``."""
        return self.normalizer(as_uint8_batch(images).to(self.device))

    @torch.inference_mode()
    def logits(self, images, batch_size=256) -> torch.Tensor:
        """Float32 logits (N, num_classes) on the CPU."""
        x = as_uint8_batch(images)
        out = [self.model(self.normalizer(x[s:s + batch_size].to(self.device))).float().cpu()
               for s in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.metadata["num_classes"])

    def predict(self, images, topk=5, batch_size=256):
        """One dict per image: ``{"file"?, "top": [{"rank", "index", "label", "prob"}], "superclass"}``.

        ``superclass`` is that of the top-1 label ({"index", "label"}), None without a mapping.
        """
        files = [str(images)] if isinstance(images, (str, os.PathLike)) else (
            [str(i) if isinstance(i, (str, os.PathLike)) else None for i in images]
            if isinstance(images, (list, tuple)) else None)
        results = self.results_from_logits(self.logits(images, batch_size), topk)
        for i, r in enumerate(results):
            if files and files[i] is not None:
                r["file"] = files[i]
        return results

    def results_from_logits(self, logits, topk=5):
        k = max(1, min(int(topk), logits.shape[1]))
        probs, idx = F.softmax(logits.float(), dim=1).topk(k, dim=1)
        return [{"top": [{"rank": r + 1, "index": int(i), "label": self.label(int(i)), "prob": float(p)}
                         for r, (p, i) in enumerate(zip(pr, ix))],
                 "superclass": self.class_names.superclass(int(ix[0]))}
                for pr, ix in zip(probs, idx)]

    def label(self, index):
        return self.class_names.fine[index] if index < len(self.class_names.fine) else f"class_{index}"


def load(name_or_path, device="cpu", data_root=None) -> LoadedModel:
    """A ready model from a weights file (.safetensors), a checkpoint (.pt), a run folder, the
    name of a model whose weights ship in the repository (weights/<name>.safetensors), or an .onnx
    export (run by ONNX Runtime on the CPU, c100.onnx_runtime; ``device`` is then ignored)."""
    from c100.models import list_models

    p = Path(name_or_path)
    if not p.exists() and str(name_or_path) in list_models():
        p = shipped_weights(str(name_or_path))
    if p.is_dir():
        p = p / "checkpoints" / "last.pt"
    if not p.is_file():
        raise CheckpointError(f"{p} does not exist (give a .safetensors weights file, a checkpoint or a run folder)")
    from c100.onnx_runtime import is_onnx

    if is_onnx(p):  # an export (fp32 or int8), by name or content: runs through ONNX Runtime on the CPU
        from c100.onnx_runtime import load_onnx

        return load_onnx(p)
    if p.suffix == ".safetensors" or is_safetensors(p):
        return load_weights(p, device)
    return load_checkpoint_model(p, device, data_root)


def shipped_weights(name) -> Path:
    """weights/<name>.safetensors of the repository (or $C100_WEIGHTS); a clear error when absent."""
    folder = Path(os.environ.get("C100_WEIGHTS") or REPO_WEIGHTS)
    path = folder / f"{name}.safetensors"
    if not path.is_file():
        raise CheckpointError(
            f"no pretrained weights for {name!r}: {path} does not exist. They are made from a training run: "
            f"`c100 train {name} --recipe <recipe>` then `c100 export runs/<run> --format safetensors "
            f"--out {path}` (see weights/README.md), or point $C100_WEIGHTS at a folder holding {name}.safetensors")
    return path


def _run_summary(ckpt_path, ckpt):
    """The run's summary.json when the checkpoint is the run's final one, else None."""
    path = Path(ckpt_path)
    summary = path.parent.parent / "summary.json"
    if path.parent.name != "checkpoints" or path.name != "last.pt" or not summary.is_file():
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
