"""Use a trained model: load it with its preprocessing and class names, and predict image files.

    import c100
    m = c100.load("runs/resnet18-fast-s0")             # run folder, checkpoint (.pt) or .safetensors
    m.predict(["cat.jpg", "photos/dog.png"], topk=5)   # [{"file", "top": [...], "superclass"}, ...]
    x = m.preprocess(["cat.jpg"])                      # normalised float batch (N, 3, 32, 32)

The preprocessing rule (``PREPROCESSING``): decode with Pillow (first frame, EXIF orientation
applied), convert to RGB (transparent pixels onto white, 16-bit values scaled to 8 bits, CMYK and
palettes converted without colour management), cut the largest centred square and resize it to
32x32 with Pillow's antialiased bicubic filter (the same as: shorter side to 32 px, centre 32x32
crop), then the training normalisation of the checkpoint's config on the uint8 pixels. A 32x32
image is used pixel for pixel, so a CIFAR-100 image saved losslessly gives the data set's logits.

A weights file (``save_weights``) is safetensors: the model's state_dict (EMA weights when the
checkpoint has them) plus string metadata, see ``weights_metadata`` and docs/INFERENCE.md.
"""
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from c100.version import __version__
from c100.errors import C100Error, CheckpointError, InputImageError

SIZE = 32
WEIGHTS_FORMAT, WEIGHTS_VERSION = "c100-weights", 1
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                    ".ppm", ".pgm", ".pbm", ".pnm")
PREPROCESSING = ("decode with Pillow (first frame, EXIF rotation applied); convert to RGB "
                 "(transparency composited on white, 16-bit scaled to 8-bit); cut the largest centred "
                 "square and resize it to 32x32 with antialiased bicubic (= shorter side to 32 px, centre "
                 "crop); normalise uint8 pixels as in training")
# The repository's weights/ folder (hubconf.py and c100.load("resnet18") read it); $C100_WEIGHTS overrides.
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"

