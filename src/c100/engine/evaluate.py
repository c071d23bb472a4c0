"""Evaluation: the full set's logits, then metrics as pure functions of them.

Test-time augmentation levels: "none"; "flip" (mean of the image's and its mirror's logits);
"flip-translate" (also 2-pixel shifts in each direction of both, zero-padded as in training).
"""
from contextlib import nullcontext
from functools import partial

import torch
import torch.nn.functional as F

from c100.distributed import DistEnv, all_gather_cat
from c100.metrics import summarize_logits


def _views(x, tta):
    yield x
    if tta in ("flip", "flip-translate"):
        yield x.flip(3)
    if tta == "flip-translate":
        h, w = x.shape[-2:]
        padded = F.pad(x, (2, 2, 2, 2))
        for dy, dx in ((0, 0), (4, 4), (0, 4), (4, 0)):
            shifted = padded[..., dy:dy + h, dx:dx + w]
            yield shifted
            yield shifted.flip(3)


def _view_mean(model, x, tta, autocast):
    total, views = None, 0
    for view in _views(x, tta):
        with autocast() if autocast else nullcontext():
            logits = model(view).float()
        total = logits if total is None else total + logits
        views += 1
    return total / views


def _rank_ties(logits, ks=(1, 5)):
    """Rows whose k-th and (k+1)-th largest logits are equal for some k in ``ks``: there the top-k
    set, and with it the top-1 / top-5 error, depends on how the sort breaks the tie. bf16 logits keep
    8 significant bits, so such ties are common: 24 of 10,000 test images for the shipped ResNet18,
    enough to move its top-1 error between 24.43% and 24.57% by the tie rule alone (24.46% in fp32)."""
    k = min(max(ks) + 1, logits.shape[1])
    top = logits.topk(k, dim=1).values
    tied = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    for j in ks:
        if j < k:
            tied |= top[:, j - 1] == top[:, j]
    return tied


@torch.no_grad()
def predict_logits(model, images_uint8, normalizer, batch_size=1000, tta="none", autocast=None,
                   env: DistEnv = DistEnv(), progress=None) -> torch.Tensor:
    """Logits (N, C) float32 for uint8 images (N, 3, H, W) on the model's device.

    Under ``autocast`` (bf16/fp16), the images whose top-1 or top-5 set is decided by a tie between
    reduced-precision logits are evaluated again in fp32 (``_rank_ties``), so that the errors do not
    depend on how a sort breaks ties; the other images keep their reduced-precision logits.

    Under torchrun the batches are dealt out to ranks whole, so every batch is the same as in a
    single process and the gathered logits are bitwise the same. ``progress``: a label (e.g. "final
    test, tta flip") to show a tqdm bar of the batches on stderr, as training does; None: no bar.
    """
    was_training = model.training
    model.eval()
    n = images_uint8.shape[0]
    starts = list(range(0, n, batch_size))
    mine = starts[len(starts) * env.rank // env.world_size: len(starts) * (env.rank + 1) // env.world_size]
    out = []
    if progress:
        from tqdm import tqdm

        mine = tqdm(mine, desc=progress, unit="batch", leave=False, dynamic_ncols=True)
    for s in mine:
        x = normalizer(images_uint8[s:s + batch_size])
        logits = _view_mean(model, x, tta, autocast)
        if autocast:
            tied = _rank_ties(logits)
            if tied.any():  # recompute only those images in fp32, where the ties are gone
                # autocast off explicitly (the caller may be inside its own autocast region), and the
                # eager module of a compiled one, so that a few odd-sized fp32 batches compile nothing
                fp32 = partial(torch.autocast, device_type=x.device.type, enabled=False)
                logits[tied] = _view_mean(getattr(model, "_orig_mod", model), x[tied].float(), tta, fp32)
        out.append(logits)
    if not out:  # more ranks than batches: this rank contributes an empty (0, C) block
        out.append(model(normalizer(images_uint8[:0])).float())
    model.train(was_training)
    return all_gather_cat(torch.cat(out), env)


def evaluate(model, images_uint8, labels, normalizer, batch_size=1000, tta="none", autocast=None,
             env: DistEnv = DistEnv(), progress=None):
    """(metrics dict, logits) on a whole evaluation set; ``progress`` as for predict_logits."""
    logits = predict_logits(model, images_uint8, normalizer, batch_size, tta, autocast, env, progress)
    return summarize_logits(logits, labels), logits
