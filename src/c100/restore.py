"""Rebuild a trained model from saved weights: the one place a model is created from a state_dict.

A checkpoint and a weights file both hold a model name, a state_dict and (usually) the TrainConfig
dict of the run. ``build_model`` creates the model with the config's builder options (ShakeDrop's
rate, for one, scales the output at evaluation) and NUM_CLASSES outputs, then loads the weights;
a file that does not fit is a CheckpointError naming it. c100.inference.load (eval, predict, export)
goes through here, and so can a resumed training run.
"""
from c100.data.cifar import NUM_CLASSES
from c100.errors import C100Error, CheckpointError


def _config(config, where):
    """A TrainConfig from a TrainConfig or its dict; CheckpointError when the file's config is not valid here."""
    from c100.engine.config import TrainConfig

    if isinstance(config, TrainConfig):
        return config
    try:
        return TrainConfig.from_dict(config)
    except C100Error as e:
        raise CheckpointError(f"{where}: its config is not valid here ({e})") from e


def build_model(name, state_dict, where, config=None):
    """The model ``name`` with ``state_dict`` loaded; ``config`` (a TrainConfig or its dict) supplies
    builder options such as ShakeDrop's rate, which change the model's output at evaluation."""
    from c100.engine.config import model_kwargs
    from c100.models import create_model

    kwargs = model_kwargs(_config(config, where)) if config else {}
    model = create_model(name, num_classes=NUM_CLASSES, **kwargs)
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{where}: weights do not fit model {name!r} ({str(e).splitlines()[0]})") from e
    return model


def model_from_checkpoint(ckpt: dict, where):
    """(model, TrainConfig, "ema" | "model") from a loaded checkpoint dict (c100.checkpoint.load_checkpoint):
    its EMA weights when it has them, else the trained ones."""
    cfg = _config(ckpt["config"], where)
    use_ema = bool(ckpt.get("ema"))
    model = build_model(cfg.model, ckpt["ema"] if use_ema else ckpt["model"], where, cfg)
    return model, cfg, "ema" if use_ema else "model"
