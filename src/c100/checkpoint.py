"""Checkpoints: one versioned dict, written atomically, loaded with ``weights_only=True``.

    {"format": "c100-checkpoint", "version": 1, "c100_version": ..., "config": TrainConfig dict,
     "model": state_dict, "optimizer": state_dict, "ema": state_dict | None, "scaler": ... | None,
     "epoch": epochs completed, "step_in_epoch": optimizer steps done in the epoch in progress,
     "global_step": ..., "partial": running sums of the epoch in progress, "metrics": [rows so far],
     "best": {"epoch", "val_top1_err"}, "train_time_s": ..., "eval_time_s": ...,
     "rng": {"torch": ..., "cuda": [...] | None}}

Nothing in a checkpoint can run code: ``torch.load(weights_only=True)`` admits tensors and plain
containers only, and a file naming any other global is refused with a clear message.
"""
import pickle
import zipfile
from pathlib import Path

import torch

from c100 import __version__
from c100.atomic import atomic_torch_save
from c100.errors import CheckpointError

FORMAT, VERSION = "c100-checkpoint", 1


def save_checkpoint(state: dict, path):
    atomic_torch_save({"format": FORMAT, "version": VERSION, "c100_version": __version__, **state}, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {path} was refused: it names code or objects that are not plain "
                              f"tensors and containers, so it was not loaded ({str(e).splitlines()[0]})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a c100 checkpoint")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt['version']}; this c100 reads up to {VERSION}")
    for key in ("config", "model"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}: incomplete file")
    return ckpt


def rng_state():
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
