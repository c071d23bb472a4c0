"""c100 tune: search a model's recipe on the validation split with Optuna (TPE, median pruning).

    c100 tune simplecnn --recipe fast --trials 20 --budget-minutes 60
    c100 tune simplecnn --recipe fast --show-space > space.yaml     # the default space, to edit
    c100 tune simplecnn --recipe fast --trials 20 --space space.yaml --workers 2
    c100 tune resnet18 --recipe fast --trials 50 --storage postgresql://user:pw@db/c100 --study studies/r18
    c100 train --config studies/simplecnn-fast/best.json            # the best trial, trained again
    c100 report studies/simplecnn-fast                               # history, importances, best vs untuned

Trial 0 is the untuned recipe. Every trial is a c100 run folder in STUDY/trials/; trials never see
the test set, which is evaluated once, for the best trial, after the search. Rerunning the same
command continues the study (--trials counts all trials so far; --budget-minutes is this run's).
A killed or stopped trial is marked failed and continued from its checkpoint by a new trial with
the same parameters. Options after "config overrides" fix a field for every trial. docs/TUNING.md.
"""
import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from c100.commands._common import OVERRIDABLE, add_config_overrides, add_data_args, finite_float, overrides_from

NOT_FIXABLE = ("budget_minutes",)  # --budget-minutes is the study's, not each run's


def add_parser(sub):
    p = sub.add_parser("tune", help="hyperparameter search on the validation split", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model name (`c100 models`), or timm/<name>")
    p.add_argument("--recipe", default="fast", help="recipe to tune (`c100 recipes`); default fast")
    p.add_argument("--trials", type=int, help="trials in the study, all runs of it together (trial 0 = untuned)")
    p.add_argument("--budget-minutes", dest="study_budget_minutes", type=finite_float, default=0.0, metavar="M",
                   help="wall-clock limit of this invocation: no trial starts after it, and running trials stop "
                        "at their next epoch end (continued by a rerun); 0 = none")
    p.add_argument("--space", metavar="FILE", help="search space, YAML or JSON (default: the recipe's; --show-space)")
    p.add_argument("--show-space", action="store_true", help="print the search space as YAML and exit")
    p.add_argument("--study", metavar="DIR", help="study folder (default studies/<model>-<recipe>)")
    p.add_argument("--storage", metavar="URL", help="postgresql://, mysql+pymysql:// or sqlite:/// database shared "
                   "by workers on several machines (default: a journal file in the study folder)")
    p.add_argument("--study-name", help="the study's name in the storage (default c100-<model>-<recipe>)")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="trials at once on this machine, each with cores/K threads (or one GPU each)")
    p.add_argument("--no-prune", action="store_true", help="run every trial to its end")
    p.add_argument("--sampler-seed", type=int, help="seed of the TPE sampler (default: random)")
    # set by --workers K for its child processes
    p.add_argument("--trial-threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--no-finalize", action="store_true", help=argparse.SUPPRESS)
    add_data_args(p)
    add_config_overrides(p, exclude=NOT_FIXABLE)
    return p


def default_study(model, recipe):
    return Path("studies") / f"{model.replace('/', '_')}-{recipe}"


def resolve(args):
    """(Spec, untuned config) with every name, number and the space checked, before data or storage."""
    from c100.engine.recipes import get_recipe
    from c100.errors import ConfigError
    from c100.models import get_entry
    from c100.tune.space import check_space, default_space, load_space_file
    from c100.tune.study import Spec, untuned_config

    get_recipe(args.recipe)
    get_entry(args.model)  # unknown names (timm/<name> too) fail here, with close matches
    if not args.show_space and args.trials is None:
        raise ConfigError("give --trials N: how many trials the study should hold")
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {args.trials}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.study_budget_minutes < 0:
        raise ConfigError(f"--budget-minutes must be >= 0, got {args.study_budget_minutes:g}")
    fixed = overrides_from(args)
    base, fixed, notes = untuned_config(args.model, args.recipe, fixed)
    space = load_space_file(args.space) if args.space else default_space(base, fixed)
    check_space(space, base, fixed)
    study_dir = Path(args.study) if args.study else default_study(args.model, args.recipe)
    spec = Spec(model=args.model, recipe=args.recipe, fixed=fixed, space=space, trials=args.trials or 0,
                study_dir=study_dir, storage_url=args.storage, study_name=args.study_name,
                budget_minutes=args.study_budget_minutes, data_root=args.data_root, verify=args.verify,
                threads=args.trial_threads, sampler_seed=args.sampler_seed, prune=not args.no_prune, notes=notes)
    return spec, base


