"""A trained model ready to use: the nn.Module in eval mode with its normalisation, class names and metadata.

c100.inference.load builds one from a checkpoint, a weights file or a run folder; c100.onnx_runtime
subclasses it for an exported graph. It lives below both so that neither imports the other back.
"""
import os

import torch
import torch.nn.functional as F

from c100.data.classes import ClassNames
from c100.images import as_uint8_batch


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
