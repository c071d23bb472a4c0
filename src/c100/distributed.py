"""The one module that reads torchrun's environment. World size 1 takes the same code path.

    torchrun --nproc-per-node 4 -m c100 train resnet18 --recipe fast

See docs/DISTRIBUTED.md. Every collective here has a deadline: the process group is created with
``timeout`` (``$C100_DIST_TIMEOUT`` seconds, default 600), so a rank whose peer died or hangs gets
an error instead of waiting forever, and ``DistributedError`` turns that into a clear message.

Test hook: ``C100_FAULT_AT=RANK:STEP[:kill|exit|raise|term]`` makes rank RANK fail just before
global optimizer step STEP (0-based, counted over the whole run): ``kill`` (default) SIGKILLs the
process as a crash or the OOM killer would, ``exit`` leaves with status 3, ``raise`` raises a
RuntimeError, ``term`` sends that rank alone a SIGTERM (as a pre-empting scheduler might).
"""
import os
import signal
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from c100.errors import C100Error, ConfigError

DEFAULT_TIMEOUT_S = 600


class DistributedError(C100Error):
    """A collective failed or timed out: another rank died, hung or lost its network."""

    exit_code = 12


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str = ""

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world_size > 1


def env_rank() -> int:
    """This process's rank from torchrun's environment, before (or without) a process group."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def timeout_s() -> float:
    text = os.environ.get("C100_DIST_TIMEOUT", "")
    try:
        t = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ConfigError(f"C100_DIST_TIMEOUT must be a number of seconds, got {text!r}") from None
    if not t > 0:
        raise ConfigError(f"C100_DIST_TIMEOUT must be positive, got {text!r}")
    return t


def init(device_kind: str) -> DistEnv:
    """Join the process group when launched by torchrun; otherwise a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as e:
        raise ConfigError(f"WORLD_SIZE={world} but RANK/LOCAL_RANK are missing or bad ({e}); "
                          f"launch with torchrun") from e
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        n = torch.cuda.device_count()
        if local_rank >= n:
            raise ConfigError(f"LOCAL_RANK {local_rank} but only {n} CUDA device(s) are visible; "
                              f"--nproc-per-node must not exceed the GPUs of a node")
        torch.cuda.set_device(local_rank)
    if backend == "nccl":
        nccl_error_env()
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s()))
        except (dist.DistError, RuntimeError, ValueError) as e:
            raise DistributedError(f"rank {rank} of {world} could not join the process group "
                                   f"({_first_line(e)}); check MASTER_ADDR/--rdzv-endpoint and that every "
                                   f"node was started") from e
    return DistEnv(rank, local_rank, world, dist.get_backend())


# TORCH_NCCL_BLOCKING_WAIT=1: a collective that passes the process group's timeout raises a
# DistBackendError (a dist.DistError) in the thread that waits for it, which c100 turns into its
# DistributedError and message. Without it, NCCL's watchdog thread finds the timeout and aborts the
# whole process (SIGABRT, no Python exception). torch 2.14 reads this name (NCCL_BLOCKING_WAIT is its
# older alias) and creates no watchdog thread when it is on, so TORCH_NCCL_ASYNC_ERROR_HANDLING has
# no effect then. setdefault: a value the user exported wins.
NCCL_ERROR_ENV = {"TORCH_NCCL_BLOCKING_WAIT": "1"}


def nccl_error_env():
    """Set NCCL_ERROR_ENV's defaults; called before the NCCL process group is created, which reads them."""
    for k, v in NCCL_ERROR_ENV.items():
        os.environ.setdefault(k, v)


