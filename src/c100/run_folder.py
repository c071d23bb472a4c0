"""The run folder format, in one place: what a run folder holds, its file and folder names, the
run's default name, its status, which config fields do not tell two runs apart, and the writer.

    <run>/config.json, metrics.jsonl, summary.json, predictions.npz, checkpoints/{last,best}.pt, tb/

See docs/RUN_FORMAT.md. ``RunDir`` writes a run (only the main rank writes; every file atomically);
c100.report.runs reads and validates finished runs with the names and lists defined here.
"""
import io
import json
import os
from pathlib import Path

import numpy as np

from c100.version import __version__
from c100.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, remove_stale_temp_files
from c100.errors import RunFolderError

CONFIG, METRICS, SUMMARY, PREDICTIONS = "config.json", "metrics.jsonl", "summary.json", "predictions.npz"
RUN_FILES = (SUMMARY, CONFIG, METRICS, PREDICTIONS)
CHECKPOINTS, LAST, BEST = "checkpoints", "last.pt", "best.pt"
TB = "tb"
# The owner's lock: flock()ed by the one process that trains into the folder, for the whole run; it
# holds that process's pid. The kernel drops the lock when the process ends, however it ends.
LOCK_NAME = ".c100.lock"

# The one list of config fields that say how a run was executed or labelled, not what it trained:
# they may differ between a run and its resume (or a suite's or study's rerun) and do not make two
# runs different variants in a report. device, threads and compile (CUDA only) change at most the
# float rounding, like running on another machine; eval_batch_size only how evaluation is batched;
# eval_every only which epochs carry val_* columns (and so which epoch best.pt may hold): the weights
# of every epoch, the test error and predictions.npz are the same; notes is a label. (The writer used
# to ignore compile but not eval_every, the report eval_every but not compile.) checkpoint_minutes says
# only how often the (bitwise resumable) state is written. cpu_kernels picks kernels whose results
# equal aten's bit for bit (c100.models.fused_pool).
EXECUTION_FIELDS = frozenset({"device", "threads", "compile", "cpu_kernels", "eval_batch_size", "eval_every",
                              "checkpoint_minutes", "notes"})
# config.json keys that record where and with what a run was made, not what it trained.
BOOKKEEPING = frozenset({"c100_version", "data_root"})
# Fields that fit_budget (c100.engine) sets in config.json when budget_minutes is given.
BUDGET_FITTED = frozenset({"epochs", "milestones", "warmup_epochs", "train_subset"})


def run_name(model, recipe, seed) -> str:
    """The default folder name of a run: ``resnet18-fast-s0``; timm/<name> becomes timm_<name>."""
    return f"{model.replace('/', '_')}-{recipe}-s{seed}"


def last_checkpoint(run_dir) -> Path:
    """<run>/checkpoints/last.pt: the newest full training state (what --resume, eval and export read)."""
    return Path(run_dir) / CHECKPOINTS / LAST


def best_checkpoint(run_dir) -> Path:
    """<run>/checkpoints/best.pt: the state of the epoch with the lowest validation top-1 error."""
    return Path(run_dir) / CHECKPOINTS / BEST


def run_status(run_dir) -> str:
    """"finished" (summary.json says so), "resume" (a last checkpoint to continue from) or "new"."""
    if RunDir(run_dir).finished_summary() is not None:
        return "finished"
    return "resume" if last_checkpoint(run_dir).exists() else "new"


def config_differences(old: dict, new: dict) -> dict:
    """{field: (old, new)} for the fields in which two configs give different results.

    ``old`` is a config.json; EXECUTION_FIELDS and BOOKKEEPING are ignored, and so are the fields
    fit_budget chose when both configs ask for the same budget_minutes.
    """
    a, b = _comparable(old), _comparable(new)
    ignore = set(BOOKKEEPING)
    if a.get("budget_minutes") and a.get("budget_minutes") == b.get("budget_minutes"):
        ignore |= BUDGET_FITTED
    return {k: (a.get(k), b.get(k)) for k in sorted((set(a) | set(b)) - ignore) if a.get(k) != b.get(k)}


