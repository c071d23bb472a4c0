"""A tuning study: its folder, the worker loop, each trial as one c100 run folder, the final result.

    STUDY/study.json      what the study is: model, recipe, fixed options, space, objective, storage
    STUDY/journal.log     Optuna's journal (the embedded storage; absent with --storage URL)
    STUDY/study.lock      serialises "count the trials, start one" across workers (c100.tune.storage)
    STUDY/workers/        one lock file per live worker process: a free lock means a dead worker
    STUDY/trials/NNNN/    trial NNNN's run folder (trial 0000 is the untuned recipe)
    STUDY/best.json       the best trial's config: `c100 train --config STUDY/best.json` trains it again
    STUDY/result.json     the best trial, its validation and (evaluated once) test error, the baseline

The objective is the final validation top-1 error (%, minimised) of each trial's last weights with
the recipe's test-time augmentation, as summary.json's "val" has it; trials never touch the test
set (``trainer.run(test=False)``). Intermediate values are metrics.jsonl's per-epoch
``val_top1_err`` (no TTA), reported at step = epoch, for pruning and the history plot.

A trial whose worker dies (kill, crash, power) or is stopped (Ctrl-C, SIGTERM, the time budget) is
marked FAIL, and a new trial with the same parameters is queued (user attr ``retry_of``) that
continues the dead trial's run folder from its last checkpoint (the folder is moved to the new
trial's number). Why not resume the same trial: Optuna cannot hand a RUNNING trial to another
process, and its samplers read FAIL as "no result", which is the truth for a stopped trial; the
training itself loses nothing but the unfinished epoch, since a resumed c100 run is the
uninterrupted one (bitwise on the CPU). A dead worker is found by the next worker on the same host
at once (its lock in workers/ is free); on another host, when its heartbeat is ``GRACE_S`` old.
Trials that end in a config's own fault (NaN loss: pruned; out of memory, a config the trainer
refuses: failed) count as trials and are not retried.
"""
import json
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from c100.version import __version__
from c100.atomic import atomic_write_json
from c100.errors import ConfigError, NumericalError, ResourceError, StudyError
from c100.run_folder import EXECUTION_FIELDS, RunDir, last_checkpoint
from c100.tune.space import Space

HOST = socket.gethostname()
HEARTBEAT_S = 30
GRACE_S = 180        # 6 missed heartbeats (and room for clock skew between hosts)
DEFAULT_VAL_SIZE = 5000
OBJECTIVE = "final validation top-1 error (%) of the last weights, with the recipe's TTA; minimised"


def in_study(message, study_dir) -> str:
    """``message`` with the study folder's own path left out (trials.json holds no absolute path of the
    machine: a study folder is moved and shared like a run folder)."""
    text = str(message)
    for prefix in {str(Path(study_dir).resolve()), str(study_dir)}:
        text = text.replace(prefix.rstrip("/") + "/", "")
    return text

class BudgetReached(Exception):
    """The study's time budget ran out during a trial (raised at an epoch end, after its checkpoint)."""


@dataclass
class Spec:
    """Everything a worker needs, from the command line."""

    model: str
    recipe: str
    fixed: dict                     # TrainConfig overrides given on the command line
    space: Space
    trials: int
    study_dir: Path
    storage_url: str | None = None
    study_name: str | None = None
    budget_minutes: float = 0.0     # this invocation's wall clock: no trial starts after it, running ones stop
    data_root: str | None = None
    verify: str = "full"
    threads: int = 0                # torch threads per trial (0: torch's default); --workers K sets cores/K
    sampler_seed: int | None = None
    prune: bool = True
    notes: list = field(default_factory=list)


def untuned_config(model, recipe, fixed):
    """(TrainConfig of the untuned recipe under the fixed options, fixed with val_size filled in, notes)."""
    from c100.engine.recipes import get_recipe

    notes = []
    cfg = get_recipe(recipe).config_for(model, **fixed)
    if cfg.val_size == 0:
        if "val_size" in fixed:
            raise ConfigError("a study tunes on the validation split: --val-size 0 leaves none; give e.g. "
                              f"--val-size {DEFAULT_VAL_SIZE}")
        fixed = {**fixed, "val_size": DEFAULT_VAL_SIZE}
        cfg = cfg.replace(val_size=DEFAULT_VAL_SIZE)
        notes.append(f"recipe {recipe} trains on all 50,000 images (val_size 0); every trial holds out "
                     f"{DEFAULT_VAL_SIZE:,} for validation (--val-size to choose)")
    if cfg.budget_minutes:
        raise ConfigError("the recipe fits each run into budget_minutes, which makes a trial's length depend on "
                          "the machine's load; tune with --budget-minutes for the whole study instead")
    return cfg, fixed, notes


