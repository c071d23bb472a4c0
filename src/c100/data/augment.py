"""Batched augmentation on the training device: uint8 (B, 3, H, W) in, uint8 out.

Randomness comes in as explicit draws (``EpochDraws``) made once per epoch from a CPU generator
seeded by (seed, epoch). The same draws give the same batches on CPU and CUDA, at any world size,
and after a resume in the middle of an epoch.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F


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
    """
    b, c, h, w = images.shape
    if pad:
        padded = F.pad(images, (pad, pad, pad, pad))
        rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # (B, H)
        cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # (B, W)
        images = padded[torch.arange(b, device=images.device)[:, None, None, None],
                        torch.arange(c, device=images.device)[None, :, None, None],
                        rows[:, None, :, None], cols[:, None, None, :]]
    if flips.any():
        images = torch.where(flips[:, None, None, None], images.flip(3), images)
    return images
