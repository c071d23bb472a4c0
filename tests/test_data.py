import os
import pickle

import numpy as np
import pytest
import torch

from c100.data import cifar
from c100.data.augment import crop_flip, draw_epoch
from c100.data.loader import DeviceDataset, Normalizer, TrainBatches, eval_batches
from c100.errors import DataContentError, DataCorruptError, DataMissingError
from conftest import make_cifar


def test_tiny_data_loads_in_the_real_format(tiny_data):
    train = cifar.load_split(tiny_data, "train", verify="structure")
    assert train.images.shape == (1000, 3, 32, 32) and train.images.dtype == np.uint8
    assert np.bincount(train.fine, minlength=100).tolist() == [10] * 100
    assert train.coarse.max() == 19
    meta = cifar.load_meta(tiny_data)
    assert meta.fine_names[3] == "fine_3" and len(meta.coarse_names) == 20
    assert (meta.fine_to_coarse(train) == np.arange(100) // 5).all()


def test_full_verification_rejects_a_small_copy(tiny_data):
    with pytest.raises(DataContentError, match="official"):
        cifar.load_split(tiny_data, "train", verify="full")


def test_missing_folder_says_what_to_place_where(tmp_path):
    with pytest.raises(DataMissingError) as e:
        cifar.load_split(tmp_path, "train")
    msg = str(e.value)
    assert "cifar-100-python" in msg and cifar.URL in msg and cifar.TGZ_MD5 in msg


def test_ensure_data_offline_without_download(tmp_path):
    with pytest.raises(DataMissingError, match="c100 data download"):
        cifar.ensure_data(tmp_path)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_with_foreign_global_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    (d / "train").write_bytes(pickle.dumps({b"data": _Payload()}, protocol=2))
    with pytest.raises(DataCorruptError, match="refused.*system"):
        cifar.load_split(tmp_path, "train", verify="structure")
    assert not (tmp_path / "PWNED").exists()


def _write(tmp_path, changes):
    make_cifar(tmp_path, 2, 1)
    raw = pickle.loads((tmp_path / "cifar-100-python" / "train").read_bytes(), encoding="bytes")
    raw.update(changes)
    (tmp_path / "cifar-100-python" / "train").write_bytes(pickle.dumps(raw, protocol=2))


@pytest.mark.parametrize("change,match", [
    ({b"data": np.zeros((200, 100), np.uint8)}, "shape"),
    ({b"data": np.zeros((200, 3072), np.float32)}, "uint8"),
    ({b"fine_labels": [100] * 200}, "out of range"),
    ({b"fine_labels": [0] * 200}, "per-class counts"),
    ({b"coarse_labels": [25] * 200}, "out of range"),
    ({b"fine_labels": [0] * 10}, "fine_labels"),
])
def test_bad_content_gets_its_own_error(tmp_path, change, match):
    _write(tmp_path, change)
    with pytest.raises(DataContentError, match=match):
        cifar.load_split(tmp_path, "train", verify="structure")


def test_truncated_pickle(tmp_path):
    make_cifar(tmp_path, 2, 1)
    f = tmp_path / "cifar-100-python" / "train"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(DataCorruptError, match="truncated or corrupt"):
        cifar.load_split(tmp_path, "train", verify="structure")


@pytest.mark.realdata
def test_real_data_hashes_and_counts(real_data):
    train = cifar.load_split(real_data, "train", verify="full")
    test = cifar.load_split(real_data, "test", verify="full")
    assert train.fine[:5].tolist() == [19, 29, 0, 11, 1] and test.fine[:5].tolist() == [49, 33, 72, 51, 71]
    meta = cifar.load_meta(real_data)
    assert meta.fine_names[0] == "apple" and meta.coarse_names[0] == "aquatic_mammals"
    mean = train.images.reshape(50000, 3, -1).mean(axis=(0, 2)) / 255
    assert np.allclose(mean, (0.5071, 0.4865, 0.4409), atol=1e-3)


@pytest.mark.realdata
def test_real_data_with_one_flipped_pixel_fails_the_hash(real_data, tmp_path):
    train = cifar.load_split(real_data, "train", verify="full")
    images = train.images.copy()
    images[123, 0, 5, 5] ^= 1
    cifar.write_split(tmp_path, "train", images, train.fine, train.coarse)
    with pytest.raises(DataContentError, match="sha256"):
        cifar.load_split(tmp_path, "train", verify="full")


def test_stratified_split_is_balanced_and_fixed():
    labels = np.repeat(np.arange(100), 50)
    tr, val = cifar.stratified_split(labels, 1000, seed=0)
    assert len(val) == 1000 and len(set(tr) & set(val)) == 0 and len(tr) + len(val) == 5000
    assert np.bincount(labels[val], minlength=100).tolist() == [10] * 100
    assert (cifar.stratified_split(labels, 1000, seed=0)[1] == val).all()
    assert not (cifar.stratified_split(labels, 1000, seed=1)[1] == val).all()


@pytest.mark.parametrize("pad,flip", [(4, True), (2, True), (0, True), (4, False), (0, False)])
def test_crop_flip_matches_torchvision(pad, flip):
    from torchvision.transforms.v2 import functional as TF

    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    d = draw_epoch(32, seed=3, epoch=0, pad=pad, flip=flip)
    out = crop_flip(x, d.offsets, d.flips, pad)
    for i in range(32):
        ref = TF.crop(TF.pad(x[i], [pad]), int(d.offsets[i, 0]), int(d.offsets[i, 1]), 32, 32)
        ref = TF.horizontal_flip(ref) if d.flips[i] else ref
        assert torch.equal(out[i], ref)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert (d.flips.any() and not d.flips.all()) if flip else not d.flips.any()
    assert len(set(map(tuple, d.offsets.tolist()))) > 1 if pad else not d.offsets.any()


def test_batches_are_deterministic_and_ranks_partition_the_global_batch():
    images = np.random.default_rng(0).integers(0, 256, (1000, 3, 32, 32), dtype=np.uint8)
    data = DeviceDataset(images, np.arange(1000) % 100, "cpu")
    a = list(TrainBatches(data, 100, seed=1, epoch=2))
    b = list(TrainBatches(data, 100, seed=1, epoch=2))
    assert len(a) == 10 and all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    c = list(TrainBatches(data, 100, seed=1, epoch=3))
    assert not torch.equal(a[0][0], c[0][0])
    r0 = list(TrainBatches(data, 100, seed=1, epoch=2, rank=0, world_size=2))
    r1 = list(TrainBatches(data, 100, seed=1, epoch=2, rank=1, world_size=2))
    for (x, y), (x0, y0), (x1, y1) in zip(a, r0, r1):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    resumed = list(TrainBatches(data, 100, seed=1, epoch=2, start_step=7))
    assert len(resumed) == 3 and torch.equal(resumed[0][0], a[7][0])
    shards = [list(eval_batches(data, 300, r, 3)) for r in range(3)]
    assert sum(len(y) for s in shards for _, y in s) == 1000


def test_normalizer_values():
    n = Normalizer.named("seed")
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    assert torch.allclose(n(x), torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2))
