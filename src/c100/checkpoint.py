"""Checkpoints: one versioned dict, written atomically, sealed with a sha256, loaded with ``weights_only=True``.

    {"format": "c100-checkpoint", "version": 2, "c100_version": ..., "config": TrainConfig dict,
     "model": state_dict, "optimizer": state_dict, "ema": state_dict | None, "scaler": ... | None,
     "epoch": epochs completed, "step_in_epoch": optimizer steps done in the epoch in progress,
     "partial": running sums of the epoch in progress, "metrics": [rows so far],
     "best": {"epoch", "val_top1_err"}, "train_time_s": ..., "eval_time_s": ...,
     "rng": {"torch": ..., "cuda": the training device's state | None}}

Nothing in a checkpoint can run code: ``torch.load(weights_only=True)`` admits tensors and plain
containers only, and a file naming any other global is refused with a clear message.

Integrity (version 2): the file is the zip archive ``torch.save`` writes, with the sha256 of that
archive stored in the zip's own comment field (``c100-sha256:<64 hex digits>``), so it stays a
valid zip that ``torch.load`` reads as it is. torch's reader does not check the CRCs of tensor data,
so without the seal a flipped bit in the weights would load silently; with it, any changed, missing
or added byte is refused by ``load_checkpoint``. Version-1 files (no seal) still load.
"""
import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path

import torch

from c100.version import __version__
from c100.atomic import atomic_write_bytes, torch_save_bytes
from c100.errors import CheckpointError

FORMAT, VERSION = "c100-checkpoint", 2
SEAL_PREFIX = b"c100-sha256:"
_SEAL_LEN = len(SEAL_PREFIX) + 64
_EOCD = b"PK\x05\x06"  # zip end-of-central-directory signature; the record is 22 bytes + comment


def save_checkpoint(state: dict, path):
    write_checkpoint(checkpoint_chunks(state), path)


def checkpoint_chunks(state: dict) -> list:
    """``state`` serialised and sealed once, as chunks that ``write_checkpoint`` may write to several
    files (the trainer writes best.pt and last.pt of one epoch from the same chunks)."""
    payload = {"format": FORMAT, "version": VERSION, "c100_version": __version__, **state}
    return seal_chunks(torch_save_bytes(payload))


def write_checkpoint(chunks: list, path):
    """Write ``checkpoint_chunks``' result to ``path`` atomically (fsynced)."""
    atomic_write_bytes(path, chunks)


def seal_chunks(archive) -> list:
    """The zip ``archive`` (as torch.save writes it: no comment) with its sha256 as the zip comment,
    as chunks to write in order (no copy of the archive)."""
    archive = memoryview(archive)
    if archive[-22:-18] != _EOCD or archive[-2:] != b"\0\0":
        raise ValueError("not a zip archive without a comment")
    comment = SEAL_PREFIX + hashlib.sha256(archive).hexdigest().encode()
    return [archive[:-2], struct.pack("<H", len(comment)) + comment]


def seal(archive) -> bytes:
    """The sealed file as one bytes object: for tools (and tests) that write a checkpoint archive by other means."""
    return b"".join(seal_chunks(archive))


def verify_seal(raw, path) -> bool:
    """True if ``raw`` is sealed and whole; False if it carries no seal (a version-1 file);
    CheckpointError if the seal or the content it covers was damaged."""
    raw = memoryview(raw)
    if bytes(raw[-4096:]).rfind(SEAL_PREFIX) < 0:
        return False
    tail = bytes(raw[-(22 + _SEAL_LEN):])
    if (len(tail) != 22 + _SEAL_LEN or tail[:4] != _EOCD or tail[20:22] != struct.pack("<H", _SEAL_LEN)
            or not tail[22:].startswith(SEAL_PREFIX)):
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: its integrity seal is damaged")
    h = hashlib.sha256(raw[:-(_SEAL_LEN + 2)])
    h.update(b"\0\0")  # the archive's own (empty) comment length, as it was hashed
    if h.hexdigest().encode() != tail[22 + len(SEAL_PREFIX):]:
        raise CheckpointError(f"checkpoint {path} is corrupt: its content does not match the sha256 "
                              f"recorded when it was written (a damaged or partly overwritten file)")
    return True


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({e.strerror or e})") from e
    if not raw:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): truncated or corrupt, e.g. a copy that "
                              f"never finished")
    sealed = verify_seal(raw, path)
    foreign = None if sealed else what_else(raw)
    if foreign:
        raise CheckpointError(f"{path} is not a c100 checkpoint: {foreign}")
    try:  # torch reads the sealed file as it is: the seal is an ordinary zip comment
        ckpt = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {path} was refused: it names code or objects that are not plain "
                              f"tensors and containers, so it was not loaded ({_torch_reason(e)})") from e
    except Exception as e:  # truncated or garbled: RuntimeError, EOFError, BadZipFile, ValueError, ...
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read "
                              f"({type(e).__name__}: {_torch_reason(e)})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a c100 checkpoint")
    version = ckpt.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {version!r}; this c100 reads up to {VERSION}")
    if version >= 2 and not sealed:
        raise CheckpointError(f"checkpoint {path} is corrupt: its integrity seal is missing")
    for key, typ in (("config", dict), ("model", dict)):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}: incomplete file")
        if not isinstance(ckpt[key], typ):
            raise CheckpointError(f"checkpoint {path}: {key!r} should be a {typ.__name__}, "
                                  f"got {type(ckpt[key]).__name__}")
    return ckpt