def _jsonable(d):
    return json.loads(json.dumps(d))


def identity(spec: Spec):
    """What makes two studies the same one. How trials run (device, threads, ...) may change between
    reruns, as between a run and its resume."""
    fixed = {k: v for k, v in spec.fixed.items() if k not in EXECUTION_FIELDS}
    return _jsonable({"model": spec.model, "recipe": spec.recipe, "fixed": fixed,
                      "space": spec.space.to_dict(), "objective": OBJECTIVE})


def _diff(a, b):
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


class Study:
    def __init__(self, spec: Spec, log=print):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # c100 prints its own one line per trial
        self.spec, self.log = spec, log
        self.dir = Path(spec.study_dir)
        self.name = spec.study_name or f"c100-{spec.model.replace('/', '_')}-{spec.recipe}"
        self.base, _, _ = untuned_config(spec.model, spec.recipe, spec.fixed)
        self.identity = identity(spec)
        self._check_folder()
        from c100.tune.pruner import make_pruner
        from c100.tune.storage import open_storage

        self.storage, self.lock, self.storage_desc = open_storage(spec.storage_url, self.dir, self.name)
        n_startup = max(3, min(10, spec.trials // 3))  # Optuna's 10 random trials would be the whole of a short study
        # constant_liar: concurrent workers see each other's running trials as bad results, so they do
        # not all sample the same point; multivariate: lr, weight decay and batch size interact
        sampler = optuna.samplers.TPESampler(n_startup_trials=n_startup, multivariate=True, constant_liar=True,
                                             seed=spec.sampler_seed)
        with self.lock:
            self.study = optuna.create_study(study_name=self.name, storage=self.storage, direction="minimize",
                                             sampler=sampler, pruner=make_pruner(), load_if_exists=True)
            self._check_identity()
        self.worker = None

    # --------------------------------------------------------------------------- identity
    def _check_folder(self):
        if self.dir.exists() and not self.dir.is_dir():
            raise StudyError(f"{self.dir} is a file, not a study folder; choose another --study")
        f = self.dir / "study.json"
        if not f.exists():
            if self.dir.is_dir() and any(self.dir.iterdir()):
                raise StudyError(f"{self.dir} is not empty and holds no study.json: not a study folder; "
                                 f"choose another --study")
            return
        try:
            old = json.loads(f.read_text())
            old_id, old_storage = old["identity"], old["storage"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StudyError(f"{f} is unreadable or not a c100 study ({e}); choose another --study") from e
        if old_id != self.identity:
            what = ", ".join(_diff(old_id, self.identity))
            raise StudyError(f"{self.dir} holds another study: model {old_id.get('model')!r}, recipe "
                             f"{old_id.get('recipe')!r} (differs in: {what}); a study's model, recipe, fixed options "
                             f"and space cannot change: choose another --study")
        from c100.tune.storage import redact

        mine = "embedded" if self.spec.storage_url is None else redact(self.spec.storage_url)
        if old_storage != mine:
            raise StudyError(f"{self.dir} keeps its trials in {old_storage}, not {mine}: "
                             + ("drop --storage" if old_storage == "embedded" else f"pass --storage {old_storage} "
                                                                                    f"(with its password)"))

    def _check_identity(self):
        attrs = self.study.user_attrs.get("c100")
        if attrs is None:
            if self.study.get_trials(deepcopy=False):
                raise StudyError(f"the storage's study {self.name!r} was not made by c100 tune; choose another "
                                 f"--study-name")
            self.study.set_user_attr("c100", self.identity)
            # Trial 0 is the untuned recipe: the search is measured against it under the same conditions
            self.study.enqueue_trial({p: getattr(self.base, p) for p in self.spec.space.names},
                                     user_attrs={"baseline": True})
        elif attrs != self.identity:
            raise StudyError(f"the storage's study {self.name!r} is another study (model {attrs.get('model')!r}, "
                             f"recipe {attrs.get('recipe')!r}; differs in: {', '.join(_diff(attrs, self.identity))}); "
                             f"choose another --study-name")
        f = self.dir / "study.json"
        if not f.exists():
            from c100.tune.storage import redact

            atomic_write_json(f, {"identity": self.identity, "study_name": self.name,
                                  "storage": "embedded" if self.spec.storage_url is None else redact(self.spec.storage_url),
                                  "untuned": self.base.to_dict(), "notes": self.spec.notes,
                                  "created": _now(), "c100_version": __version__})

    # --------------------------------------------------------------------------- bookkeeping
    def trial_dir(self, number):
        return self.dir / "trials" / f"{number:04d}"

    def config_for(self, params):
        from c100.engine.recipes import get_recipe

        cfg = get_recipe(self.spec.recipe).config_for(self.spec.model, **self.spec.fixed, **params)
        if self.spec.threads and "threads" not in self.spec.fixed:
            cfg = cfg.replace(threads=self.spec.threads)
        return cfg

    @staticmethod
    def counted(trials):
        """Trials that count towards --trials: all but failed ones that a retry replaced."""
        from optuna.trial import TrialState

        retried = {t.user_attrs.get("retry_of") for t in trials} - {None}
        return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.number in retried))

    def _queue_retry(self, number, params, user_attrs, reason):
        """Fail trial ``number`` and queue its parameters again (once), under the study lock."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        if not any(t.user_attrs.get("retry_of") == number for t in trials):
            attrs = {"retry_of": number, "retry_reason": reason}
            if user_attrs.get("baseline"):
                attrs["baseline"] = True
            self.study.enqueue_trial(dict(params), user_attrs=attrs)
        t = next(t for t in trials if t.number == number)
        if t.state == TrialState.RUNNING:
            self.study.tell(number, state=TrialState.FAIL)

    def fail_dead_trials(self):
        """RUNNING trials whose worker is gone become FAIL, their parameters queued again. Under the lock."""
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            a = t.user_attrs
            if a.get("host") == HOST and a.get("worker"):
                dead = not _is_locked(a["worker"])
                why = f"its worker on {HOST} died"
            else:
                beat = a.get("heartbeat") or (t.datetime_start.timestamp() if t.datetime_start else 0)
                dead = time.time() - beat > GRACE_S
                why = f"its worker on {a.get('host', 'an unknown host')} sent no heartbeat for {GRACE_S} s"
            if dead:
                self.log(f"trial {t.number}: {why}; marked failed, its parameters queued to continue its run folder")
                self._queue_retry(t.number, t.params, a, why)

    # --------------------------------------------------------------------------- the loop
    def work(self):
        """Run trials until the study has --trials of them, or the budget ends. Returns "done" or "budget"."""
        deadline = time.time() + self.spec.budget_minutes * 60 if self.spec.budget_minutes else None
        self.worker = WorkerLock(self.dir / "workers" / f"{HOST}-{os.getpid()}.lock")
        try:
            while True:
                if deadline and time.time() >= deadline:
                    self.log(f"the time budget ({self.spec.budget_minutes:g} min) is spent: no new trial")
                    return "budget"
                with self.lock:
                    self.fail_dead_trials()
                    trials = self.study.get_trials(deepcopy=False)
                    waiting = any(t.state.name == "WAITING" for t in trials)
                    if not waiting and self.counted(trials) >= self.spec.trials:
                        return "done"
                    trial = self.study.ask()
                    trial.set_user_attr("host", HOST)
                    trial.set_user_attr("worker", str(self.worker.path))
                    trial.set_user_attr("heartbeat", time.time())
                if self.run_trial(trial, deadline) == "budget":
                    return "budget"
        finally:
            self.worker.release()

    def run_trial(self, trial, deadline):
        import optuna
        from optuna.trial import TrialState

        from c100.engine.trainer import run as train_run

        n = trial.number
        params = self.spec.space.suggest(trial)
        retry_of = trial.user_attrs.get("retry_of")
        run_dir = self.trial_dir(n)
        if retry_of is not None:
            old = self.trial_dir(retry_of)
            if old.exists() and not run_dir.exists():
                os.rename(old, run_dir)  # the dead trial's checkpoints continue under the new number
        resume = (run_dir / "config.json").exists()
        try:
            cfg = self.config_for(params)
        except ConfigError as e:
            trial.set_user_attr("outcome", f"refused config: {e}")
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {n}: failed, the trainer refuses this config: {e}")
            return None
        trial.set_user_attr("run_dir", os.path.relpath(run_dir, self.dir))
        trial.set_user_attr("epochs", cfg.epochs)
        if resume:  # the new trial takes the dead one's epochs as its own intermediate values
            for row in _metrics_rows(run_dir):
                if row.get("val_top1_err") is not None:
                    trial.report(row["val_top1_err"], row["epoch"])
        tag = " (the untuned recipe)" if trial.user_attrs.get("baseline") else ""
        cont = f", continuing trial {retry_of}'s run from its checkpoint" if resume else ""
        self.log(f"trial {n}{tag}: {_fmt_params(params)}{cont} -> {run_dir}")

        def on_epoch(row):
            if row.get("val_top1_err") is not None:
                trial.report(row["val_top1_err"], row["epoch"])
                if self.spec.prune and row["epoch"] < cfg.epochs and trial.should_prune():
                    raise optuna.TrialPruned(f"validation error {row['val_top1_err']:.2f}% at epoch {row['epoch']} "
                                             f"is above the median of the completed trials at that point")
            if deadline and time.time() >= deadline and row["epoch"] < cfg.epochs:
                raise BudgetReached()

        beat = Heartbeat(trial)
        beat.start()
        try:
            summary = train_run(None if resume else cfg, run_dir, self.spec.data_root, self.spec.verify,
                                resume=resume, progress=False, log=lambda *a, **k: self.log(f"  [{n}]", *a),
                                on_epoch=on_epoch, test=False)
        except optuna.TrialPruned as e:
            beat.stop()
            trial.set_user_attr("outcome", f"pruned: {in_study(e, self.dir)}")
            self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f"trial {n}: pruned ({e})")
            return None
        except NumericalError as e:
            beat.stop()
            trial.set_user_attr("outcome", f"diverged: {in_study(e, self.dir)}")
            self.study.tell(trial, state=TrialState.PRUNED)  # a result (this config diverges), not a lost trial
            self.log(f"trial {n}: diverged, counted as pruned ({e})")
            return None
        except (ConfigError, ResourceError) as e:
            beat.stop()
            trial.set_user_attr("outcome", f"failed: {in_study(e, self.dir)}")
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {n}: failed ({e})")
            return None
        except BudgetReached:
            beat.stop()
            why = "stopped at the study's time budget"
            with self.lock:
                self._queue_retry(n, trial.params, trial.user_attrs, why)
            self.log(f"trial {n}: {why}, after its checkpoint; a rerun continues it")
            return "budget"
        except BaseException as e:
            beat.stop()
            why = f"interrupted ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            with self.lock:
                self._queue_retry(n, trial.params, trial.user_attrs, why)
            self.log(f"trial {n}: {why}; marked failed, a rerun continues it from its checkpoint")
            raise
        finally:
            beat.stop()
        value = float(summary["val"]["top1_err"])
        trial.set_user_attr("outcome", "complete")
        trial.set_user_attr("train_time_s", summary.get("train_time_s"))
        self.study.tell(trial, value)
        best = self.study.best_value
        self.log(f"trial {n}: validation top-1 error {value:.2f}%"
                 + (" (best so far)" if value <= best else f" (best {best:.2f}%)"))
        return None

    # --------------------------------------------------------------------------- the result
    def finalize(self):
        """After the search: best.json, the best trial's test error (evaluated once for it), result.json.

        Returns the result dict, or None when there is nothing (yet) to conclude here."""
        from optuna.trial import TrialState

        with self.lock:
            self.fail_dead_trials()
            trials = self.study.get_trials(deepcopy=False)
            if any(t.state == TrialState.RUNNING for t in trials):
                self.log("other workers are still running trials: the last one to finish writes the result")
                return None
            atomic_write_json(self.dir / "trials.json", {"written": _now(), "trials": [trial_record(t) for t in trials]})
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            if not complete:
                self.log("no trial has completed yet: no best configuration")
                return None
            best = min(complete, key=lambda t: (t.value, t.number))
            run_dir = self.dir / best.user_attrs["run_dir"]
            if not last_checkpoint(run_dir).exists():
                self.log(f"the best trial {best.number} ran on {best.user_attrs.get('host')}: its run folder "
                         f"{run_dir} is not on this machine; run `c100 tune` there (or on a shared filesystem) "
                         f"to evaluate its test error")
                return None
            return self._conclude(best, run_dir, trials)

    def _conclude(self, best, run_dir, trials):
        from optuna.trial import TrialState

        from c100.atomic import atomic_write_text

        config = json.loads((run_dir / "config.json").read_text())
        config.pop("c100_version", None)
        atomic_write_text(self.dir / "best.json", json.dumps(config, indent=1) + "\n")
        old = _read_json(self.dir / "result.json") or {}
        evaluations = list(old.get("test_evaluations", []))
        if old.get("best_trial") == best.number and old.get("test"):
            test = old["test"]
        else:
            self.log(f"best trial {best.number}: evaluating its test error (the only test evaluation of this search)")
            test = evaluate_test(run_dir, self.spec.data_root, self.spec.verify)
            evaluations.append({"trial": best.number, "at": _now()})
        base = next((t for t in trials if t.user_attrs.get("baseline") and t.state == TrialState.COMPLETE), None)
        states = {}
        for t in trials:
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        result = {
            "study": self.name, "model": self.spec.model, "recipe": self.spec.recipe, "objective": OBJECTIVE,
            "best_trial": best.number, "best_params": best.params, "val_top1_err": best.value,
            "test": test, "test_evaluations": evaluations, "config_file": "best.json",
            "run_dir": os.path.relpath(run_dir, self.dir),
            "baseline_trial": base.number if base else None,
            "baseline_params": base.params if base else None,
            "baseline_val_top1_err": base.value if base else None,
            "trials": states, "written": _now(), "c100_version": __version__,
        }
        atomic_write_json(self.dir / "result.json", result)
        line = f"best: trial {best.number}, validation top-1 error {best.value:.2f}%"
        if base is not None:
            line += f" (untuned {self.spec.recipe}: {base.value:.2f}%)"
        self.log(f"{line}; test top-1 error {test['top1_err']:.2f}% (evaluated once, for this trial only)")
        self.log(f"reproduce it: c100 train --config {self.dir / 'best.json'}")
        return result


def evaluate_test(run_dir, data_root=None, verify="full"):
    """Test metrics of a finished trial's final weights, as the trainer's final test would compute them
    (same model, memory format, normalisation, TTA and batch size); written into its summary.json
    and predictions.npz, so the best trial becomes a complete run folder."""
    import torch

    from c100.checkpoint import load_checkpoint
    from c100.data.cifar import ensure_data, load_split
    from c100.data.loader import DeviceDataset, Normalizer
    from c100.distributed import DistEnv
    from c100.engine.device import autocast_for, resolve_device
    from c100.engine.evaluate import evaluate
    from c100.restore import model_from_checkpoint

    rd = RunDir(run_dir)
    ckpt = load_checkpoint(rd.last)
    model, cfg, _ = model_from_checkpoint(ckpt, rd.last)  # the EMA weights when the trial kept them
    device = resolve_device(cfg, DistEnv())
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    split = load_split(ensure_data(data_root), "test", verify)
    data = DeviceDataset(split.images, split.fine, device)
    autocast, _ = autocast_for(cfg, device)
    metrics, logits = evaluate(model, data.images, data.labels, Normalizer.named(cfg.normalize, device, cfg.channels_last),
                               cfg.eval_batch_size, cfg.tta, autocast)
    test = {**metrics, "tta": cfg.tta}
    summary = _read_json(rd.path / "summary.json") or {}
    summary["test"] = test
    summary["test_evaluated_by"] = "c100 tune, once, after the search (trials never evaluate the test set)"
    rd.write_predictions(logits.cpu().numpy(), split.fine, split.coarse)
    rd.write_summary(summary)
    return test


def trial_record(t):
    """One trial as plain data: STUDY/trials.json holds these, and c100 report draws from them."""
    from optuna.distributions import distribution_to_json

    return {"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
            "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            "user_attrs": {k: v for k, v in t.user_attrs.items() if k not in ("heartbeat", "worker")},
            "distributions": {k: json.loads(distribution_to_json(d)) for k, d in t.distributions.items()},
            "start": t.datetime_start.isoformat() if t.datetime_start else None,
            "complete": t.datetime_complete.isoformat() if t.datetime_complete else None}


# ------------------------------------------------------------------------------- small helpers
class WorkerLock:
    """An flock held for the worker process's life; the kernel drops it when the process dies."""

    def __init__(self, path):
        import fcntl

        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w")
        fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._f.write(f"{HOST} {os.getpid()}\n")
        self._f.flush()

    def release(self):
        if self._f is not None:
            self._f.close()
            self._f = None
            self.path.unlink(missing_ok=True)


def _is_locked(path):
    import fcntl

    try:
        f = open(path, "r")
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


class Heartbeat:
    """Records time.time() in the trial's "heartbeat" user attr every HEARTBEAT_S seconds."""

    def __init__(self, trial):
        self.trial, self._stop = trial, threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def start(self):
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except Exception:  # a finished trial refuses updates; the next beat would too
                return

    def stop(self):
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


def _metrics_rows(run_dir):
    f = Path(run_dir) / "metrics.jsonl"
    if not f.exists():
        return []
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _fmt_params(params):
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_study(path):
    return (Path(path) / "study.json").is_file()


def finite(v):
    return isinstance(v, (int, float)) and math.isfinite(v)
