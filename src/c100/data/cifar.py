"""CIFAR-100 on disk: find it, download it, load its pickles safely and verify their content.

The standard layout is ``ROOT/cifar-100-python/{train,test,meta}``: the folder that the official
tarball (https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz) unpacks to. The pickles are read
with an unpickler that admits only the globals numpy needs to rebuild an array, so a pickle that
names anything else (``os.system``, ...) is refused before anything runs.
"""
import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from c100.data.classes import ClassNames, builtin_class_names
from c100.errors import C100Error, ConfigError, DataContentError, DataCorruptError, DataMissingError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
TGZ_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
FOLDER = "cifar-100-python"
NUM_CLASSES = 100
NUM_SUPERCLASSES = 20
# sha256 of the N x 32 x 32 x 3 uint8 pixel array (HWC, C-contiguous); identical for the official
# files and for any lossless copy of them.
PIXEL_SHA256 = {
    "train": "4e457917601a66aed021f5fa37957b56c6319557c0a8ed5484de3c390af45430",
    "test": "4cb8e5d9309da489bf6b19cc10cd96c3ae6f8daf225380b605aaee4c0d6aee19",
}
OFFICIAL_SIZE = {"train": 50_000, "test": 10_000}
VERIFY_LEVELS = ("full", "structure")


@dataclass
class Split:
    """One split in memory: ``images`` uint8 (N, 3, 32, 32), labels int64 (N,)."""

    images: np.ndarray
    fine: np.ndarray
    coarse: np.ndarray


@dataclass
class Meta:
    fine_names: list
    coarse_names: list

    def fine_to_coarse(self, split: Split) -> np.ndarray:
        """The superclass of each fine class, read off the data (constant per fine class)."""
        table = np.full(NUM_CLASSES, -1, dtype=np.int64)
        table[split.fine] = split.coarse
        return table