def all_reduce_sum(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def agree_max(value: int, env: DistEnv, device) -> int:
    """The largest of every rank's ``value``: how ranks agree on a flag (stop, NaN) at the same step."""
    if not env.enabled:
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_gather_cat(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Concatenate each rank's tensor along dim 0, in rank order (shapes may differ in dim 0)."""
    if not env.enabled:
        return t
    sizes = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(env.world_size)]
    dist.all_gather(sizes, torch.tensor([t.shape[0]], device=t.device))
    sizes = [int(s) for s in sizes]
    padded = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    out = [torch.empty_like(padded) for _ in range(env.world_size)]
    dist.all_gather(out, padded)
    return torch.cat([o[:s] for o, s in zip(out, sizes)])


def all_gather_object(obj, env: DistEnv) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not env.enabled:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, env: DistEnv):
    if not env.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(model: torch.nn.Module, env: DistEnv):
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    Without SyncBatchNorm each rank's running statistics follow its own slice of the batch. DDP
    copies rank 0's into every rank at the start of each forward; doing the same before evaluating
    and saving makes every rank evaluate exactly the model that rank 0 saves.
    """
    if not env.enabled:
        return
    for b in model.buffers():
        dist.broadcast(b.data, src=0)


def barrier(env: DistEnv):
    if env.enabled:
        if env.backend == "nccl":
            dist.barrier(device_ids=[env.local_rank])
        else:
            dist.barrier()


def cleanup(env: DistEnv, ok: bool = True):
    """Leave the process group. ``ok``: every rank got here the same way, so wait for all of them
    first (rank 0 may still be writing); otherwise abort without talking to peers that may be gone."""
    if not (env.enabled and dist.is_initialized()):
        return
    if ok:
        barrier(env)
        dist.destroy_process_group()
        return
    abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
    try:
        if abort is not None and env.backend == "nccl":
            abort()
        else:
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - leaving after a failure; the original error is what matters
        pass


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s own random stream (dropout, stochastic depth); rank 0 keeps the
    single-process stream, so a world of one is unchanged."""
    return (seed * 1_000_003 + rank * 104_729) % (2**63 - 1)


def is_comm_error(e: BaseException) -> bool:
    """Whether ``e`` came from a collective: a dead, hung or unreachable peer."""
    if isinstance(e, dist.DistError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(k in text for k in (
        "Gloo", "gloo", "NCCL", "Connection closed by peer", "Connection reset by peer", "Timed out",
        "timed out", "Broken pipe", "ProcessGroup", "Socket Timeout", "c10d"))


def _first_line(e, limit=240) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {line if len(line) <= limit else line[:limit] + '...'}"


def comm_error_message(e: BaseException, env: DistEnv, checkpoint=None) -> str:
    ckpt = (f"the last checkpoint {checkpoint} is kept; continue with `torchrun ... -m c100 train --resume "
            f"{checkpoint.parent.parent}` (any world size dividing the global batch)"
            if checkpoint is not None and checkpoint.exists() else "no checkpoint was written yet")
    return (f"rank {env.rank} of {env.world_size}: a collective with the other ranks failed (or passed its "
            f"{timeout_s():g}s timeout, $C100_DIST_TIMEOUT): another rank died, hung or lost its connection "
            f"({_first_line(e)}); look for that rank's own error or torchrun's 'Root Cause'. {ckpt}")


_FAULT = None


def fault_point(env: DistEnv, global_step: int):
    """The ``C100_FAULT_AT`` test hook (see the module docstring); does nothing when it is unset."""
    global _FAULT
    if _FAULT is None:
        text = os.environ.get("C100_FAULT_AT", "")
        _FAULT = ()
        if text:
            parts = text.split(":")
            try:
                _FAULT = (int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else "kill")
            except (IndexError, ValueError):
                raise ConfigError(f"C100_FAULT_AT must be RANK:STEP[:kill|exit|raise|term], got {text!r}") from None
            if _FAULT[2] not in ("kill", "exit", "raise", "term"):
                raise ConfigError(f"C100_FAULT_AT must be RANK:STEP[:kill|exit|raise|term], got {text!r}")
    if not _FAULT or _FAULT[0] != env.rank or _FAULT[1] != global_step:
        return
    import sys

    print(f"C100_FAULT_AT: rank {env.rank} fails ({_FAULT[2]}) before step {global_step}", file=sys.stderr,
          flush=True)
    if _FAULT[2] == "raise":
        raise RuntimeError(f"injected fault on rank {env.rank} at step {global_step}")
    if _FAULT[2] == "exit":
        os._exit(3)
    if _FAULT[2] == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        return
    os.kill(os.getpid(), signal.SIGKILL)
