"""c100 predict, c100.load and safetensors weights: real image files in, top-k labels out.

A random-initialised simplecnn saved as a real c100 checkpoint stands in for a trained model.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import c100
from c100.checkpoint import save_checkpoint
from c100.cli import main
from c100.data.loader import Normalizer
from c100.engine.config import TrainConfig
from c100.errors import CheckpointError, InputImageError
from c100.data.classes import builtin_class_names
from c100.images import image_to_uint8, load_image
from c100.inference import save_weights
from c100.models import create_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "cifar100"


def make_run(root, model_name="simplecnn", ema=False, summary=True):
    """A run folder holding a real checkpoint (and a finished summary.json) of a random model."""
    torch.manual_seed(0)
    model = create_model(model_name)
    state = {"config": TrainConfig(model=model_name, recipe="fast").to_dict(), "model": model.state_dict(),
             "epoch": 3}
    if ema:
        state["ema"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    run = Path(root)
    save_checkpoint(state, run / "checkpoints" / "last.pt")
    if summary:
        (run / "summary.json").write_text(json.dumps(
            {"status": "finished", "model": model_name, "epochs": 3,
             "test": {"top1_err": 61.25, "top5_err": 33.5, "loss": 2.5, "n": 10000, "tta": "none"}}))
    return run, model


@pytest.fixture(autouse=True)
def no_dataset(tmp_path, monkeypatch):
    """No CIFAR-100 on this 'machine' unless a test says so: class names come from elsewhere."""
    monkeypatch.setenv("C100_DATA", str(tmp_path / "no-data"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))[0]


@pytest.fixture(scope="module")
def weights(run_dir, tmp_path_factory):
    return save_weights(run_dir, tmp_path_factory.mktemp("w") / "simplecnn.safetensors", data_root="/nonexistent")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """One file per kind a user may have: formats, modes, sizes."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    Image.fromarray(rgb(32, 32)).save(d / "cifar.png")
    Image.fromarray(rgb(48, 64)).save(d / "photo.jpg", quality=90)
    Image.fromarray(rgb(40, 40)[..., 0]).save(d / "gray.png")
    Image.fromarray(np.dstack([rgb(36, 36), rng.integers(0, 256, (36, 36, 1), dtype=np.uint8)])).save(d / "rgba.png")
    Image.fromarray(rgb(33, 50)).convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.gif")
    Image.fromarray(rgb(700, 1000)).save(d / "large.png")
    Image.fromarray((rng.integers(0, 65536, (40, 30))).astype(np.uint16)).save(d / "deep16.png")
    (d / "sub").mkdir()
    Image.fromarray(rgb(20, 20)).convert("CMYK").save(d / "sub" / "cmyk.jpg")
    (d / "notes.txt").write_text("not an image, skipped inside a folder")
    (d / ".hidden.png").write_text("hidden files are skipped")
    return d


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ----------------------------------------------------------------------------- preprocessing
def test_every_mode_and_size_becomes_uint8_rgb_32(images):
    files = sorted(f for f in images.rglob("*.*") if f.suffix != ".txt" and not f.name.startswith("."))
    assert len(files) == 8
    for f in files:
        x = load_image(f)
        assert x.dtype == torch.uint8 and x.shape == (3, 32, 32), f


def test_32x32_image_is_used_pixel_for_pixel(images):
    arr = np.array(Image.open(images / "cifar.png"))
    assert torch.equal(load_image(images / "cifar.png"), torch.from_numpy(arr).permute(2, 0, 1))


def test_resize_keeps_the_centred_square(tmp_path):
    """1000x700: the centred 700x700 square (red) is kept, the side bands (blue) are cut off (the bicubic
    filter reaches just past the square, as resizing the whole image and then cropping would)."""
    a = np.zeros((700, 1000, 3), np.uint8)
    a[..., 2] = 255
    a[:, 150:850] = (255, 0, 0)
    Image.fromarray(a).save(tmp_path / "wide.png")
    x = load_image(tmp_path / "wide.png")
    assert (x[0, :, 1:-1] == 255).all() and (x[2, :, 1:-1] == 0).all()
    assert (x[0] > 200).all() and (x[2] < 40).all()