# CIFAR-100's 20 superclasses and their fine classes, as in the data set's meta file (whose name lists
# are these, sorted). Lets a checkpoint name its classes on a machine without the data set.
_SUPERCLASSES = (
    ("aquatic_mammals", ("beaver", "dolphin", "otter", "seal", "whale")),
    ("fish", ("aquarium_fish", "flatfish", "ray", "shark", "trout")),
    ("flowers", ("orchid", "poppy", "rose", "sunflower", "tulip")),
    ("food_containers", ("bottle", "bowl", "can", "cup", "plate")),
    ("fruit_and_vegetables", ("apple", "mushroom", "orange", "pear", "sweet_pepper")),
    ("household_electrical_devices", ("clock", "keyboard", "lamp", "telephone", "television")),
    ("household_furniture", ("bed", "chair", "couch", "table", "wardrobe")),
    ("insects", ("bee", "beetle", "butterfly", "caterpillar", "cockroach")),
    ("large_carnivores", ("bear", "leopard", "lion", "tiger", "wolf")),
    ("large_man-made_outdoor_things", ("bridge", "castle", "house", "road", "skyscraper")),
    ("large_natural_outdoor_scenes", ("cloud", "forest", "mountain", "plain", "sea")),
    ("large_omnivores_and_herbivores", ("camel", "cattle", "chimpanzee", "elephant", "kangaroo")),
    ("medium_mammals", ("fox", "porcupine", "possum", "raccoon", "skunk")),
    ("non-insect_invertebrates", ("crab", "lobster", "snail", "spider", "worm")),
    ("people", ("baby", "boy", "girl", "man", "woman")),
    ("reptiles", ("crocodile", "dinosaur", "lizard", "snake", "turtle")),
    ("small_mammals", ("hamster", "mouse", "rabbit", "shrew", "squirrel")),
    ("trees", ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree")),
    ("vehicles_1", ("bicycle", "bus", "motorcycle", "pickup_truck", "train")),
    ("vehicles_2", ("lawn_mower", "rocket", "streetcar", "tank", "tractor")),
)


# ----------------------------------------------------------------------------- class names
@dataclass
class ClassNames:
    fine: list                    # fine class names by label index
    coarse: list | None           # superclass names by coarse index
    fine_to_coarse: list | None   # coarse index of each fine label
    source: str                   # where they came from, for people

    def superclass(self, fine_index):
        if not self.coarse or not self.fine_to_coarse:
            return None
        c = int(self.fine_to_coarse[fine_index])
        return {"index": c, "label": self.coarse[c]}

    def check(self, num_classes, where):
        ok = len(self.fine) == num_classes and (self.fine_to_coarse is None or (
            len(self.fine_to_coarse) == num_classes and self.coarse
            and all(isinstance(c, int) and 0 <= c < len(self.coarse) for c in self.fine_to_coarse)))
        if not ok:
            raise CheckpointError(f"{where}: the class names do not fit a {num_classes}-class model "
                                  f"({len(self.fine)} fine names); the file is inconsistent")


def builtin_class_names() -> ClassNames:
    fine = sorted(f for _, group in _SUPERCLASSES for f in group)
    coarse = [c for c, _ in _SUPERCLASSES]
    of = {f: i for i, (_, group) in enumerate(_SUPERCLASSES) for f in group}
    return ClassNames(fine, coarse, [of[f] for f in fine], "built-in CIFAR-100 class list")


def class_names(data_root=None) -> ClassNames:
    """Names from the data set's meta file when it is on this machine, else the built-in CIFAR-100 list.

    The fine-to-coarse mapping is the built-in one when the meta file's names are CIFAR-100's, else it
    is read off the test split's labels (a custom copy), else there is none.
    """
    from c100.data.cifar import dataset_dir, load_meta, load_split, resolve_root

    builtin = builtin_class_names()
    root = resolve_root(data_root)
    if not (dataset_dir(root) / "meta").is_file():
        return builtin
    try:
        meta = load_meta(root)
    except C100Error:
        return builtin
    source = f"data set meta file in {dataset_dir(root)}"
    if meta.fine_names == builtin.fine and meta.coarse_names == builtin.coarse:
        return ClassNames(builtin.fine, builtin.coarse, builtin.fine_to_coarse, source)
    try:
        table = meta.fine_to_coarse(load_split(root, "test", "structure")).tolist()
    except C100Error:
        table = None
    if table is None or min(table) < 0:
        return ClassNames(meta.fine_names, meta.coarse_names, None, source + " (no superclass mapping)")
    return ClassNames(meta.fine_names, meta.coarse_names, table, source)


# ----------------------------------------------------------------------------- images
def image_files(paths):
    """Expand arguments into (files, errors): folders recursively by extension, files as given.

    A file named explicitly is always tried (and refused later if it is not an image); inside a folder
    only files with an image extension count, hidden files and folders are skipped, and a folder
    with no image at all is an error. Duplicates are dropped. ``errors`` is a list of (path, message).
    """
    files, errors = [], []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                errors.append((str(p), f"{p}: folder holds no image files "
                                       f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)})"))
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            errors.append((str(p), f"{p}: no such file or folder"))
    seen = set()  # a file named twice (or also found in a folder) is predicted once
    unique = [f for f in files if not (f.resolve() in seen or seen.add(f.resolve()))]
    return unique, errors


def open_image(path):
    """A PIL RGB image from a file; InputImageError naming the file if it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise InputImageError(f"{path}: cannot open ({e.strerror or e})") from e
    except Image.DecompressionBombError as e:
        raise InputImageError(f"{path}: refused, too many pixels ({e})") from e
    except UnidentifiedImageError as e:
        what = "empty file" if path.stat().st_size == 0 else "not an image Pillow can read"
        raise InputImageError(f"{path}: {what}") from e
    except InputImageError as e:
        raise InputImageError(f"{path}: {e}") from e
    except Exception as e:  # truncated or garbled data: OSError, SyntaxError, ValueError, EOFError, ...
        raise InputImageError(f"{path}: truncated or corrupt image ({type(e).__name__}: {e})") from e


def to_rgb(im):
    """Any Pillow mode to 8-bit RGB; see PREPROCESSING."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        a = np.asarray(im).astype(np.float64)
        # integer modes hold 16-bit samples (8-bit files open as "L"); float images in [0, 1] or [0, 255]
        scale = 255.0 / 65535.0 if im.mode != "F" else (255.0 if a.size and a.max() <= 1.0 else 1.0)
        im = Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8))  # 2-D uint8: mode L
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise InputImageError(f"image mode {im.mode} cannot be converted to RGB") from e


