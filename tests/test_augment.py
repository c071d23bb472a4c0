"""Strong augmentation on uint8 batches: AutoAugment, RandAugment, TrivialAugment, Cutout, random erasing,
Mixup and CutMix. Each op against torchvision image by image; shapes, dtypes, determinism under the seed,
per-image diversity, masked areas, soft targets, and world-size-free, resumable batches."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from c100.data.augment import StrongAugment, stream_seed
from c100.data.loader import DeviceDataset, TrainBatches
from c100.data.mixing import CUTMIX, MIXUP, NONE, draw_mixing, mix, partners
from c100.data.policies import (AUTOAUGMENT_CIFAR10, NUM_BINS, OP_ID, OPS, RANDAUGMENT_OPS, TRIVIALAUGMENT_OPS,
                                Boxes, apply_ops, box_mask, draw_cutout, draw_erasing, erase, magnitude_bins)

POLICIES = ("autoaugment", "randaugment", "trivialaugment")


def images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    x[: n // 4] = x[: n // 4] // 64 * 64  # a few low-entropy images (flat histograms, equal min/max)
    return x


def reference(img, op, mag):
    """torchvision v2's definition of each op on one image (as its policies call them)."""
    if op == "Identity":
        return img
    if op in ("ShearX", "ShearY"):
        deg = math.degrees(math.atan(mag))
        shear = [deg, 0.0] if op == "ShearX" else [0.0, deg]
        return TF.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, center=[0, 0])
    if op in ("TranslateX", "TranslateY"):
        t = [int(mag), 0] if op == "TranslateX" else [0, int(mag)]
        return TF.affine(img, angle=0.0, translate=t, scale=1.0, shear=[0.0, 0.0])
    if op == "Rotate":
        return TF.rotate(img, angle=mag)
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        fn = {"Brightness": TF.adjust_brightness, "Color": TF.adjust_saturation, "Contrast": TF.adjust_contrast,
              "Sharpness": TF.adjust_sharpness}[op]
        return fn(img, 1.0 + mag)
    if op == "Posterize":
        return TF.posterize(img, int(mag))
    if op == "Solarize":
        return TF.solarize(img, 255.0 * mag)
    return {"AutoContrast": TF.autocontrast, "Equalize": TF.equalize, "Invert": TF.invert}[op](img)


def magnitudes(op):
    """A spread of each op's magnitudes from both spaces, signed where the op is."""
    out = {0.0}
    for wide, bins in ((True, (0, 7, 15, 20, 30)), (False, (3, 9, 30))):
        table = magnitude_bins(op, NUM_BINS, wide)
        if table is not None:
            out |= {float(table[b]) for b in bins}
    if op in ("Posterize", "Solarize"):
        return sorted(out - {0.0} if op == "Posterize" else out)
    return sorted(out | {-m for m in out})


@pytest.mark.parametrize("op", OPS)
def test_each_op_matches_torchvision_image_by_image(op):
    x = images(12)
    for m in magnitudes(op):
        got = apply_ops(x, torch.full((12,), OP_ID[op]), torch.full((12,), m, dtype=torch.float64))
        want = torch.stack([reference(img, op, m) for img in x])
        assert got.dtype == torch.uint8 and got.shape == x.shape
        assert torch.equal(got, want), f"{op} at magnitude {m}: {(got != want).sum().item()} pixels differ"


def test_mixed_ops_in_one_batch_equal_each_image_alone():
    x = images(len(OPS) * 2)
    op = torch.arange(len(OPS)).repeat(2)
    mag = torch.tensor([0.0, 0.3, -0.2, 9.0, -4.0, 25.0, 0.5, -0.4, 0.7, -0.6, 5.0, 0.4, 0.0, 0.0, 0.0] * 2,
                       dtype=torch.float64)
    got = apply_ops(x, op, mag)
    want = torch.stack([reference(x[i], OPS[op[i]], float(mag[i])) for i in range(len(x))])
    assert torch.equal(got, want)


