"""AutoAugment, RandAugment, TrivialAugment, Cutout and random erasing on uint8 batches on any device.

* Cubuk, Zoph, Mane, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data", CVPR 2019
  (arXiv:1805.09501): per image one of 25 sub-policies, each two (op, probability, magnitude) steps.
  The CIFAR-10 policy is the one commonly used for CIFAR-100 too.
* Cubuk, Zoph, Shlens, Le. "RandAugment", CVPR-W 2020 (arXiv:1909.13719): n ops drawn uniformly, all at
  magnitude bin m of 31.
* Mueller, Hutter. "TrivialAugment", ICCV 2021 (arXiv:2103.10158): one op, uniform magnitude, wide ranges.
* DeVries, Taylor. "Improved Regularization of CNNs with Cutout", 2017 (arXiv:1708.04552).
* Zhong, Zheng, Kang, Li, Yang. "Random Erasing Data Augmentation", AAAI 2020 (arXiv:1708.04896).

Every image gets its own op and magnitude. A torchvision v2 policy transform called on a batch applies
one op to the whole batch; here the draws are per image (made once per epoch, see augment.py) and each
op is computed for the whole batch with a per-image magnitude tensor, then selected per image with
``torch.where``: a fixed number of batched kernels per step (all five geometric ops share one
``grid_sample``), no host syncs, no per-image Python loop. The ops' definitions (magnitude ranges,
rounding, nearest-neighbour resampling with zero fill) are torchvision v2's, which the tests check image
by image against ``torchvision.transforms.v2.functional``; Equalize calls it (batched there already).
"""
import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from c100.data.names import POLICIES  # one list, shared with the config

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert")
OP_ID = {name: i for i, name in enumerate(OPS)}
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
SIGNED = GEOMETRIC + ("Brightness", "Color", "Contrast", "Sharpness")  # a random sign per application

# RandAugment's and TrivialAugment's op sets (torchvision's; TrivialAugment is its "wide" space).
RANDAUGMENT_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                   "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
TRIVIALAUGMENT_OPS = RANDAUGMENT_OPS
NUM_BINS = 31  # magnitude bins of RandAugment and TrivialAugment; AutoAugment's table uses 10

# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, appendix): (op, probability, magnitude bin of 10).
# The bin of ops without a magnitude is unused (0).
AUTOAUGMENT_CIFAR10 = (
    (("Invert", 0.1, 0), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 0), ("Equalize", 0.9, 0)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 0), ("Equalize", 0.5, 0)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 0), ("AutoContrast", 0.4, 0)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 0)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 0), ("Equalize", 0.6, 0)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 0)),
    (("AutoContrast", 0.8, 0), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 0)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 0), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 0), ("Invert", 0.1, 0)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 0)),
)


# ----------------------------------------------------------------------------- magnitude spaces
def magnitude_bins(op, num_bins, wide, size=32):
    """The magnitude of each bin (float64, unsigned), or None for an op without one.

    Units: shear as tan of the angle, translation in pixels, rotation in degrees, the four
    enhancements as factor - 1, posterize as bits kept, solarize as the threshold's fraction of 255.
    """
    if op == "Posterize":
        return (8 - (torch.arange(num_bins) / ((num_bins - 1) / (6 if wide else 4)))).round().double()
    if op == "Solarize":
        return torch.linspace(1.0, 0.0, num_bins).double()
    top = {"ShearX": 0.99 if wide else 0.3, "ShearY": 0.99 if wide else 0.3,
           "TranslateX": 32.0 if wide else 150.0 / 331.0 * size, "TranslateY": 32.0 if wide else 150.0 / 331.0 * size,
           "Rotate": 135.0 if wide else 30.0}.get(op, 0.99 if wide else 0.9)
    if op in ("Identity", "AutoContrast", "Equalize", "Invert"):
        return None
    return torch.linspace(0.0, top, num_bins).double()


def _table(ops, num_bins, wide, size):
    """(len(ops), num_bins) float64 magnitudes (0 for ops without one) and (len(ops),) signed flags."""
    rows = [magnitude_bins(op, num_bins, wide, size) for op in ops]
    table = torch.stack([r if r is not None else torch.zeros(num_bins, dtype=torch.float64) for r in rows])
    return table, torch.tensor([op in SIGNED for op in ops])


def _signs(neg, signed):
    return torch.where(neg & signed, -1.0, 1.0).double()