def differences_text(diff: dict) -> str:
    """'epochs 1 (in the folder) -> 3, lr ...' for a config_differences result."""
    return ", ".join(f"{k} {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in diff.items())


class RunDir:
    def __init__(self, path, enabled=True):
        self.path = Path(path)
        self.enabled = enabled  # False on non-main ranks: nothing is written
        self.ckpt_dir = self.path / CHECKPOINTS
        self.last = last_checkpoint(self.path)
        self.best = best_checkpoint(self.path)
        self._tb = None
        self._lock_fd, self._made_folder = None, False

    # --- ownership
    def lock(self):
        """Become the folder's one owner until ``unlock`` (or this process's end); else RunFolderError.

        An OS lock (flock) on LOCK_NAME, so two processes never train into one folder at once and a
        killed owner leaves no stale lock. Creates the folder when it does not exist.
        """
        try:
            import fcntl
        except ImportError:  # no flock (not a POSIX system): the folder is not guarded
            return
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} is a file, not a run folder; choose another --out")
        while True:
            self._made_folder = self._made_folder or not self.path.exists()
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:  # an owner removed the folder it had made just now: try again
                continue
            except OSError as e:
                raise RunFolderError(f"cannot create the run folder lock {self.path / LOCK_NAME} "
                                     f"({e.strerror or e}); choose another --out") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderError(f"{self.path} is in use: another c100 process (pid {owner}) is training "
                                     f"into it; wait for it to end (or stop it: kill {owner}), or choose another "
                                     f"--out") from None
            try:  # the lock is ours unless its owner unlinked the file between our open and flock
                if os.stat(self.path / LOCK_NAME).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self):
        """Release the folder and remove the lock file (safe: ``lock`` checks that the file it locked is
        still in place); a folder that ``lock`` made and that holds nothing else is removed too."""
        if self._lock_fd is None:
            return
        try:
            os.unlink(self.path / LOCK_NAME)
            if self._made_folder and not any(self.path.iterdir()):
                self.path.rmdir()
        except OSError:
            pass  # another process is just starting in it: it keeps the folder
        os.close(self._lock_fd)
        self._lock_fd = None

    # --- starting
    def existing_config(self):
        f = self.path / CONFIG
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
            s = json.loads((self.path / SUMMARY).read_text())
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
            self._refuse_foreign_content()
            return
        diff = config_differences(old, cfg_dict)
        if diff:
            raise RunFolderError(f"{self.path} already holds a different run (differs in: {differences_text(diff)}); "
                                 f"choose another --out, or delete that folder")
        done = self.finished_summary()
        if done is not None:
            test = done.get("test") or {}
            err = f" (test top-1 err {test['top1_err']:.2f}%)" if isinstance(test.get("top1_err"), (int, float)) else ""
            raise RunFolderError(f"{self.path} already holds this run, finished{err}: its results are in "
                                 f"{self.path / SUMMARY} and {self.path / PREDICTIONS}; "
                                 f"`c100 report {self.path}` tables them. To train it again, choose another --out "
                                 f"or delete that folder")
        if self.last.exists() or (self.path / SUMMARY).exists():
            raise RunFolderError(f"{self.path} already holds this run with progress; "
                                 f"continue it with `c100 train --resume {self.path}` or delete the folder")

    def _refuse_foreign_content(self):
        """A folder without config.json may hold only what a starting run leaves: its lock, and temporary
        files of a write killed in flight. Anything else (a suite's runs, images, ...) is not c100's to use."""
        if not self.path.is_dir():
            return
        other = sorted(p for p in self.path.iterdir() if p.name != LOCK_NAME and not _is_temp_file(p))
        if not other:
            return
        runs = [p.name for p in other if p.is_dir() and any((p / f).is_file() for f in (CONFIG, SUMMARY))]
        if runs:
            raise RunFolderError(f"{self.path} is a suite folder (it holds the run(s) {_some(runs)}), not a run "
                                 f"folder; give the new run a folder of its own, e.g. --out {self.path / 'NAME'}")
        raise RunFolderError(f"{self.path} is not empty and holds no c100 run ({_some([p.name for p in other])}); "
                             f"a run goes into a new or empty folder: choose another --out")

    def write_config(self, cfg_dict):
        if self.enabled:
            atomic_write_json(self.path / CONFIG, {**cfg_dict, "c100_version": __version__})

    # --- during training
    def write_metrics(self, rows):
        """The whole file, rewritten atomically: it always matches the newest checkpoint or more."""
        if self.enabled:
            atomic_write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))

    def tb(self):
        if self.enabled and self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.path / TB))
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
            atomic_write_json(self.path / SUMMARY, summary)

    def write_predictions(self, logits, labels, coarse_labels, split="test"):
        if self.enabled:
            buf = io.BytesIO()
            np.savez_compressed(buf, logits=logits.astype(np.float32), labels=labels.astype(np.int64),
                                coarse_labels=coarse_labels.astype(np.int64), split=np.array(split))
            atomic_write_bytes(self.path / PREDICTIONS, buf.getvalue())

    def close(self, hparams=None, final=None):
        if self._tb is not None:
            if hparams is not None:
                self._tb.add_hparams(hparams, final or {}, run_name=".")
            self._tb.close()
            self._tb = None


def _is_temp_file(p):
    """A temporary file of c100.atomic's: .<name>.<random>.tmp"""
    return p.name.startswith(".") and p.name.endswith(".tmp") and p.name.count(".") >= 3 and p.is_file()


def _some(names, n=3):
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _jsonish(v):
    return json.loads(json.dumps(v))


def _comparable(d):
    return {k: _jsonish(v) for k, v in d.items() if k not in EXECUTION_FIELDS}