def test_policy_tables_are_torchvisions():
    ours = [tuple((o, p, b if magnitude_bins(o, 10, False) is not None else None) for o, p, b in sub)
            for sub in AUTOAUGMENT_CIFAR10]
    assert ours == [tuple(sub) for sub in T.AutoAugment(T.AutoAugmentPolicy.CIFAR10).policies]
    for cls, ops, bins, wide in ((v2.RandAugment, RANDAUGMENT_OPS, NUM_BINS, False),
                                 (v2.TrivialAugmentWide, TRIVIALAUGMENT_OPS, NUM_BINS, True),
                                 (v2.AutoAugment, tuple(v2.AutoAugment._AUGMENTATION_SPACE), 10, False)):
        space = cls._AUGMENTATION_SPACE
        assert set(ops) == set(space)
        for op in ops:
            fn, signed = space[op]
            theirs, mine = fn(bins, 32, 32), magnitude_bins(op, bins, wide)
            assert (theirs is None) == (mine is None), op
            if mine is not None:
                assert torch.equal(theirs.double(), mine), op


@pytest.mark.parametrize("policy", POLICIES)
def test_policies_keep_uint8_and_are_deterministic_per_seed_and_epoch(policy):
    spec = StrongAugment(policy=policy, randaugment_n=2, randaugment_m=9)
    x, y = images(32), torch.arange(32)
    a = spec.apply(x, y, spec.draw(32, seed=3, epoch=1))
    b = spec.apply(x, y, spec.draw(32, seed=3, epoch=1))
    assert a[0].dtype == torch.uint8 and a[0].shape == x.shape and torch.equal(a[1], y)
    assert torch.equal(a[0], b[0])
    for seed, epoch in ((4, 1), (3, 2)):
        assert not torch.equal(a[0], spec.apply(x, y, spec.draw(32, seed=seed, epoch=epoch))[0])


@pytest.mark.parametrize("policy", POLICIES)
def test_policies_give_each_image_its_own_ops(policy):
    spec = StrongAugment(policy=policy)
    d = spec.draw(64, seed=0, epoch=0)
    slots = d.policy.ops.shape[1]
    assert slots == {"autoaugment": 2, "randaugment": 2, "trivialaugment": 1}[policy]
    assert len(torch.unique(d.policy.ops)) >= 8  # many different ops inside one batch
    same = images(1).expand(64, -1, -1, -1).contiguous()  # one image 64 times
    out = spec.apply(same, torch.zeros(64, dtype=torch.long), d)[0]
    distinct = len({bytes(o.numpy().tobytes()) for o in out})
    assert distinct >= 20, distinct


def test_randaugment_uses_magnitude_m_and_n_ops():
    d = StrongAugment(policy="randaugment", randaugment_n=3, randaugment_m=20).draw(500, 0, 0).policy
    assert d.ops.shape == (500, 3)
    rotate = d.ops == OP_ID["Rotate"]
    assert rotate.any() and torch.allclose(d.mags[rotate].abs(), torch.tensor(20.0, dtype=torch.float64))
    assert (d.mags[rotate] < 0).any() and (d.mags[rotate] > 0).any()


def test_autoaugment_applies_each_step_with_its_probability():
    d = StrongAugment(policy="autoaugment").draw(20_000, 0, 0).policy
    # Invert is a step of 3 of the 25 sub-policies, at p 0.1, 0.0 and 0.1: per image (0.1 + 0 + 0.1) / 25
    invert = (d.ops == OP_ID["Invert"]).sum().item() / len(d.ops)
    assert invert == pytest.approx((0.1 + 0.0 + 0.1) / 25, abs=0.003)