# ----------------------------------------------------------------------------- per-epoch draws
@dataclass
class PolicyDraws:
    """Each position's ops, one column per op slot; a skipped step is Identity."""

    ops: torch.Tensor   # (N, S) int64: index into OPS
    mags: torch.Tensor  # (N, S) float64: signed magnitude in the op's unit (see magnitude_bins)

    def to(self, device):
        return PolicyDraws(self.ops.to(device), self.mags.to(device))

    def __getitem__(self, pos):
        return PolicyDraws(self.ops[pos], self.mags[pos])


@dataclass(frozen=True)
class Policy:
    name: str              # autoaugment | randaugment | trivialaugment
    n: int = 2             # RandAugment: ops per image
    m: int = 9             # RandAugment: magnitude bin of 31
    size: int = 32         # image side in pixels (translation ranges scale with it)

    def __post_init__(self):
        if self.name not in POLICIES[1:]:
            raise ValueError(f"policy must be one of {POLICIES[1:]}, got {self.name!r}")

    def ops_used(self):
        if self.name == "autoaugment":
            return tuple(sorted({op for sub in AUTOAUGMENT_CIFAR10 for op, _, _ in sub}, key=OP_ID.get))
        return RANDAUGMENT_OPS if self.name == "randaugment" else TRIVIALAUGMENT_OPS

    def draw(self, count, g: torch.Generator) -> PolicyDraws:
        if self.name == "trivialaugment":
            table, signed = _table(TRIVIALAUGMENT_OPS, NUM_BINS, True, self.size)
            k = torch.randint(len(TRIVIALAUGMENT_OPS), (count, 1), generator=g)
            b = torch.randint(NUM_BINS, (count, 1), generator=g)
            neg = torch.rand(count, 1, generator=g) < 0.5
            ids = torch.tensor([OP_ID[o] for o in TRIVIALAUGMENT_OPS])
            return PolicyDraws(ids[k], table[k, b] * _signs(neg, signed[k]))
        if self.name == "randaugment":
            table, signed = _table(RANDAUGMENT_OPS, NUM_BINS, False, self.size)
            k = torch.randint(len(RANDAUGMENT_OPS), (count, self.n), generator=g)
            neg = torch.rand(count, self.n, generator=g) < 0.5
            ids = torch.tensor([OP_ID[o] for o in RANDAUGMENT_OPS])
            return PolicyDraws(ids[k], table[k, self.m] * _signs(neg, signed[k]))
        return self._draw_autoaugment(count, g)

    def _draw_autoaugment(self, count, g):
        sub_ops = torch.tensor([[OP_ID[op] for op, _, _ in sub] for sub in AUTOAUGMENT_CIFAR10])
        sub_p = torch.tensor([[p for _, p, _ in sub] for sub in AUTOAUGMENT_CIFAR10], dtype=torch.float64)
        sub_mag = torch.tensor([[_aa_magnitude(op, b, self.size) for op, _, b in sub] for sub in AUTOAUGMENT_CIFAR10],
                               dtype=torch.float64)
        sub_signed = torch.tensor([[op in SIGNED for op, _, _ in sub] for sub in AUTOAUGMENT_CIFAR10])
        s = torch.randint(len(AUTOAUGMENT_CIFAR10), (count,), generator=g)
        applied = torch.rand(count, 2, generator=g, dtype=torch.float64) <= sub_p[s]
        neg = torch.rand(count, 2, generator=g) < 0.5
        ops = torch.where(applied, sub_ops[s], OP_ID["Identity"])
        mags = torch.where(applied, sub_mag[s] * _signs(neg, sub_signed[s]), 0.0)
        return PolicyDraws(ops, mags)

    def apply(self, images, d: PolicyDraws):
        """uint8 (B, 3, H, W) -> uint8, each image through its own ops, slot after slot."""
        used = self.ops_used()
        for slot in range(d.ops.shape[1]):
            images = apply_ops(images, d.ops[:, slot], d.mags[:, slot], used)
        return images


def _aa_magnitude(op, b, size):
    bins = magnitude_bins(op, 10, False, size)
    return 0.0 if bins is None else float(bins[b])