# what c100 predict / eval take, for the messages about files that are something else
TAKES = ("`c100 eval` takes a checkpoint (RUN/checkpoints/*.pt), a run folder or a .safetensors weights file, "
         "and so does `c100 predict`")


def what_else(raw) -> str | None:
    """Why ``raw`` (a whole file, with no c100 seal) cannot be a c100 checkpoint, naming what it is
    when c100 wrote it (an export); None when it may be one (a zip archive that torch.save wrote).

    c100 checkpoints are always torch.save's zip archive (``<name>/data.pkl`` inside), so any other
    file is refused here without handing it to torch.load at all."""
    raw = memoryview(raw)
    if bytes(raw[:4]) == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
        except (zipfile.BadZipFile, ValueError, OSError):
            return None  # a damaged archive: torch.load says it is truncated or corrupt
        if any(n.endswith("/extra/c100_metadata.json") for n in names):
            return ("it is a c100 TorchScript export (`c100 export --format torchscript`); run it with "
                    f"torch.jit.load (docs/INFERENCE.md). {TAKES}")
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return f"it is a TorchScript archive; run it with torch.jit.load. {TAKES}"
        if not any(n.endswith("data.pkl") for n in names):
            return f"it is a zip archive that torch.save did not write. {TAKES}"
        return None
    kind = _export_kind(raw)
    if kind:
        return kind
    head = bytes(raw[:4096])
    # text: no NUL and almost only printable bytes (>= 0x20, tab, newlines; UTF-8 multibyte included)
    if b"\0" not in head and sum(b >= 0x20 or b in b"\t\n\r" for b in head) >= 0.98 * len(head):
        return f"it is a text file. {TAKES}"
    return f"it is not a zip archive as torch.save writes. {TAKES}"


def _export_kind(raw) -> str | None:
    """A message for c100's own safetensors weights and ONNX exports (and others' files of both kinds)."""
    import json

    n = int.from_bytes(bytes(raw[:8]), "little") if len(raw) >= 9 else 0
    if bytes(raw[8:9]) == b"{" and 0 < n <= len(raw) - 8:  # safetensors: u64 header length, JSON header
        try:
            fmt = json.loads(bytes(raw[8:8 + n])).get("__metadata__", {}).get("format")
        except (ValueError, AttributeError):
            fmt = None
        if fmt == "c100-weights":
            return ("it is a c100 safetensors weights file (`c100 export --format safetensors`): "
                    "`c100 predict` and c100.load take it; `c100 eval` needs a checkpoint or a run folder")
        return f"it is a safetensors file that c100 did not write. {TAKES}"
    if bytes(raw[:1]) == b"\x08":  # ONNX ModelProto: field 1 (ir_version, varint) comes first
        try:
            import onnx

            props = {p.key: p.value for p in onnx.load_model_from_string(bytes(raw)).metadata_props}
        except ImportError:  # without onnx: c100's metadata keys are plain bytes in the file
            props = {"format": "c100-weights"} if b"c100-weights" in raw and b"pytorch" in raw[:32] else None
        except Exception:
            props = None
        if props is not None and props.get("format") == "c100-weights":
            return ("it is a c100 ONNX export (`c100 export --format onnx`); run it with onnxruntime "
                    f"(docs/INFERENCE.md). {TAKES}")
        if props is not None:
            return f"it is an ONNX model; run it with onnxruntime. {TAKES}"
    return None


def _torch_reason(e) -> str:
    """torch's message without its advice to load with weights_only=False, which would run the file's code."""
    keep = [line.strip() for line in str(e).splitlines()
            if line.strip() and "weights_only" not in line and "Weights only load failed" not in line
            and "documentation of torch.load" not in line]
    return keep[0] if keep else type(e).__name__


def rng_state(device=None):
    """The CPU generator's state and, when ``device`` is a CUDA device, that one device's (each rank
    saves its own training device: a resume on fewer or other GPUs needs no state of absent ones)."""
    cuda = device is not None and torch.device(device).type == "cuda"
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None}


def set_rng_state(state, device=None):
    """Restore ``rng_state(device)``. A CUDA state goes to ``device`` only (ignored when it is the CPU).
    Older checkpoints saved every visible GPU's state as a list (get_rng_state_all); from one of those
    the entry of ``device``'s index is taken, or the first when the run had fewer GPUs."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None or device is None or torch.device(device).type != "cuda":
        return
    device = torch.device(device)
    if isinstance(cuda, (list, tuple)):
        if not cuda:
            return
        index = device.index or 0
        cuda = cuda[index] if index < len(cuda) else cuda[0]
    torch.cuda.set_rng_state(cuda, device)
