"""Mixup and CutMix on a batch, with the mixed labels as soft targets.

* Zhang, Cisse, Dauphin, Lopez-Paz. "mixup: Beyond Empirical Risk Minimization", ICLR 2018
  (arXiv:1710.09412): x = lam * x_i + (1 - lam) * x_j, target likewise, lam ~ Beta(a, a).
* Yun, Han, Oh, Chun, Choe, Yoo. "CutMix", ICCV 2019 (arXiv:1905.04899): a box of area fraction
  1 - lam (centre uniform, clipped at the border) is pasted from x_j; lam becomes the kept area.

Every position of an epoch has its own draws (kind, lam, box), made once per epoch like the crop and
flip draws. The partner of the image at position p of the epoch's order is position p ^ 1, the
neighbour in the same (shuffled) order: a pair never straddles two ranks while each rank's slice of
the global batch is even, so the mixed global batch is the same at any world size. (With an odd
slice the last image of each slice has no partner and stays unmixed: then it depends on the world
size.) Both images of a pair use the other's pre-mix pixels, as timm's batch-flip pairing does.

The soft target sums to 1; ``F.cross_entropy(logits, soft, label_smoothing=eps)`` then mixes in the
uniform distribution as it does for hard labels, so label smoothing composes with mixing.
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from c100.data.policies import box_mask

NONE, MIXUP, CUTMIX = 0, 1, 2


@dataclass
class MixDraws:
    kind: torch.Tensor  # (N,) int64: NONE | MIXUP | CUTMIX
    lam: torch.Tensor   # (N,) float32: the weight of the image's own pixels and label (CutMix: kept area)
    box: torch.Tensor   # (N, 4) int64: y1, y2, x1, x2 of the pasted box (CutMix only; else empty)

    def to(self, device):
        return MixDraws(self.kind.to(device), self.lam.to(device), self.box.to(device))

    def __getitem__(self, pos):
        return MixDraws(self.kind[pos], self.lam[pos], self.box[pos])


def draw_mixing(count, rng: np.random.Generator, mixup_alpha, cutmix_alpha, prob=1.0, h=32, w=32) -> MixDraws:
    """Each position: mixed with probability ``prob``; Mixup or CutMix (50/50 when both alphas > 0)."""
    mixed = rng.random(count) < prob
    if mixup_alpha > 0 and cutmix_alpha > 0:
        cut = rng.random(count) < 0.5
    else:
        cut = np.full(count, cutmix_alpha > 0)
    lam_mix = rng.beta(mixup_alpha, mixup_alpha, count) if mixup_alpha > 0 else np.ones(count)
    lam_cut = rng.beta(cutmix_alpha, cutmix_alpha, count) if cutmix_alpha > 0 else np.ones(count)
    cy, cx = rng.integers(0, h, count), rng.integers(0, w, count)
    side = np.sqrt(1.0 - lam_cut)
    bh, bw = (h * side).astype(np.int64), (w * side).astype(np.int64)
    y1, x1 = cy - bh // 2, cx - bw // 2
    box = np.stack([np.clip(y1, 0, h), np.clip(y1 + bh, 0, h), np.clip(x1, 0, w), np.clip(x1 + bw, 0, w)], 1)
    kind = np.where(mixed, np.where(cut, CUTMIX, MIXUP), NONE)
    box[kind != CUTMIX] = 0
    kept = 1.0 - (box[:, 1] - box[:, 0]) * (box[:, 3] - box[:, 2]) / (h * w)
    lam = np.where(kind == MIXUP, lam_mix, np.where(kind == CUTMIX, kept, 1.0))
    return MixDraws(torch.from_numpy(kind.astype(np.int64)), torch.from_numpy(lam.astype(np.float32)),
                    torch.from_numpy(box.astype(np.int64)))


def partners(b, device):
    """Index of each image's partner in a batch of b: its neighbour p ^ 1 (itself for an odd last one)."""
    idx = torch.arange(b, device=device)
    mate = idx ^ 1
    return torch.where(mate < b, mate, idx)


def mix(images, labels, d: MixDraws, num_classes):
    """(images float32 in [0, 255], soft targets (B, num_classes) float32) for uint8 or float images."""
    b, _, h, w = images.shape
    j = partners(b, images.device)
    kind = torch.where(j == torch.arange(b, device=j.device), NONE, d.kind)  # an image without a partner
    lam = torch.where(kind == NONE, 1.0, d.lam)
    x = images.float()
    other = x[j]
    lam4 = lam.view(-1, 1, 1, 1)
    blended = torch.where((kind == MIXUP).view(-1, 1, 1, 1), x * lam4 + other * (1.0 - lam4), x)
    pasted = box_mask(d.box, h, w) & (kind == CUTMIX).view(-1, 1, 1, 1)
    out = torch.where(pasted, other, blended)
    own = F.one_hot(labels, num_classes).float()
    target = own * lam[:, None] + own[j] * (1.0 - lam[:, None])
    return out, target