# ----------------------------------------------------------------------------- the ops, batched
def apply_ops(images, op, mag, used=OPS):
    """One op per image: uint8 (B, 3, H, W), op (B,) index into OPS, mag (B,) float64 signed magnitude.

    Each op in ``used`` (the policy's op set) runs on the whole batch, with a neutral magnitude where an
    image did not draw it, and ``torch.where`` keeps it for the images that did; ops outside ``used``
    cost nothing. The cost per step is fixed: no data-dependent shapes, no host sync.
    """
    out = images
    geometric = [name for name in used if name in GEOMETRIC]
    if geometric:
        is_geo = torch.zeros_like(op, dtype=torch.bool)
        for name in geometric:
            is_geo |= op == OP_ID[name]
        out = torch.where(is_geo.view(-1, 1, 1, 1), _affine(images, op, mag), out)
    for name in used:
        if name in _PIXEL_OPS:
            chosen = op == OP_ID[name]
            m = torch.where(chosen, mag, _NEUTRAL.get(name, 0.0))
            out = torch.where(_per_image(chosen), _PIXEL_OPS[name](images, m), out)
    return out


def _per_image(t):
    return t.view(-1, 1, 1, 1)


def _to_uint8(x):
    return x.clamp_(0, 255).to(torch.uint8)  # truncation, as torchvision casts


def _blend(images, degenerate, factor):
    """factor * image + (1 - factor) * degenerate, clamped and truncated to uint8 (torchvision's _blend)."""
    ratio = _per_image(factor.float())
    rest = _per_image((1.0 - factor).float())  # 1 - factor in float64 first, as Python does for a scalar
    return _to_uint8(images.mul(ratio).addcmul_(degenerate, rest))  # addcmul: torchvision's rounding on the CPU


def _gray(images):
    r, g, b = images.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3).floor_()


def _brightness(images, m):
    return _to_uint8(images.mul(_per_image((1.0 + m).float())))


def _color(images, m):
    return _blend(images, _gray(images), 1.0 + m)


def _contrast(images, m):
    return _blend(images, _gray(images).mean(dim=(-3, -2, -1), keepdim=True), 1.0 + m)


@lru_cache(maxsize=None)
def _constant(values, device, dtype):
    """A small constant tensor, copied to the device once (a copy per step would sync with the host)."""
    return torch.tensor(values, dtype=dtype).to(device)


def _sharpness(images, m):
    c = images.shape[-3]
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = _constant(((a, a, a), (a, b, a), (a, a, a)), images.device, torch.float32)
    out = images.float()
    blurred = F.conv2d(out, kernel.expand(c, 1, 3, 3), groups=c).round_()
    view = out[..., 1:-1, 1:-1]  # the border keeps its pixels, as in PIL and torchvision
    view.addcmul_(blurred.sub_(view), _per_image((1.0 - (1.0 + m)).float()))
    return _to_uint8(out)


def _posterize(images, m):
    bits = m.round().long().clamp(0, 8)
    mask = (((1 << bits) - 1) << (8 - bits)).to(torch.uint8)
    return images & _per_image(mask)


def _solarize(images, m):
    threshold = _per_image((255.0 * m).float())
    return torch.where(images.float() >= threshold, images.bitwise_not(), images)


def _autocontrast(images, m):
    """Each channel stretched to [0, 255] (torchvision's arithmetic; masked assignment would sync)."""
    x = images.float()
    lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    inv_scale = torch.where(flat, 1.0, (hi - lo).mul_(1.0 / 255))
    return _to_uint8(x.sub_(torch.where(flat, 0.0, lo)).div_(inv_scale))


def _equalize(images, m):
    from torchvision.transforms.v2 import functional as TF  # imported on first use: torchvision is heavy

    return TF.equalize(images)


_PIXEL_OPS = {
    "Brightness": _brightness, "Color": _color, "Contrast": _contrast, "Sharpness": _sharpness,
    "Posterize": _posterize, "Solarize": _solarize,
    "AutoContrast": _autocontrast, "Equalize": _equalize, "Invert": lambda x, m: x.bitwise_not(),
}
_NEUTRAL = {"Posterize": 8.0}


