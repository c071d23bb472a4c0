"""Where a run's numbers come from, in words a table can carry.

Three kinds (docs/RUN_FORMAT.md, "provenance"):

* ``trained here``: ``c100 train`` trained the recipe in this run folder (the device column says where);
* ``budget-capped``: ``--budget-minutes`` cut the recipe to fewer epochs or a subset of the training
  images (or ``train_subset`` was set): a real run, but not the recipe's result, so the report never
  compares it with the tutorial's figures;
* ``shipped weights``: ``c100 eval WEIGHTS --run-out DIR`` evaluated a weights file (e.g.
  weights/resnet18.safetensors) on the test set here; its training record (command, machine, time)
  comes from the file's metadata.
"""
from c100.errors import C100Error

TRAINED, BUDGET, SUBSET, SHIPPED = "trained here", "budget-capped", "subset", "shipped weights"
COMPARABLE = (TRAINED, SHIPPED)  # the kinds whose errors are the recipe's result
# config fields that say how a run was executed, not what it trained: left out of its command
RUN_ONLY = {"model", "recipe", "device", "threads", "eval_batch_size", "eval_every", "notes", "data_root",
            "c100_version"}
# the weights-file metadata keys of the training record (strings; written by c100 export from a run folder)
TRAINING_KEYS = {"command": "train_command", "machine": "train_machine", "train_time_s": "train_time_s",
                 "wall_time_s": "train_wall_time_s", "images_per_s": "train_images_per_s",
                 "finished_at": "train_finished_at"}


def _recipe_config(config):
    from c100.engine.recipes import get_recipe

    try:
        return get_recipe(config["recipe"]).config_for(config["model"], seed=config.get("seed", 0)).to_dict()
    except (C100Error, KeyError, TypeError):
        return None


def cli_value(v):
    """A config value as the command line writes it (the inverse of c100.commands._common's parsers;
    c100 bench writes its train commands with it)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return ",".join(str(x) for x in v)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def train_command(config) -> str:
    """The `c100 train` command that trains ``config`` (a TrainConfig dict): the recipe plus every
    field that differs from it, e.g. ``c100 train resnet18 --recipe cpu --amp bf16``."""
    base = _recipe_config(config) or {}
    argv = ["c100", "train", str(config.get("model")), "--recipe", str(config.get("recipe"))]
    for key, value in config.items():
        if key in RUN_ONLY or key not in base:
            continue
        mine = tuple(value) if isinstance(value, list) else value
        theirs = tuple(base[key]) if isinstance(base[key], (list, tuple)) else base[key]
        if mine != theirs:
            argv += ["--" + key.replace("_", "-"), cli_value(mine)]
    return " ".join(argv)


def training_record(summary, config) -> dict:
    """The training record a weights file carries, from its run's summary.json and config."""
    rec = {"command": train_command(config), "machine": summary.get("device"),
           "train_time_s": summary.get("train_time_s"), "wall_time_s": summary.get("wall_time_s"),
           "images_per_s": summary.get("images_per_s"), "finished_at": summary.get("finished_at")}
    return {k: v for k, v in rec.items() if v is not None}


def duration(sec) -> str:
    sec = float(sec)
    return f"{sec:.1f} s" if sec < 120 else f"{sec / 60:.1f} min" if sec < 7200 else f"{sec / 3600:.2f} h"


def shipped_label(p) -> str:
    """``p``: summary.json's ``provenance`` of a shipped-weights run."""
    return (f"{SHIPPED}, trained by `{p.get('command', 'an unrecorded command')}` on "
            f"{p.get('machine', 'an unrecorded machine')} in "
            f"{duration(p['train_time_s']) if p.get('train_time_s') is not None else 'an unrecorded time'}; "
            f"evaluated here")


def _budget_label(config, summary):
    base = _recipe_config(config) or {}
    epochs, full = config.get("epochs", summary.get("epochs")), base.get("epochs")
    parts = [f"{epochs} of {full} epochs" if full else f"{epochs} epoch(s)"]
    if config.get("train_subset"):
        parts.append(f"on {config['train_subset']:,} training images")
    why = f" (--budget-minutes {config['budget_minutes']:g})" if config.get("budget_minutes") else ""
    return ", ".join(parts) + why


def provenance(summary, config) -> tuple[str, str]:
    """(kind, label) of a run from its summary.json and config.json (``{}`` when missing)."""
    p = summary.get("provenance")
    if isinstance(p, dict) and p.get("kind") == "shipped":
        return SHIPPED, shipped_label(p)
    config = config or {}
    if config.get("budget_minutes"):
        base = _recipe_config(config)
        cut = config.get("train_subset") or (base is not None and config.get("epochs", 0) < base["epochs"])
        if cut:
            return BUDGET, f"{BUDGET}: {_budget_label(config, summary)}"
    if config.get("train_subset"):
        return SUBSET, f"{SUBSET}: trained on {config['train_subset']:,} images, not the whole training split"
    return TRAINED, TRAINED