def test_alpha_is_composited_on_white_and_16_bit_is_scaled(tmp_path):
    Image.new("RGBA", (32, 32), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    assert (load_image(tmp_path / "clear.png") == 255).all()
    Image.fromarray(np.full((32, 32), 65535, np.uint16)).save(tmp_path / "white16.png")
    Image.fromarray(np.full((32, 32), 32896, np.uint16)).save(tmp_path / "mid16.png")
    assert (load_image(tmp_path / "white16.png") == 255).all()
    assert (load_image(tmp_path / "mid16.png") == 128).all()
    g = Image.fromarray(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32))
    x = image_to_uint8(g)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((32, 32, 3), np.uint8)
    a[:16, :, 0] = 255  # red on top, blue below, stored upside down (EXIF orientation 3: rotate 180)
    a[16:, :, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(a).save(tmp_path / "upside.jpg", exif=exif, quality=95)
    x = load_image(tmp_path / "upside.jpg").float()
    assert x[2, :12].mean() > 200 and x[0, -12:].mean() > 200


# ----------------------------------------------------------------------------- c100 predict
def test_predict_table(run_dir, images, capsys):
    rc, out, err = cli(capsys, "predict", run_dir, images, "--topk", 3)
    assert rc == 0, err
    rows = [line for line in out.splitlines()[2:] if line.strip()]
    assert len(rows) == 8  # notes.txt and .hidden.png skipped
    names = set(builtin_class_names().fine)
    for row in rows:
        assert row.split()[0].startswith(str(images))
        assert row.count("%") == 3 and row.split()[2] in names


def test_predict_json_schema(run_dir, images, capsys):
    rc, out, _ = cli(capsys, "predict", run_dir, images / "photo.jpg", images / "gray.png", "--json", "--topk", 5,
                     "--batch-size", 1)
    assert rc == 0
    doc = json.loads(out)
    assert {"model", "recipe", "source", "weights", "class_names_source", "preprocessing", "topk", "device",
            "predictions", "errors"} <= set(doc)
    assert doc["model"] == "simplecnn" and doc["errors"] == [] and doc["device"] == "cpu"
    assert [p["file"] for p in doc["predictions"]] == [str(images / "photo.jpg"), str(images / "gray.png")]
    names = builtin_class_names()
    for p in doc["predictions"]:
        top = p["top"]
        assert [t["rank"] for t in top] == [1, 2, 3, 4, 5]
        assert all(names.fine[t["index"]] == t["label"] for t in top)
        probs = [t["prob"] for t in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        c = names.fine_to_coarse[top[0]["index"]]
        assert p["superclass"] == {"index": c, "label": names.coarse[c]}


def test_predict_matches_the_models_logits(run_dir, images):
    m = c100.load(run_dir)
    files = [images / "photo.jpg", images / "large.png"]
    x = torch.stack([load_image(f) for f in files])
    ckpt_model = create_model("simplecnn")
    ckpt_model.load_state_dict(torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"])
    with torch.no_grad():
        ref = ckpt_model.eval()(Normalizer.named("cifar100")(x))
    probs = torch.softmax(ref, 1)
    got = m.predict(files, topk=2)
    assert [r["file"] for r in got] == [str(f) for f in files]
    for r, p in zip(got, probs):
        assert r["top"][0]["index"] == int(p.argmax()) and abs(r["top"][0]["prob"] - float(p.max())) < 1e-6
    # the same pixels given as a PIL image, a HWC array or a uint8 tensor
    pil = Image.open(files[0])
    assert torch.equal(m.logits([pil, np.asarray(pil), x[0]]), m.logits([files[0]] * 3))


@pytest.mark.parametrize("case, reason", [
    ("text.png", "not an image"), ("truncated.jpg", "truncated or corrupt"), ("empty.png", "empty file"),
    ("missing.jpg", "no such file"), ("noimages", "holds no image files"), ("notes.txt", "not an image")])
def test_bad_inputs_are_refused_by_name(run_dir, tmp_path, capsys, case, reason):
    p = tmp_path / case
    if case in ("text.png", "notes.txt"):
        p.write_text("hello, I am text")
    elif case == "truncated.jpg":
        buf = tmp_path / "full.jpg"
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf)
        p.write_bytes(buf.read_bytes()[:600])
    elif case == "empty.png":
        p.write_bytes(b"")
    elif case == "noimages":
        p.mkdir()
        (p / "readme.txt").write_text("no images here")
    rc, out, err = cli(capsys, "predict", run_dir, p)
    assert rc == InputImageError.exit_code == 9
    assert f"error: {p}" in err and reason in err
    assert "Traceback" not in err


def test_bad_files_are_reported_and_good_ones_still_predicted(run_dir, images, tmp_path, capsys):
    bad_dir = tmp_path / "mixed"
    bad_dir.mkdir()
    (bad_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.new("RGB", (50, 50), (0, 128, 255)).save(bad_dir / "fine.png")
    rc, out, err = cli(capsys, "predict", run_dir, images / "cifar.png", bad_dir, tmp_path / "gone.png", "--json")
    assert rc == 9
    doc = json.loads(out)
    assert [p["file"] for p in doc["predictions"]] == [str(images / "cifar.png"), str(bad_dir / "fine.png")]
    assert sorted(e["file"] for e in doc["errors"]) == sorted([str(bad_dir / "broken.jpg"), str(tmp_path / "gone.png")])
    assert "2 of 4 inputs failed" in err


def test_bad_model_and_bad_options(tmp_path, images, capsys):
    rc, _, err = cli(capsys, "predict", tmp_path / "nothing.pt", images / "cifar.png")
    assert rc == CheckpointError.exit_code and "does not exist" in err
    rc, _, err = cli(capsys, "predict", tmp_path / "nothing.pt", images / "cifar.png", "--topk", 0)
    assert rc == 2 and "--topk" in err


def test_topk_beyond_the_100_classes_is_refused(run_dir, images, capsys):
    """Issue 15, item 10: --topk 200 printed a 'top-200' header over 100 labels per image."""
    for k in (101, 200):
        rc, out, err = cli(capsys, "predict", run_dir, images / "cifar.png", "--topk", k)
        assert rc == 2 and "--topk must be between 1 and 100" in err and f"got {k}" in err and out == ""
    rc, out, _ = cli(capsys, "predict", run_dir, images / "cifar.png", "--topk", 100, "--json")
    assert rc == 0 and len(json.loads(out)["predictions"][0]["top"]) == 100


def test_class_names_come_from_the_data_set_when_present(run_dir, images, tiny_data, capsys):
    rc, out, _ = cli(capsys, "predict", run_dir, images / "cifar.png", "--json", "--data-root", tiny_data)
    assert rc == 0
    p = json.loads(out)["predictions"][0]
    i = p["top"][0]["index"]
    assert p["top"][0]["label"] == f"fine_{i}" and p["superclass"]["label"] == f"coarse_{i // 5}"


def test_the_class_names_source_names_no_path_of_this_machine(tiny_data):
    # it is written into checkpoints and shipped weights' metadata (a shipped file once said where its
    # training machine kept the data)
    from c100.data.cifar import class_names

    source = class_names(tiny_data).source
    assert source == "data set meta file (cifar-100-python/meta)"
    assert str(tiny_data) not in source and "/" + tiny_data.name not in source


@pytest.mark.skipif(not (SHARED / "meta").exists(), reason="no ../shared/cifar100 here")
def test_builtin_class_names_are_cifar100s():
    import pickle

    with open(SHARED / "meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    names = builtin_class_names()
    assert names.fine == meta["fine_label_names"] and names.coarse == meta["coarse_label_names"]
    index = np.load(SHARED / "index.npz")
    table = np.full(100, -1)
    table[index["test_fine"]] = index["test_coarse"]
    assert names.fine_to_coarse == table.tolist()


# ----------------------------------------------------------------------------- weights files, c100.load
def test_safetensors_gives_the_checkpoints_logits(run_dir, weights, images):
    x = torch.stack([load_image(f) for f in sorted(images.glob("[!.]*.png"))])
    from_ckpt, from_file = c100.load(run_dir / "checkpoints" / "last.pt"), c100.load(weights)
    assert torch.equal(from_ckpt.logits(x), from_file.logits(x))
    assert torch.equal(from_file.preprocess(x), Normalizer.named("cifar100")(x))
    ref = create_model("simplecnn")
    ref.load_state_dict(torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"])
    with torch.no_grad():
        assert torch.equal(ref.eval()(Normalizer.named("cifar100")(x)), from_file.logits(x))


def test_safetensors_metadata(weights):
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        md = f.metadata()
    assert md["format"] == "c100-weights" and md["format_version"] == "1" and md["c100_version"] == c100.__version__
    assert (md["model"], md["recipe"], md["normalize"], md["weights"]) == ("simplecnn", "fast", "cifar100", "model")
    names = builtin_class_names()
    assert json.loads(md["fine_names"]) == names.fine and json.loads(md["coarse_names"]) == names.coarse
    assert json.loads(md["fine_to_coarse"]) == names.fine_to_coarse
    assert float(md["test_top1_err"]) == 61.25 and float(md["test_top5_err"]) == 33.5
    assert json.loads(md["config"])["model"] == "simplecnn"
    m = c100.load(weights)
    assert m.metadata["test_top1_err"] == 61.25 and m.metadata["recipe"] == "fast"


def test_ema_weights_are_preferred_and_no_summary_means_no_test_error(tmp_path):
    run, model = make_run(tmp_path / "ema", ema=True, summary=False)
    out = save_weights(run, tmp_path / "ema.safetensors")
    m = c100.load(out)
    assert m.metadata["weights"] == "ema" and m.metadata["test_top1_err"] is None
    assert torch.equal(m.model.fc2.bias, model.fc2.bias + 0.01)


def test_corrupt_or_foreign_weights_files_are_refused(weights, tmp_path):
    from safetensors.torch import save_file

    raw = weights.read_bytes()
    cases = {"truncated.safetensors": raw[: len(raw) // 2], "garbage.safetensors": b"\x00" * 64,
             "empty.safetensors": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    save_file({"w": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"))
    state, md = c100.inference.read_weights(weights)
    save_file({k: v for k, v in state.items() if k != "fc2.bias"}, str(tmp_path / "missing.safetensors"), md)
    save_file(state, str(tmp_path / "wrongmodel.safetensors"), {**md, "model": "logreg"})
    save_file(state, str(tmp_path / "future.safetensors"), {**md, "format_version": "99"})
    expect = {"truncated": "truncated or corrupt", "garbage": "truncated or corrupt", "empty": "truncated or corrupt",
              "foreign": "not a c100 weights file", "missing": "do not fit", "wrongmodel": "do not fit",
              "future": "format version"}
    for stem, message in expect.items():
        with pytest.raises(CheckpointError, match=message):
            c100.load(tmp_path / f"{stem}.safetensors")


def test_load_by_name_without_shipped_weights_says_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("C100_WEIGHTS", str(tmp_path))
    with pytest.raises(CheckpointError, match="weights/README.md"):
        c100.load("resnet18")
