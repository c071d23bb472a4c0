"""Batched augmentation on the training device: uint8 (B, 3, H, W) in, uint8 out.

Randomness comes in as explicit draws (``EpochDraws``) made once per epoch from a CPU generator
seeded by (seed, epoch). The same draws give the same batches on CPU and CUDA, at any world size,
and after a resume in the middle of an epoch. ``StrongAugment`` (below) adds the optional policies,
erasing and mixing of c100.data.policies and c100.data.mixing, with draws of the same kind.
"""
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from c100.data.cifar import NUM_CLASSES
from c100.data.mixing import draw_mixing, mix
from c100.data.policies import Policy, draw_cutout, draw_erasing, erase


@dataclass
class EpochDraws:
    """One epoch's random choices, indexed by position in the epoch's order."""

    order: torch.Tensor    # (N,) int64: permutation of the training images
    offsets: torch.Tensor  # (N, 2) int64: crop top-left corner in the padded image, in [0, 2*pad]
    flips: torch.Tensor    # (N,) bool: mirror horizontally

    def to(self, device):
        return EpochDraws(self.order.to(device), self.offsets.to(device), self.flips.to(device))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # Distinct, reproducible stream per (seed, epoch); independent of device and world size.
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919) % (2**63 - 1))


def draw_epoch(n: int, seed: int, epoch: int, pad: int, flip: bool, shuffle: bool = True) -> EpochDraws:
    g = epoch_generator(seed, epoch)
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=g) if pad else torch.zeros(n, 2, dtype=torch.long)
    flips = torch.rand(n, generator=g) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return EpochDraws(order, offsets, flips)


def crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels, crop back to the input size at ``offsets``, mirror where ``flips``.

    Matches torchvision's RandomCrop(size, padding=pad) + RandomHorizontalFlip for given draws.
    One gather: the mirror of the crop at column offset ``ox`` is the crop of the mirrored padded
    image at ``2 * pad - ox``, so each image's output is one window of a (padded, mirrored) pair,
    picked with a single advanced index over the sliding-window view (3x faster than indexing
    every pixel on the CPU).
    """
    b, c, h, w = images.shape
    if not pad and flips.dtype == torch.bool and not flips.is_cuda and not flips.any():
        return images
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    pair = torch.stack([padded, padded.flip(3)], 1)  # (B, 2, C, H + 2p, W + 2p)
    windows = pair.unfold(3, h, 1).unfold(4, w, 1)  # (B, 2, C, 2p + 1, 2p + 1, H, W), a view
    flips = flips.to(torch.long)
    cols = torch.where(flips.bool(), 2 * pad - offsets[:, 1], offsets[:, 1])
    return windows[torch.arange(b, device=images.device), flips, :, offsets[:, 0], cols]


# ----------------------------------------------------------------------------- strong augmentation
def stream_seed(seed: int, epoch: int, name: str) -> int:
    """A 63-bit seed for one named stream of one epoch, independent of the other streams."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass
class StrongDraws:
    """One epoch's draws for StrongAugment, each indexed by position in the epoch's order (or None)."""

    policy: object = None
    cutout: object = None
    erasing: object = None
    mixing: object = None

    def to(self, device):
        return StrongDraws(*(None if d is None else d.to(device) for d in self._parts()))

    def __getitem__(self, pos):
        return StrongDraws(*(None if d is None else d[pos] for d in self._parts()))

    def _parts(self):
        return self.policy, self.cutout, self.erasing, self.mixing


@dataclass(frozen=True)
class StrongAugment:
    """The optional augmentations after crop/flip, in this order: policy, cutout, random erasing, mixing.

    The ops are c100.data.policies and c100.data.mixing; their draws are made once per epoch from a
    stream of their own seeded by (seed, epoch, name), so switching one on leaves the others' draws,
    and the crop/flip draws, unchanged. Without mixing the batch stays uint8 with integer labels;
    with it the images are float32 in [0, 255] and the labels soft targets (B, num_classes).
    """

    policy: str = "none"           # none | autoaugment | randaugment | trivialaugment
    randaugment_n: int = 2
    randaugment_m: int = 9
    cutout: int = 0                # square side in pixels; 0 = off
    random_erasing: float = 0.0    # probability; 0 = off
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    fill: tuple = (0, 0, 0)        # erased pixels, uint8 per channel
    num_classes: int = NUM_CLASSES

    @classmethod
    def from_config(cls, cfg, fill=(0, 0, 0), num_classes=NUM_CLASSES):
        """From a TrainConfig-like object; None when it asks for nothing beyond crop/flip."""
        spec = cls(cfg.augment_policy, cfg.randaugment_n, cfg.randaugment_m, cfg.cutout, cfg.random_erasing,
                   cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_prob, tuple(fill), num_classes)
        return spec if spec.enabled else None

    @property
    def mixes(self):
        return self.mix_prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    @property
    def enabled(self):
        return self.policy != "none" or self.cutout > 0 or self.random_erasing > 0 or self.mixes

    def _policy(self, size):
        return Policy(self.policy, self.randaugment_n, self.randaugment_m, size)

    def draw(self, n: int, seed: int, epoch: int, h: int = 32, w: int = 32) -> StrongDraws:
        gen = lambda name: torch.Generator().manual_seed(stream_seed(seed, epoch, name))  # noqa: E731
        d = StrongDraws()
        if self.policy != "none":
            d.policy = self._policy(w).draw(n, gen("policy"))
        if self.cutout:
            d.cutout = draw_cutout(n, self.cutout, h, w, gen("cutout"))
        if self.random_erasing:
            d.erasing = draw_erasing(n, self.random_erasing, h, w, gen("erasing"))
        if self.mixes:
            rng = np.random.default_rng(stream_seed(seed, epoch, "mixing"))
            d.mixing = draw_mixing(n, rng, self.mixup_alpha, self.cutmix_alpha, self.mix_prob, h, w)
        return d

    def apply(self, images, labels, d: StrongDraws):
        """This batch's slice of the epoch's draws -> (images, targets)."""
        if d.policy is not None:
            images = self._policy(images.shape[-1]).apply(images, d.policy)
        if d.cutout is not None:
            images = erase(images, d.cutout, self.fill)
        if d.erasing is not None:
            images = erase(images, d.erasing, self.fill)
        if d.mixing is not None:
            images, labels = mix(images, labels, d.mixing, self.num_classes)
        return images, labels