def _affine(images, op, mag):
    """Shear/translate/rotate each image by its own magnitude: one grid_sample, nearest, zero fill.

    The inverse matrices follow torchvision's conventions (centred pixel coordinates; shears about
    the top-left corner, rotation about the centre, translation truncated to whole pixels).
    """
    b, _, h, w = images.shape
    mag = mag.double()
    zero = torch.zeros_like(mag)
    is_ = lambda name: op == OP_ID[name]  # noqa: E731
    shear = torch.atan(mag) * (180.0 / math.pi) * (math.pi / 180.0)  # radians(degrees(atan)), as torchvision
    sx = torch.where(is_("ShearX"), shear, zero)
    sy = torch.where(is_("ShearY"), shear, zero)
    rot = torch.where(is_("Rotate"), -torch.remainder(mag, 360.0) * (math.pi / 180.0), zero)
    tx = torch.where(is_("TranslateX"), torch.trunc(mag), zero)
    ty = torch.where(is_("TranslateY"), torch.trunc(mag), zero)
    sheared = is_("ShearX") | is_("ShearY")
    cx = torch.where(sheared, -w * 0.5, 0.0).double()
    cy = torch.where(sheared, -h * 0.5, 0.0).double()

    tan_sx, cos_sy = torch.tan(sx), torch.cos(sy)
    a = torch.cos(rot - sy) / cos_sy
    bb = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot - sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d, -bb, -c, a
    m2 = cx - m0 * (cx + tx) - m1 * (cy + ty)
    m5 = cy - m3 * (cx + tx) - m4 * (cy + ty)
    theta = torch.stack([m0, m1, m2, m3, m4, m5], dim=1).float().view(b, 2, 3)

    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=images.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=images.device)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=images.device)], -1)
    scaled = theta.transpose(1, 2) / _constant((0.5 * w, 0.5 * h), images.device, torch.float32)
    grid = base.view(1, h * w, 3).expand(b, -1, -1).bmm(scaled).view(b, h, w, 2)
    out = F.grid_sample(images.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.round_().to(torch.uint8)


# ----------------------------------------------------------------------------- erasing
@dataclass
class Boxes:
    """One rectangle per position, rows [y1, y2) and columns [x1, x2); empty when y1 == y2."""

    box: torch.Tensor  # (N, 4) int64: y1, y2, x1, x2

    def to(self, device):
        return Boxes(self.box.to(device))

    def __getitem__(self, pos):
        return Boxes(self.box[pos])


def draw_cutout(count, size, h, w, g) -> Boxes:
    """Cutout: a size x size square at a uniform centre, clipped at the border (DeVries & Taylor)."""
    cy = torch.randint(h, (count,), generator=g)
    cx = torch.randint(w, (count,), generator=g)
    y1, x1 = cy - size // 2, cx - size // 2
    return Boxes(torch.stack([y1.clamp(0, h), (y1 + size).clamp(0, h), x1.clamp(0, w), (x1 + size).clamp(0, w)], 1))


def draw_erasing(count, p, h, w, g, scale=(0.02, 0.33), ratio=(0.3, 3.3), attempts=10) -> Boxes:
    """Random erasing with probability p: area fraction ~ U(scale), aspect ~ log-U(ratio), the box
    inside the image; as torchvision's RandomErasing, the first of 10 tries that fits, else none."""
    area = h * w * (scale[0] + (scale[1] - scale[0]) * torch.rand(count, attempts, generator=g, dtype=torch.float64))
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(
        count, attempts, generator=g, dtype=torch.float64)
    eh = torch.sqrt(area * torch.exp(logr)).round().long()
    ew = torch.sqrt(area / torch.exp(logr)).round().long()
    fits = (eh < h) & (ew < w)
    first = fits.long().argmax(1, keepdim=True)  # 0 when none fits; masked by `fits` below
    eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
    ok = fits.gather(1, first)[:, 0] & (torch.rand(count, generator=g) < p)
    y1 = (torch.rand(count, generator=g, dtype=torch.float64) * (h - eh + 1)).long()
    x1 = (torch.rand(count, generator=g, dtype=torch.float64) * (w - ew + 1)).long()
    y2, x2 = torch.where(ok, y1 + eh, y1), torch.where(ok, x1 + ew, x1)
    return Boxes(torch.stack([y1, y2, x1, x2], 1))


def box_mask(box, h, w):
    """(B, 1, H, W) bool: inside each image's box."""
    rows = torch.arange(h, device=box.device).view(1, h, 1)
    cols = torch.arange(w, device=box.device).view(1, 1, w)
    y1, y2, x1, x2 = (box[:, i].view(-1, 1, 1) for i in range(4))
    return ((rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)).unsqueeze(1)


def erase(images, boxes: Boxes, fill):
    """Fill each image's box with ``fill`` (3 uint8 values: the normalisation's mean pixel, so an
    erased pixel is ~0 after normalisation, as in the papers, which erased normalised images)."""
    value = _constant(tuple(fill), images.device, images.dtype).view(1, -1, 1, 1)
    return torch.where(box_mask(boxes.box, *images.shape[-2:]), value, images)