def resize_center(im, size=SIZE):
    """The largest centred square, resized to size x size (antialiased bicubic); identity at size x size."""
    from PIL import Image

    w, h = im.size
    if (w, h) == (size, size):
        return im
    s = min(w, h)
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    return im.resize((size, size), Image.Resampling.BICUBIC, box=box)


def image_to_uint8(im) -> torch.Tensor:
    """(3, 32, 32) uint8 from a PIL image of any size and mode."""
    return _chw(resize_center(to_rgb(im)))


def load_image(path) -> torch.Tensor:
    """(3, 32, 32) uint8 from an image file; InputImageError naming the file otherwise."""
    return _chw(resize_center(open_image(path)))


def _chw(rgb_im) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb_im, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def as_uint8_batch(images) -> torch.Tensor:
    """(N, 3, 32, 32) uint8 from paths, PIL images, HWC uint8 arrays, or uint8 tensors (N, 3, 32, 32)."""
    from PIL import Image

    if isinstance(images, torch.Tensor):
        return _check_uint8_tensor(images if images.dim() == 4 else images.unsqueeze(0))
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        images = [images]
    out = []
    for item in images:
        if isinstance(item, (str, os.PathLike)):
            out.append(load_image(item))
        elif isinstance(item, Image.Image):
            out.append(image_to_uint8(item))
        elif isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim not in (2, 3):
                raise InputImageError(f"arrays must be uint8 HxW or HxWxC images, got {item.dtype} {item.shape}")
            out.append(image_to_uint8(Image.fromarray(item)))
        elif isinstance(item, torch.Tensor):
            out.append(_check_uint8_tensor(item.unsqueeze(0))[0])
        else:
            raise InputImageError(f"cannot use {type(item).__name__} as an image: pass paths, PIL images, "
                                  f"uint8 arrays or uint8 tensors")
    if not out:
        return torch.empty(0, 3, SIZE, SIZE, dtype=torch.uint8)
    return torch.stack(out)


def _check_uint8_tensor(t):
    if t.dtype != torch.uint8 or t.dim() != 4 or tuple(t.shape[1:]) != (3, SIZE, SIZE):
        raise InputImageError(f"image tensors must be uint8 (N, 3, {SIZE}, {SIZE}), got {t.dtype} "
                              f"{tuple(t.shape)}; pass PIL images or files of other sizes")
    return t


# ----------------------------------------------------------------------------- the loaded model
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


def resolve_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise C100Error("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


# ----------------------------------------------------------------------------- loading
def load(name_or_path, device="cpu", data_root=None) -> LoadedModel:
    """A ready model from a weights file (.safetensors), a checkpoint (.pt), a run folder, the
    name of a model whose weights ship in the repository (weights/<name>.safetensors), or an .onnx
    export (run by ONNX Runtime on the CPU, c100.onnx_runtime; ``device`` is then ignored)."""
    from c100.models import list_models

    p = Path(name_or_path)
    if not p.exists() and str(name_or_path) in list_models():
        p = shipped_weights(str(name_or_path))
    if p.is_dir():
        p = p / "checkpoints" / "last.pt"
    if not p.is_file():
        raise CheckpointError(f"{p} does not exist (give a .safetensors weights file, a checkpoint or a run folder)")
    from c100.onnx_runtime import is_onnx

    if is_onnx(p):  # an export (fp32 or int8), by name or content: runs through ONNX Runtime on the CPU
        from c100.onnx_runtime import load_onnx

        return load_onnx(p)
    if p.suffix == ".safetensors" or _is_safetensors(p):
        return load_weights(p, device)
    return load_checkpoint_model(p, device, data_root)


def shipped_weights(name) -> Path:
    """weights/<name>.safetensors of the repository (or $C100_WEIGHTS); a clear error when absent."""
    folder = Path(os.environ.get("C100_WEIGHTS") or REPO_WEIGHTS)
    path = folder / f"{name}.safetensors"
    if not path.is_file():
        raise CheckpointError(
            f"no pretrained weights for {name!r}: {path} does not exist. They are made from a training run: "
            f"`c100 train {name} --recipe <recipe>` then `c100 export runs/<run> --format safetensors "
            f"--out {path}` (see weights/README.md), or point $C100_WEIGHTS at a folder holding {name}.safetensors")
    return path


def _is_safetensors(path):
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 28)


