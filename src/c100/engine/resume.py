"""Where a run starts: the config and checkpoint of a ``--resume``, or a fresh run's checked config."""
from c100.checkpoint import load_checkpoint
from c100.distributed import DistEnv, env_rank
from c100.engine.config import TrainConfig
from c100.engine.device import device_kind, resolve_amp, resolve_cpu_kernels
from c100.errors import CheckpointError, ConfigError, RunFolderError
from c100.models import get_entry
from c100.run_folder import EXECUTION_FIELDS, RunDir


def _no_run(rd: RunDir, hint=""):
    return RunFolderError(f"--resume: {rd.path} holds no run to resume (no checkpoints/last.pt and no "
                          f"config.json){hint}; start one with `c100 train MODEL --out {rd.path}`")


def resume_checkpoint(rd: RunDir):
    """The run's last checkpoint; None when it stopped before writing one (config.json only)."""
    if not rd.last.exists():
        if rd.existing_config() is None:
            hint = (f" (rank {env_rank()}: under multi-node torchrun the run folder must be at the same path "
                    f"on every node, e.g. on a shared filesystem)" if env_rank() else "")
            raise _no_run(rd, hint)
        return None
    ckpt = load_checkpoint(rd.last)
    missing = [k for k in ("optimizer", "rng", "epoch") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {rd.last} lacks {', '.join(missing)}: it cannot continue a run")
    return ckpt


def resume_config(run_dir, ckpt=None) -> TrainConfig:
    """The config of the run in ``run_dir``: its last checkpoint's, else (none yet) its config.json's."""
    rd = RunDir(run_dir)
    if ckpt is None and rd.last.exists():
        ckpt = load_checkpoint(rd.last)
    source = rd.last
    if ckpt is not None:
        saved = ckpt["config"]
    else:
        saved, source = rd.existing_config(), rd.path / "config.json"
        if saved is None:
            raise _no_run(rd)
        saved = {k: v for k, v in saved.items() if k != "c100_version"}
    try:
        return TrainConfig.from_dict(saved)
    except ConfigError as e:
        raise RunFolderError(f"{source} does not hold a valid config ({e})") from e


def check_resume_config(saved: TrainConfig, given: TrainConfig | None) -> TrainConfig:
    """``given`` when it differs from ``saved`` only in fields a resume may change (EXECUTION_FIELDS)."""
    if given is None:
        return saved
    a, b = saved.to_dict(), given.to_dict()
    diff = sorted(k for k in a if a[k] != b[k] and k not in EXECUTION_FIELDS)
    if diff:
        raise RunFolderError(f"--resume: the checkpoint's config differs in {', '.join(diff)}; "
                             f"resume without overriding those")
    return given


def resume_point(rd: RunDir, given: TrainConfig | None, log):
    """(config, checkpoint or None, summary or None) of a ``--resume``: a summary when the run is finished."""
    ckpt = resume_checkpoint(rd)
    cfg = check_resume_config(resume_config(rd.path, ckpt), given)
    done = rd.finished_summary()
    main = DistEnv().is_main
    if done is not None:
        if main:
            log(f"{rd.path} is already finished (summary.json); nothing to resume")
    elif ckpt is None and main:
        log(f"{rd.path} has no checkpoint yet (it stopped before its first epoch ended): "
            f"starting it afresh from its config.json")
    return cfg, ckpt, done


def fresh_config(rd: RunDir, cfg: TrainConfig | None) -> TrainConfig:
    """A new run's config, checked against ``rd`` (which must not hold another run)."""
    if cfg is None:
        raise ConfigError("no config given")
    get_entry(cfg.model)  # an unknown model fails here
    # config.json records the precision and CPU kernels actually used ("auto" resolved for this machine)
    device = device_kind(cfg.device, DistEnv().local_rank)
    cfg = cfg.replace(amp=resolve_amp(cfg.amp, device), cpu_kernels=resolve_cpu_kernels(cfg.cpu_kernels, device))
    rd.check_fresh_start(cfg.to_dict())
    return cfg