def test_cutout_masks_the_advertised_area():
    g = torch.Generator().manual_seed(0)
    boxes = draw_cutout(2000, 8, 32, 32, g)
    x = torch.full((2000, 3, 32, 32), 255, dtype=torch.uint8)
    out = erase(x, boxes, (1, 2, 3))
    masked = (out != 255).all(1).flatten(1).sum(1)
    y1, y2, x1, x2 = boxes.box.T
    assert torch.equal(masked, (y2 - y1) * (x2 - x1))
    inside = (y1 > 0) & (y2 < 32) & (x1 > 0) & (x2 < 32)
    assert inside.float().mean() > 0.5 and (masked[inside] == 64).all()  # a whole 8x8 square when inside
    assert (masked >= 16).all()  # the centre is in the image: at least a quarter of the square remains
    inside_box = box_mask(boxes.box, 32, 32).expand_as(out)
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8).view(1, 3, 1, 1).expand_as(out)
    assert torch.equal(out[inside_box], fill[inside_box]) and (out[~inside_box] == 255).all()


def test_random_erasing_boxes_lie_inside_with_the_area_and_probability_asked():
    g = torch.Generator().manual_seed(0)
    box = draw_erasing(4000, 0.5, 32, 32, g).box
    y1, y2, x1, x2 = box.T
    area = (y2 - y1) * (x2 - x1)
    erased = area > 0
    assert 0.45 < erased.float().mean() < 0.55
    assert (y1 >= 0).all() and (y2 <= 32).all() and (x1 >= 0).all() and (x2 <= 32).all()
    frac = area[erased].double() / 1024
    assert frac.min() >= 0.012 and frac.max() <= 0.36  # 2-33% of the area, up to rounding of the sides