def build_model(name, state_dict, where, config=None):
    """The model with its weights; ``config`` (a TrainConfig dict) supplies builder options such as
    ShakeDrop's rate, which change the model's output at evaluation."""
    from c100.engine.config import TrainConfig, model_kwargs
    from c100.models import create_model

    kwargs = {}
    if config:
        try:
            kwargs = model_kwargs(TrainConfig.from_dict(config))
        except C100Error as e:
            raise CheckpointError(f"{where}: its config is not valid here ({e})") from e
    model = create_model(name, num_classes=100, **kwargs)
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{where}: weights do not fit model {name!r} ({str(e).splitlines()[0]})") from e
    return model


def _run_summary(ckpt_path, ckpt):
    """The run's summary.json when the checkpoint is the run's final one, else None."""
    path = Path(ckpt_path)
    summary = path.parent.parent / "summary.json"
    if path.parent.name != "checkpoints" or path.name != "last.pt" or not summary.is_file():
        return None
    try:
        s = json.loads(summary.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    test = s.get("test") or {}
    if s.get("status") != "finished" or s.get("epochs") != ckpt.get("epoch") or "top1_err" not in test:
        return None
    return s


def load_checkpoint_model(path, device="cpu", data_root=None) -> LoadedModel:
    from c100.checkpoint import load_checkpoint
    from c100.engine.config import TrainConfig

    ckpt = load_checkpoint(path)
    try:
        cfg = TrainConfig.from_dict(ckpt["config"])
    except C100Error as e:
        raise CheckpointError(f"{path}: its config is not valid here ({e})") from e
    use_ema = bool(ckpt.get("ema"))
    model = build_model(cfg.model, ckpt["ema"] if use_ema else ckpt["model"], path, ckpt["config"])
    from c100.provenance import training_record

    summary = _run_summary(path, ckpt)
    test = summary["test"] if summary else {}
    names = class_names(data_root)
    metadata = {"model": cfg.model, "recipe": cfg.recipe, "normalize": cfg.normalize, "num_classes": 100,
                "weights": "ema" if use_ema else "model", "source": str(path), "epoch": ckpt.get("epoch"),
                "test_top1_err": test.get("top1_err"), "test_top5_err": test.get("top5_err"),
                "test_tta": test.get("tta"), "c100_version": ckpt.get("c100_version"),
                "config": ckpt["config"], "class_names_source": names.source,
                # how the run was trained (command, machine, time): what a shipped row names
                "training": training_record(summary, ckpt["config"]) if summary else None}
    return LoadedModel(model, metadata, names, device)


# ----------------------------------------------------------------------------- safetensors
def weights_metadata(m: LoadedModel) -> dict:
    """The string metadata of a weights file (safetensors admits str -> str only)."""
    md = m.metadata
    out = {"format": WEIGHTS_FORMAT, "format_version": str(WEIGHTS_VERSION), "c100_version": __version__,
           "model": md["model"], "recipe": md["recipe"], "normalize": md["normalize"],
           "num_classes": str(md["num_classes"]), "weights": md["weights"],
           "input": f"uint8 RGB {SIZE}x{SIZE} -> (x / 255 - mean) / std of 'normalize'",
           "preprocessing": PREPROCESSING,
           "fine_names": json.dumps(m.class_names.fine), "class_names_source": m.class_names.source}
    if m.class_names.coarse and m.class_names.fine_to_coarse:
        out["coarse_names"] = json.dumps(m.class_names.coarse)
        out["fine_to_coarse"] = json.dumps(m.class_names.fine_to_coarse)
    for key in ("test_top1_err", "test_top5_err", "test_tta", "epoch"):
        if md.get(key) is not None:
            out[key] = str(md[key])
    if md.get("config") is not None:
        out["config"] = json.dumps(md["config"])
    from c100.provenance import TRAINING_KEYS

    for key, value in (md.get("training") or {}).items():
        if key in TRAINING_KEYS:
            out[TRAINING_KEYS[key]] = str(value)
    return out


def save_weights(source, out, data_root=None) -> Path:
    """Write a checkpoint's (or run folder's, or LoadedModel's) weights and metadata as safetensors."""
    from safetensors.torch import save

    from c100.atomic import atomic_write_bytes

    m = source if isinstance(source, LoadedModel) else load(source, "cpu", data_root)
    # contiguous NCHW copies: no shared storage (safetensors refuses it), no channels_last strides
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in m.model.state_dict().items()}
    out = Path(out)
    atomic_write_bytes(out, save(tensors, metadata=weights_metadata(m)))
    return out