def default_root() -> Path:
    env = os.environ.get("C100_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "c100"


def resolve_root(root=None) -> Path:
    """``--data-root``, else ``$C100_DATA``, else ``~/.cache/c100``."""
    return Path(root).expanduser() if root else default_root()


def dataset_dir(root) -> Path:
    root = Path(root)
    return root if (root / "meta").exists() and root.name == FOLDER else root / FOLDER


def offline_help(root) -> str:
    d = Path(root) / FOLDER
    return (f"CIFAR-100 not found in {d}. Either run `c100 data download --data-root {root}` on a machine "
            f"with internet, or download {URL} (md5 {TGZ_MD5}) yourself and unpack it so that "
            f"{d}/train, {d}/test and {d}/meta exist (`tar xzf cifar-100-python.tar.gz -C {root}`). "
            f"You can also point --data-root or $C100_DATA at a folder that holds {FOLDER}/.")


def download_dataset(root) -> Path:
    """Download and unpack the official tarball with torchvision's md5-verifying helpers."""
    from torchvision.datasets.utils import download_and_extract_archive

    root = Path(root)
    if (root / FOLDER / "train").exists():
        return root / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    try:
        download_and_extract_archive(URL, str(root), filename="cifar-100-python.tar.gz", md5=TGZ_MD5)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad md5 is a RuntimeError
        raise DataMissingError(f"download of {URL} failed ({e}). " + offline_help(root)) from e
    return root / FOLDER


class ForeignGlobalError(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits the globals numpy uses to pickle arrays and dtypes, and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # numpy arrays pickled by Python 3 for protocol 2 carry bytes this way
        ("__builtin__", "bytes"),  # ... and an empty array's (zero) bytes this way
        ("builtins", "bytes"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise ForeignGlobalError(f"refused to load global {module}.{name}: not a numpy array global")


def safe_unpickle(path):
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise DataMissingError(f"missing data file {path}") from e
    except OSError as e:
        raise DataCorruptError(f"cannot read {path}: {e}") from e
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except ForeignGlobalError as e:
        raise DataCorruptError(f"{path} is not a plain CIFAR-100 pickle: {e}; nothing was run") from e
    except Exception as e:  # truncated or garbled: EOFError, ValueError, KeyError, ...
        raise DataCorruptError(f"{path} is truncated or corrupt ({type(e).__name__}: {e})") from e


def _field(d, key, path):
    for k in (key.encode(), key):
        if isinstance(d, dict) and k in d:
            return d[k]
    raise DataContentError(f"{path} has no field {key!r}: not a CIFAR-100 pickle")


def _array(d, key, path):
    try:
        return np.asarray(_field(d, key, path))
    except (ValueError, TypeError, OverflowError) as e:  # ragged or mixed lists
        raise DataContentError(f"{path}: {key} is not an array ({e})") from e


def _labels(d, key, path, n, high):
    arr = _array(d, key, path)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise DataContentError(f"{path}: {key} should be {n} integers, got shape {arr.shape} dtype {arr.dtype}")
    if arr.min(initial=0) < 0 or arr.max(initial=0) >= high:
        raise DataContentError(f"{path}: {key} out of range 0..{high - 1} (min {arr.min()}, max {arr.max()})")
    return arr.astype(np.int64)


def pixel_sha256(images_nchw: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images_nchw.transpose(0, 2, 3, 1)).tobytes()).hexdigest()


def load_split(root, split, verify="full") -> Split:
    """Load ``train`` or ``test`` and check its content; raise a DataError naming what is wrong."""
    if verify not in VERIFY_LEVELS:
        raise ValueError(f"verify must be one of {VERIFY_LEVELS}")
    d = dataset_dir(root)
    path = d / split
    if not d.is_dir() or not path.exists():
        raise DataMissingError(offline_help(Path(root)) if not d.is_dir() else f"missing {path}. " + offline_help(d.parent))
    raw = safe_unpickle(path)
    data = _array(raw, "data", path)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataContentError(f"{path}: data should be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    n = data.shape[0]
    if n == 0:
        raise DataContentError(f"{path} holds no images")
    fine = _labels(raw, "fine_labels", path, n, NUM_CLASSES)
    coarse = _labels(raw, "coarse_labels", path, n, NUM_SUPERCLASSES)
    counts = np.bincount(fine, minlength=NUM_CLASSES)
    if n % NUM_CLASSES or (counts != n // NUM_CLASSES).any():
        bad = int(np.argmax(counts != n // NUM_CLASSES))
        raise DataContentError(f"{path}: per-class counts should all be {n / NUM_CLASSES:g}, "
                               f"class {bad} has {counts[bad]}")
    images = data.reshape(n, 3, 32, 32)
    if verify == "full":
        if n != OFFICIAL_SIZE[split]:
            raise DataContentError(f"{path}: {n} images, the official {split} split has {OFFICIAL_SIZE[split]} "
                                   f"(use --verify structure for a deliberately smaller copy)")
        digest = pixel_sha256(images)
        if digest != PIXEL_SHA256[split]:
            raise DataContentError(f"{path}: pixel sha256 {digest} differs from the official {PIXEL_SHA256[split]}; "
                                   f"the file is damaged or not CIFAR-100")
    return Split(images, fine, coarse)


def load_meta(root, verify="structure") -> Meta:
    """The label names. ``structure``: 100 fine and 20 coarse strings, which must not be CIFAR-100's
    names in another order (labels index names by position, so a reordering names every class wrongly);
    ``full``: exactly the official names in the official order, as the pixel hashes are checked."""
    if verify not in VERIFY_LEVELS:
        raise ValueError(f"verify must be one of {VERIFY_LEVELS}")
    path = dataset_dir(root) / "meta"
    raw = safe_unpickle(path)
    try:
        fine = [n.decode() if isinstance(n, bytes) else str(n) for n in _field(raw, "fine_label_names", path)]
        coarse = [n.decode() if isinstance(n, bytes) else str(n) for n in _field(raw, "coarse_label_names", path)]
    except (TypeError, UnicodeDecodeError) as e:
        raise DataContentError(f"{path}: the label names are not a list of strings ({e})") from e
    if len(fine) != NUM_CLASSES or len(coarse) != NUM_SUPERCLASSES:
        raise DataContentError(f"{path}: expected {NUM_CLASSES} fine and {NUM_SUPERCLASSES} coarse names")
    official = builtin_class_names()  # the official names (sorted, as in the meta file)
    for kind, got, want in (("fine", fine, official.fine), ("coarse", coarse, official.coarse)):
        if got == want or (verify == "structure" and sorted(got) != sorted(want)):
            continue  # official, or (structure) a custom data set's own names
        i = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        what = ("CIFAR-100's in another order" if sorted(got) == sorted(want) else "not CIFAR-100's")
        raise DataContentError(f"{path}: the {kind} label names are {what} (position {i}: {got[i]!r}, the official "
                               f"{want[i]!r}); labels index the names by position, so every prediction would be "
                               f"named wrongly: the file is damaged or not CIFAR-100's meta"
                               + (" (use --verify structure for a data set with its own names)"
                                  if what == "not CIFAR-100's" else ""))
    return Meta(fine, coarse)


def class_names(data_root=None) -> ClassNames:
    """Names from the data set's meta file when it is on this machine, else the built-in CIFAR-100 list.

    The fine-to-coarse mapping is the built-in one when the meta file's names are CIFAR-100's, else it
    is read off the test split's labels (a custom copy), else there is none.
    """
    builtin = builtin_class_names()
    root = resolve_root(data_root)
    if not (dataset_dir(root) / "meta").is_file():
        return builtin
    try:
        meta = load_meta(root)
    except C100Error:
        return builtin
    # named relative to the data root: this text goes into checkpoints and shipped weights' metadata,
    # which must not carry the training machine's paths
    source = f"data set meta file ({dataset_dir(root).name}/meta)"
    if meta.fine_names == builtin.fine and meta.coarse_names == builtin.coarse:
        return ClassNames(builtin.fine, builtin.coarse, builtin.fine_to_coarse, source)
    try:
        table = meta.fine_to_coarse(load_split(root, "test", "structure")).tolist()
    except C100Error:
        table = None
    if table is None or min(table) < 0:
        return ClassNames(meta.fine_names, meta.coarse_names, None, source + " (no superclass mapping)")
    return ClassNames(meta.fine_names, meta.coarse_names, table, source)


def train_val_indices(fine: np.ndarray, val_size: int, split_seed: int, train_subset: int = 0):
    """A run's (train, val) indices into the train split: the one rule training and evaluation share.

    ``val_size`` images are held out (stratified_split, seed ``split_seed``); with ``train_subset``
    only that many of the rest are trained on, again the same number per class (seed ``split_seed + 1``),
    so the validation images are the same with or without a subset."""
    tr_idx, val_idx = stratified_split(fine, val_size, split_seed)
    if train_subset:
        if train_subset > len(tr_idx):
            raise ConfigError(f"train_subset {train_subset} exceeds the {len(tr_idx)} training images")
        keep, _ = stratified_split(fine[tr_idx], len(tr_idx) - train_subset, split_seed + 1)
        tr_idx = tr_idx[keep]
    return tr_idx, val_idx


def stratified_split(labels: np.ndarray, val_size: int, seed: int = 0):
    """Indices (train, val): ``val_size`` images, the same number from each class, fixed by ``seed``."""
    if val_size == 0:
        return np.arange(len(labels)), np.arange(0)
    per_class = val_size // NUM_CLASSES
    if val_size % NUM_CLASSES or per_class >= np.bincount(labels, minlength=NUM_CLASSES).min():
        raise ConfigError(f"val_size {val_size} must be a multiple of {NUM_CLASSES} and leave training images in "
                          f"every class (the smallest class here has {np.bincount(labels, minlength=NUM_CLASSES).min()})")
    rng = np.random.default_rng(seed)
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(NUM_CLASSES)])
    val.sort()
    mask = np.ones(len(labels), bool)
    mask[val] = False
    return np.flatnonzero(mask), val


def write_split(root, split, images_nchw, fine, coarse, protocol=2):
    """Write a split in the official format (for tests and tools that make small copies)."""
    d = Path(root) / FOLDER
    d.mkdir(parents=True, exist_ok=True)
    n = len(fine)
    obj = {b"filenames": [f"img_{i}.png".encode() for i in range(n)], b"batch_label": f"{split} batch".encode(),
           b"fine_labels": [int(v) for v in fine], b"coarse_labels": [int(v) for v in coarse],
           b"data": np.ascontiguousarray(images_nchw.reshape(n, -1), dtype=np.uint8)}
    with open(d / split, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def write_meta(root, fine_names, coarse_names):
    d = Path(root) / FOLDER
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [n.encode() for n in fine_names],
                     b"coarse_label_names": [n.encode() for n in coarse_names]}, f, protocol=2)


def ensure_data(root=None, download=False) -> Path:
    """The data root holding cifar-100-python/, downloading it if asked; a clear error otherwise."""
    root = resolve_root(root)
    if (root / FOLDER / "train").exists() and (root / FOLDER / "test").exists():
        return root
    if root.name == FOLDER and (root / "train").exists():
        return root.parent
    if download:
        download_dataset(root)
        return root
    raise DataMissingError(offline_help(root))
