"""The data set as uint8 tensors on the training device, served in batches.

No per-image PIL work, no worker processes: one epoch's order and augmentation draws are made at
the epoch's start, and each batch is an index + batched crop/flip + normalisation on the device.
Under torchrun each rank takes its slice of every global batch of the same global permutation, so
the global batch means the same thing at every world size.
"""
from dataclasses import dataclass

import numpy as np
import torch

from c100.data.augment import StrongAugment, crop_flip, draw_epoch
from c100.data.cifar import NUM_CLASSES

NORMALIZATIONS = {
    # the seed tutorial's transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    "seed": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # CIFAR-100 training set per-channel mean and std
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass
class Normalizer:
    """uint8 (B, 3, H, W) -> float (x / 255 - mean) / std, optionally channels_last."""

    mean: torch.Tensor
    std: torch.Tensor
    channels_last: bool = False

    @classmethod
    def named(cls, name, device="cpu", channels_last=False):
        mean, std = NORMALIZATIONS[name]
        as_t = lambda v: torch.tensor(v, device=device).view(1, 3, 1, 1) * 255.0  # noqa: E731
        return cls(as_t(mean), as_t(std), channels_last)

    def __call__(self, images_uint8):
        x = (images_uint8.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class DeviceDataset:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64, resident on one device."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, device):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.device = torch.device(device)

    def __len__(self):
        return len(self.labels)


class TrainBatches:
    """Augmented training batches of one epoch: ``for x_uint8, y in TrainBatches(...)``.

    ``batch_size`` is the global batch; this rank yields its ``batch_size // world_size`` slice.
    The last incomplete global batch is dropped so every step has the same size. ``strong``
    (a StrongAugment) follows crop/flip; when it mixes, x is float32 in [0, 255] and y soft targets.
    """

    def __init__(self, data: DeviceDataset, batch_size, seed, epoch, pad=4, flip=True,
                 rank=0, world_size=1, start_step=0, strong: StrongAugment | None = None):
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by world size {world_size}")
        self.data, self.batch_size, self.pad = data, batch_size, pad
        self.local = batch_size // world_size
        self.rank, self.start_step = rank, start_step
        self.draws = draw_epoch(len(data), seed, epoch, pad, flip).to(data.device)
        self.strong = strong
        self.strong_draws = (strong.draw(len(data), seed, epoch, *data.images.shape[-2:]).to(data.device)
                             if strong is not None else None)

    def __len__(self):
        return steps_per_epoch(len(self.data), self.batch_size) - self.start_step

    def __iter__(self):
        for step in range(self.start_step, steps_per_epoch(len(self.data), self.batch_size)):
            lo = step * self.batch_size + self.rank * self.local
            pos = slice(lo, lo + self.local)
            idx = self.draws.order[pos]
            x = crop_flip(self.data.images[idx], self.draws.offsets[pos], self.draws.flips[pos], self.pad)
            y = self.data.labels[idx]
            if self.strong is not None:
                x, y = self.strong.apply(x, y, self.strong_draws[pos])
            yield x, y


def strong_augment(cfg, num_classes=NUM_CLASSES) -> StrongAugment | None:
    """A config's StrongAugment (None when it asks for crop/flip only); erased pixels are the mean pixel."""
    fill = tuple(round(255 * m) for m in NORMALIZATIONS[cfg.normalize][0])
    return StrongAugment.from_config(cfg, fill, num_classes)


def steps_per_epoch(n, batch_size):
    return n // batch_size


def eval_batches(data: DeviceDataset, batch_size, rank=0, world_size=1):
    """Unaugmented batches in order; under torchrun each rank takes a contiguous shard."""
    n = len(data)
    lo, hi = n * rank // world_size, n * (rank + 1) // world_size
    for start in range(lo, hi, batch_size):
        end = min(start + batch_size, hi)
        yield data.images[start:end], data.labels[start:end]