def _parse_metadata(raw, path):
    if not raw or raw.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a c100 weights file (no c100 metadata)")
    try:
        version = int(raw.get("format_version", "0"))
    except ValueError:
        version = -1
    if version < 1 or version > WEIGHTS_VERSION:
        raise CheckpointError(f"{path} has weights format version {raw.get('format_version')!r}; "
                              f"this c100 reads 1 to {WEIGHTS_VERSION}")
    missing = [k for k in ("model", "recipe", "normalize", "num_classes", "fine_names") if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: metadata lacks {', '.join(missing)}")
    from c100.data.loader import NORMALIZATIONS

    if raw["normalize"] not in NORMALIZATIONS:
        raise CheckpointError(f"{path}: unknown normalisation {raw['normalize']!r}")
    try:
        fine = json.loads(raw["fine_names"])
        coarse = json.loads(raw["coarse_names"]) if "coarse_names" in raw else None
        table = json.loads(raw["fine_to_coarse"]) if "fine_to_coarse" in raw else None
        num = int(raw["num_classes"])
        floats = {k: float(raw[k]) if k in raw else None for k in ("test_top1_err", "test_top5_err")}
        config = json.loads(raw["config"]) if "config" in raw else None
        epoch = int(raw["epoch"]) if "epoch" in raw else None
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: malformed metadata ({e})") from e
    from c100.provenance import TRAINING_KEYS

    training = {k: raw[key] for k, key in TRAINING_KEYS.items() if key in raw}
    for k in ("train_time_s", "wall_time_s", "images_per_s"):
        if k in training:
            try:
                training[k] = float(training[k])
            except ValueError as e:
                raise CheckpointError(f"{path}: malformed metadata {TRAINING_KEYS[k]} ({e})") from e
    names = ClassNames(fine, coarse, table, raw.get("class_names_source", "weights file metadata"))
    names.check(num, path)
    md = {"model": raw["model"], "recipe": raw["recipe"], "normalize": raw["normalize"], "num_classes": num,
          "weights": raw.get("weights", "model"), "source": str(path), "epoch": epoch, **floats,
          "test_tta": raw.get("test_tta"), "c100_version": raw.get("c100_version"), "config": config,
          "class_names_source": f"weights file metadata ({names.source})", "training": training or None}
    return md, names


def read_weights(path):
    """(state_dict, raw string metadata) of a safetensors file; CheckpointError if unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as e:  # SafetensorError, OSError, ...: a truncated or garbled file
        raise CheckpointError(f"{path} is not a readable safetensors file: truncated or corrupt "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    return state, raw


def load_weights(path, device="cpu") -> LoadedModel:
    state, raw = read_weights(path)
    md, names = _parse_metadata(raw, path)
    if md["num_classes"] != 100:
        raise CheckpointError(f"{path}: {md['num_classes']} classes; c100 models have 100")
    model = build_model(md["model"], state, path, md.get("config"))
    return LoadedModel(model, md, names, device)
