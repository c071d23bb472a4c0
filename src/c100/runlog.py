"""The run folder: config.json, metrics.jsonl, summary.json, predictions.npz, checkpoints/, tb/.

See docs/RUN_FORMAT.md. Only the main rank writes. Every file is written atomically.
"""
import io
import json
from pathlib import Path

import numpy as np

from c100 import __version__
from c100.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, remove_stale_temp_files
from c100.errors import RunFolderError

# Fields that may differ between a run and its resume without changing the result's meaning.
RESUME_MAY_DIFFER = {"device", "threads", "compile", "eval_batch_size", "notes"}


class RunDir:
    def __init__(self, path, enabled=True):
        self.path = Path(path)
        self.enabled = enabled  # False on non-main ranks: nothing is written
        self.ckpt_dir = self.path / "checkpoints"
        self.last = self.ckpt_dir / "last.pt"
        self.best = self.ckpt_dir / "best.pt"
        self._tb = None

    # --- starting
    def existing_config(self):
        f = self.path / "config.json"
        if not f.exists():
            return None
        try:
            cfg = json.loads(f.read_text())
        except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise RunFolderError(f"{f} is unreadable ({e}); choose another --out") from e
        if not isinstance(cfg, dict):
            raise RunFolderError(f"{f} does not hold a config (a JSON object); choose another --out")
        return cfg

    def finished_summary(self):
        """summary.json of a finished run, else None (absent, unreadable or not finished)."""
        try:
            s = json.loads((self.path / "summary.json").read_text())
        except (ValueError, OSError):
            return None
        return s if isinstance(s, dict) and s.get("status") == "finished" else None

    def remove_stale_temp_files(self, log=None):
        """Clear the temporary files of writes that a crash interrupted (the targets are intact)."""
        if not self.enabled:
            return
        removed = remove_stale_temp_files(self.path) + remove_stale_temp_files(self.ckpt_dir)
        if removed and log:
            log(f"removed {len(removed)} partial file(s) left by an interrupted write: "
                f"{', '.join(p.name for p in removed)}")

    def check_fresh_start(self, cfg_dict):
        """A new run may go into an empty folder or one holding the same config and no progress."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} is a file, not a run folder; choose another --out")
        old = self.existing_config()
        if old is None:
            return
        old = {k: v for k, v in old.items() if k != "c100_version"}
        if _comparable(old) != _comparable(cfg_dict):
            diff = sorted(k for k in set(old) | set(cfg_dict) if old.get(k) != _jsonish(cfg_dict.get(k)))
            raise RunFolderError(f"{self.path} already holds a different run (differs in: {', '.join(diff)}); "
                                 f"choose another --out, or delete that folder")
        if self.last.exists() or (self.path / "summary.json").exists():
            raise RunFolderError(f"{self.path} already holds this run with progress; "
                                 f"continue it with `c100 train --resume {self.path}` or delete the folder")

    def write_config(self, cfg_dict):
        if self.enabled:
            atomic_write_json(self.path / "config.json", {**cfg_dict, "c100_version": __version__})

    # --- during training
    def write_metrics(self, rows):
        """The whole file, rewritten atomically: it always matches the newest checkpoint or more."""
        if self.enabled:
            atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def tb(self):
        if self.enabled and self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.path / "tb"))
        return self._tb

    def log_scalars(self, row):
        w = self.tb()
        if w is None:
            return
        for k, v in row.items():
            if k not in ("epoch", "step") and isinstance(v, (int, float)) and v is not None:
                w.add_scalar(k.replace("_", "/", 1) if k.startswith(("train_", "val_")) else k, v, row["epoch"])
        w.flush()

    # --- at the end
    def write_summary(self, summary):
        if self.enabled:
            atomic_write_json(self.path / "summary.json", summary)

    def write_predictions(self, logits, labels, coarse_labels, split="test"):
        if self.enabled:
            buf = io.BytesIO()
            np.savez_compressed(buf, logits=logits.astype(np.float32), labels=labels.astype(np.int64),
                                coarse_labels=coarse_labels.astype(np.int64), split=np.array(split))
            atomic_write_bytes(self.path / "predictions.npz", buf.getvalue())

    def close(self, hparams=None, final=None):
        if self._tb is not None:
            if hparams is not None:
                self._tb.add_hparams(hparams, final or {}, run_name=".")
            self._tb.close()
            self._tb = None


def _jsonish(v):
    return json.loads(json.dumps(v))


def _comparable(d):
    return {k: _jsonish(v) for k, v in d.items() if k not in RESUME_MAY_DIFFER}
