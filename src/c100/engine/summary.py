"""What a run reports: its log lines, and summary.json (docs/RUN_FORMAT.md) once it is finished."""
import platform
from datetime import datetime, timezone

import torch

from c100.cpu_alloc import allocator_state
from c100.engine.device import configure_cuda, device_name
from c100.models import get_entry
from c100.version import __version__


def epoch_line(row, epochs) -> str:
    val = (f" | val loss {row['val_loss']:.3f} top-1 err {row['val_top1_err']:.2f}% top-5 {row['val_top5_err']:.2f}%"
           if row.get("val_top1_err") is not None else "")
    return (f"epoch {row['epoch']:>3}/{epochs} | lr {row['lr']:.4g} | train loss {row['train_loss']:.3f} "
            f"err {row['train_top1_err']:.2f}%{val} | {row['epoch_time_s']:.1f}s, {row['images_per_s']:.0f} img/s")


def start_line(s, data, info, spe) -> str:
    cfg = s.cfg
    return (f"{cfg.model}: {info['params']:,} params, {info['gflops']:.3f} GFLOPs/img; recipe {cfg.recipe}; "
            f"{len(data.train)} train / {len(data.val) if data.val else 0} val images; "
            f"{cfg.epochs} epochs x {spe} steps of {cfg.batch_size}; {device_name(s.device)}, amp {s.amp}")


def build_summary(s, state, info, val, test) -> dict:
    """summary.json of a finished run: ``s`` the Session, ``state`` its TrainState, ``info`` the model's
    params and GFLOPs, ``val``/``test`` the final metrics (None where not evaluated)."""
    cfg = s.cfg
    images = sum(m["images_per_s"] * m["epoch_time_s"] for m in state.metrics)
    return {
        # the run folder's own name: run files hold no absolute path of the machine (they are moved, shared)
        "c100_version": __version__, "status": "finished", "run_dir": s.dir.path.resolve().name,
        "model": cfg.model, "family": get_entry(cfg.model).family,
        "recipe": cfg.recipe, "seed": cfg.seed, "epochs": state.epoch,
        "params": info["params"], "gflops": round(info["gflops"], 4), "val": val, "test": test,
        "best_val": state.best,
        "train_time_s": round(state.train_time_s, 3), "eval_time_s": round(state.eval_time_s, 3),
        "wall_time_s": round(state.wall_time(s.t_start), 3),  # all the run's processes when it was resumed
        "images_per_s": round(images / max(state.train_time_s, 1e-9), 1),
        "device": device_name(s.device), "world_size": s.env.world_size, "amp": s.amp,
        "cpu_allocator": allocator_state(), "cuda_settings": configure_cuda(s.device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": _tv_version(), "cuda": torch.version.cuda if s.device.type == "cuda" else None},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def hparams(cfg, val, test):
    """(hparams, final metrics) for TensorBoard's hparams view, as RunDir.close takes them."""
    hp = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in cfg.to_dict().items()}
    final = ({"hparam/test_top1_err": test["top1_err"], "hparam/test_top5_err": test["top5_err"]} if test
             else {"hparam/val_top1_err": val["top1_err"]} if val else {})
    return hp, final


def done_line(s, summary, val, test) -> str:
    v = f"val {val['top1_err']:.2f}% / {val['top5_err']:.2f}%, " if val else ""
    t = (f"test top-1 err {test['top1_err']:.2f}%, top-5 err {test['top5_err']:.2f}% " if test
         else "test set not evaluated ")
    return (f"done: {v}{t}(tta {s.cfg.tta}); train {summary['train_time_s']:.1f}s, "
            f"{summary['images_per_s']:.0f} img/s -> {s.dir.path}")


def _tv_version():
    try:
        import torchvision

        return torchvision.__version__
    except ImportError:
        return None