@pytest.mark.parametrize("mixup,cutmix", [(0.2, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_mixing_gives_float_images_and_soft_targets_that_sum_to_one(mixup, cutmix):
    n = 64
    spec = StrongAugment(mixup_alpha=mixup, cutmix_alpha=cutmix)
    # image i is flat at value 3 * i, so every output pixel tells whose it is
    x = (torch.arange(n, dtype=torch.uint8) * 3).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()
    y = torch.arange(n) % 100
    d = spec.draw(n, seed=1, epoch=0)
    out, target = spec.apply(x, y, d)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert target.dtype == torch.float32 and target.shape == (n, 100)
    assert torch.allclose(target.sum(1), torch.ones(n)) and (target >= 0).all()
    j = partners(n, x.device)
    lam = d.mixing.lam
    assert torch.allclose(target[torch.arange(n), y], lam) and torch.allclose(target[torch.arange(n), y[j]], 1 - lam)
    kinds = d.mixing.kind
    for i in range(n):
        own, other = float(x[i, 0, 0, 0]), float(x[j[i], 0, 0, 0])
        if kinds[i] == MIXUP:
            assert torch.allclose(out[i], lam[i] * own + (1 - lam[i]) * other)
        else:  # CutMix: lam is exactly the share of the image's own pixels
            assert (out[i] == own).float().mean() == pytest.approx(float(lam[i]), abs=1e-6)
    assert set(kinds.tolist()) == ({MIXUP} if not cutmix else {CUTMIX} if not mixup else {MIXUP, CUTMIX})
    again = spec.apply(x, y, spec.draw(n, seed=1, epoch=0))
    assert torch.equal(out, again[0]) and torch.equal(target, again[1])
    assert not torch.equal(out, spec.apply(x, y, spec.draw(n, seed=1, epoch=1))[0])


def test_mix_prob_zero_and_odd_batches_leave_images_unmixed():
    d = draw_mixing(9, np.random.default_rng(0), 1.0, 1.0, prob=0.0)
    assert (d.kind == NONE).all() and (d.lam == 1).all() and (d.box == 0).all()
    assert partners(5, "cpu").tolist() == [1, 0, 3, 2, 4]
    x, y = images(5), torch.arange(5)
    d = draw_mixing(5, np.random.default_rng(0), 1.0, 0.0, prob=1.0)
    out, target = mix(x, y, d, 100)
    assert torch.equal(out[4], x[4].float()) and target[4, 4] == pytest.approx(1.0)


def test_label_smoothing_composes_with_soft_targets():
    torch.manual_seed(0)
    logits, a, b = torch.randn(8, 100), torch.randint(0, 100, (8,)), torch.randint(0, 100, (8,))
    onehot = F.one_hot(a, 100).float()
    assert torch.allclose(F.cross_entropy(logits, onehot, label_smoothing=0.1),
                          F.cross_entropy(logits, a, label_smoothing=0.1))
    lam = 0.3
    soft = lam * onehot + (1 - lam) * F.one_hot(b, 100).float()
    mixed = lam * F.cross_entropy(logits, a, label_smoothing=0.1) + (1 - lam) * F.cross_entropy(
        logits, b, label_smoothing=0.1)
    assert torch.allclose(F.cross_entropy(logits, soft, label_smoothing=0.1), mixed)


def everything(**kw):
    return StrongAugment(**{**dict(policy="trivialaugment", cutout=8, random_erasing=0.5, mixup_alpha=0.2,
                                   cutmix_alpha=1.0, fill=(130, 124, 112)), **kw})


def test_train_batches_are_the_same_at_any_world_size_and_after_a_resume():
    g = torch.Generator().manual_seed(0)
    data = DeviceDataset(torch.randint(0, 256, (200, 3, 32, 32), generator=g, dtype=torch.uint8).numpy(),
                         np.arange(200) % 100, "cpu")
    for spec in (everything(), everything(policy="autoaugment", mixup_alpha=0.0),
                 StrongAugment(policy="randaugment")):
        whole = list(TrainBatches(data, 40, seed=1, epoch=2, strong=spec))
        r0 = list(TrainBatches(data, 40, seed=1, epoch=2, rank=0, world_size=2, strong=spec))
        r1 = list(TrainBatches(data, 40, seed=1, epoch=2, rank=1, world_size=2, strong=spec))
        for (x, y), (x0, y0), (x1, y1) in zip(whole, r0, r1):
            assert torch.equal(x, torch.cat([x0, x1])) and torch.equal(y, torch.cat([y0, y1]))
        resumed = list(TrainBatches(data, 40, seed=1, epoch=2, start_step=3, strong=spec))
        for (x, y), (xr, yr) in zip(whole[3:], resumed):
            assert torch.equal(x, xr) and torch.equal(y, yr)
        assert not torch.equal(whole[0][0], next(iter(TrainBatches(data, 40, seed=1, epoch=3, strong=spec)))[0])


def test_each_augmentation_has_its_own_stream():
    assert len({stream_seed(0, 0, n) for n in ("policy", "cutout", "erasing", "mixing")}) == 4
    assert stream_seed(0, 1, "policy") != stream_seed(1, 0, "policy")
    a = everything().draw(100, 0, 0)
    b = everything(cutout=0, random_erasing=0.0, mixup_alpha=0.0, cutmix_alpha=0.0).draw(100, 0, 0)
    assert torch.equal(a.policy.ops, b.policy.ops) and torch.equal(a.policy.mags, b.policy.mags)
    assert StrongAugment.from_config(type("C", (), dict(
        augment_policy="none", randaugment_n=2, randaugment_m=9, cutout=0, random_erasing=0.0, mixup_alpha=0.0,
        cutmix_alpha=1.0, mix_prob=0.0))()) is None


def test_box_mask_rows_and_columns():
    m = box_mask(torch.tensor([[1, 3, 2, 5], [0, 0, 0, 0]]), 4, 6)
    assert m.shape == (2, 1, 4, 6) and m[0].sum() == 6 and m[1].sum() == 0
    assert m[0, 0, 1:3, 2:5].all()
    assert isinstance(Boxes(torch.zeros(1, 4, dtype=torch.long))[0:1], Boxes)