def run(args):
    from c100.tune.space import space_yaml

    spec, _ = resolve(args)
    if args.show_space:
        what = f"search space of {args.space}" if args.space else "default search space (edit, then --space FILE)"
        print(f"# c100 tune {spec.model} --recipe {spec.recipe}: {what}")
        print(space_yaml(spec.space), end="")
        return 0
    from c100.data.cifar import ensure_data
    from c100.engine.trainer import TrainingInterrupted
    from c100.tune.study import Study

    spec.data_root = str(ensure_data(args.data_root, download=args.download))
    for note in spec.notes:
        print(f"note: {note}", flush=True)
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    study = Study(spec, log)  # checks the folder and the storage, creates the study (and trial 0) once
    if args.workers > 1:
        rc = run_workers(args, spec)
        if rc:
            return rc
    else:
        log(f"study {study.name} ({study.storage_desc}) in {spec.study_dir}: {spec.trials} trials"
            + (f", {spec.budget_minutes:g} min budget" if spec.budget_minutes else ""))
        try:
            study.work()
        except TrainingInterrupted as e:
            print(f"stopped by {signal.Signals(e.signum).name}; rerun the same command to continue the study",
                  file=sys.stderr)
            return 128 + e.signum
    if args.no_finalize:
        return 0
    study.finalize()
    return 0


def worker_argv(args, spec, index):
    """The command line of worker ``index`` of --workers K: this command with --workers 1."""
    argv = [sys.executable, "-m", "c100", "tune", spec.model, "--recipe", spec.recipe, "--trials", str(spec.trials),
            "--study", str(Path(spec.study_dir).resolve()), "--data-root", spec.data_root, "--verify", spec.verify,
            "--no-finalize", "--workers", "1"]
    for flag, value in (("--space", args.space and str(Path(args.space).resolve())), ("--storage", spec.storage_url),
                        ("--study-name", spec.study_name), ("--trial-threads", spec.threads or None),
                        ("--budget-minutes", spec.budget_minutes or None),
                        ("--sampler-seed", None if spec.sampler_seed is None else spec.sampler_seed + index)):
        if value is not None:
            argv += [flag, str(value)]
    if not spec.prune:
        argv.append("--no-prune")
    for name, value in overrides_from(args).items():
        if name in OVERRIDABLE:
            text = (",".join(map(str, value)) if isinstance(value, tuple) else
                    str(value).lower() if isinstance(value, bool) else str(value))
            argv += ["--" + name.replace("_", "-"), text]
    return argv


def run_workers(args, spec):
    """K worker processes on this machine, each with cores/K torch threads or one GPU; returns the
    first non-zero exit status, after all have ended. Ctrl-C / SIGTERM reach every worker."""
    import torch

    k = args.workers
    cores = len(os.sched_getaffinity(0))
    gpus = torch.cuda.device_count() if spec.fixed.get("device") != "cpu" else 0
    spec.threads = spec.threads or max(1, cores // k)
    if not gpus and k > cores:
        print(f"warning: {k} workers on {cores} cores: each gets 1 thread and they share the cores", file=sys.stderr)
    procs = []
    for i in range(k):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        # a session of its own: a terminal's Ctrl-C reaches a worker once, through forward(), not twice
        procs.append(subprocess.Popen(worker_argv(args, spec, i), env=env, start_new_session=True))
    print(f"{k} workers ({'one GPU each' if gpus else f'{spec.threads} thread(s) each'}): pids "
          f"{', '.join(str(p.pid) for p in procs)}", flush=True)

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return next((c for c in codes if c), 0)
