"""TrainConfig: every choice of a training run in one frozen dataclass, units in the comments.

A config is resolved from a recipe (c100.engine.recipes), the recipe's per-model overrides and the
command line's overrides, validated, written to the run folder and saved in every checkpoint.
"""
import dataclasses
import math
from dataclasses import dataclass, field, fields

from c100.errors import ConfigError

SCHEDULES = ("multistep", "cosine", "linear", "constant")
NORMALIZE = ("seed", "cifar100")
AMP = ("auto", "bf16", "fp16", "none")
TTA = ("none", "flip", "flip-translate")
DEVICES = ("auto", "cpu", "cuda")
POLICIES = ("none", "autoaugment", "randaugment", "trivialaugment")
# Builder keywords that take `drop_path`, in order of preference: ShakeDrop's p_L (pyramidnet);
# stochastic depth under the names models use for it. timm/<name> models get drop_path_rate.
DROP_PATH_KWARGS = ("shakedrop", "drop_path_rate", "drop_path", "stochastic_depth")
MAX_THREADS = 4096


@dataclass(frozen=True)
class TrainConfig:
    model: str = "resnet18"
    recipe: str = "custom"
    seed: int = 0                      # model init, data order and augmentation
    # --- data
    val_size: int = 5000               # training images held out (stratified) for every choice
    split_seed: int = 0                # fixes the validation split, independent of `seed`
    normalize: str = "cifar100"        # "seed": mean/std 0.5; "cifar100": the data set's mean/std
    crop_padding: int = 4              # pixels of zero padding before the random 32x32 crop; 0 = off
    flip: bool = True                  # random horizontal flip
    # strong augmentation after crop/flip, in this order (c100.data.policies, c100.data.mixing); every
    # draw comes from a per-(seed, epoch) stream, so runs stay exact to resume and world-size free
    augment_policy: str = "none"       # none | autoaugment (CIFAR-10 policy) | randaugment | trivialaugment
    randaugment_n: int = 2             # RandAugment: ops per image
    randaugment_m: int = 9             # RandAugment: magnitude bin, 0..30
    cutout: int = 0                    # side in pixels of a square erased at a uniform centre; 0 = off
    random_erasing: float = 0.0        # probability of erasing one box of 2-33% of the area; 0 = off
    mixup_alpha: float = 0.0           # Mixup weight ~ Beta(a, a); 0 = off
    cutmix_alpha: float = 0.0          # CutMix area ~ Beta(a, a); 0 = off; both on: 50/50 per image
    mix_prob: float = 1.0              # probability that an image is mixed at all (when a mix is on)
    # --- optimisation
    epochs: int = 30
    batch_size: int = 128              # global: images per optimizer step, all ranks together
    lr: float = 0.1                    # peak learning rate for `batch_size`
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4         # L2 coefficient (coupled, as torch.optim.SGD)
    decay_norm_and_bias: bool = True   # False: no weight decay on norm weights and biases
    schedule: str = "multistep"        # multistep | cosine | linear (to 0) | constant
    milestones: tuple = (60, 120, 160) # epochs at which multistep multiplies the lr by gamma
    gamma: float = 0.2
    warmup_epochs: float = 0.0         # linear warm-up from 0 over this many epochs
    label_smoothing: float = 0.0
    grad_clip: float = 0.0             # max global gradient norm; 0 = off
    sam_rho: float = 0.0               # SAM radius (L2 norm in weight space); 0 = plain step, >0 = 2 passes
    ema_decay: float = 0.0             # EMA of weights: decay per optimizer step; 0 = off. Validation, test
                                       # and `c100 eval` then use the EMA weights
    ema_warmup: bool = False           # EMA decay min(ema_decay, (1 + t) / (10 + t)) at optimizer step t
    drop_path: float = 0.0             # stochastic depth / ShakeDrop rate at the last block (0 = the model's
                                       # default); only models whose builder takes one (see model_kwargs)
    dropout: float = 0.0               # dropout rate, for models whose builder takes `dropout` (0 = default)
    # --- hardware
    device: str = "auto"               # auto | cpu | cuda
    amp: str = "auto"                  # auto = bf16 autocast on CUDA and on CPUs with bf16 units, else
                                       # none (fp32); config.json records the resolved value
    channels_last: bool = True         # NHWC activations and weights (faster on CUDA and on the CPU)
    compile: bool = False              # torch.compile the model (CUDA only; ignored on CPU)
    sync_bn: bool = False              # SyncBatchNorm across ranks under torchrun
    eval_batch_size: int = 1000
    # --- run control
    eval_every: int = 1                # validate every N epochs (and always after the last)
    tta: str = "none"                  # test-time augmentation for the final evaluation
    budget_minutes: float = 0.0        # >0: choose `epochs` so that training fits this many minutes
    train_subset: int = 0              # >0: train on only this many (stratified) images; for budgets
    threads: int = 0                   # CPU threads for torch (0 = torch's default)
    notes: str = ""

    def __post_init__(self):
        validate(self)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object (a dict), got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        d = dict(d)
        if "milestones" in d:
            if not isinstance(d["milestones"], (list, tuple)):
                raise ConfigError(f"milestones must be a list of epochs, got {d['milestones']!r}")
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    def replace(self, **changes):
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as e:
            raise ConfigError(str(e)) from e


def _finite(v):
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


def _check(cond, msg):
    if not cond:
        raise ConfigError(msg)


def validate(c: TrainConfig):
    for f in fields(c):
        v = getattr(c, f.name)
        typ = (int, float) if f.type is float else f.type
        ok = isinstance(v, typ) and not (f.type in (int, float) and isinstance(v, bool))
        _check(ok, f"{f.name} must be of type {f.type.__name__}, got {v!r}")
        _check(f.type is not float or _finite(v), f"{f.name} must be finite, got {v!r}")
    _check(c.epochs >= 1, f"epochs must be at least 1, got {c.epochs}")
    _check(c.batch_size >= 1, f"batch_size must be positive, got {c.batch_size}")
    _check(c.eval_batch_size >= 1, f"eval_batch_size must be positive, got {c.eval_batch_size}")
    _check(c.lr > 0 and c.lr < 100, f"lr must be in (0, 100), got {c.lr}")
    _check(0 <= c.momentum < 1, f"momentum must be in [0, 1), got {c.momentum}")
    _check(not c.nesterov or c.momentum > 0, "nesterov needs momentum > 0")
    _check(0 <= c.weight_decay < 1, f"weight_decay must be in [0, 1), got {c.weight_decay}")
    _check(c.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {c.schedule!r}")
    _check(all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in c.milestones)
           and list(c.milestones) == sorted(c.milestones),
           f"milestones must be increasing positive epochs, got {c.milestones}")
    _check(0 < c.gamma <= 1, f"gamma must be in (0, 1], got {c.gamma}")
    _check(0 <= c.warmup_epochs <= c.epochs, f"warmup_epochs must be in [0, epochs], got {c.warmup_epochs}")
    _check(0 <= c.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {c.label_smoothing}")
    _check(c.grad_clip >= 0, f"grad_clip must be >= 0, got {c.grad_clip}")
    _check(c.normalize in NORMALIZE, f"normalize must be one of {NORMALIZE}, got {c.normalize!r}")
    _check(0 <= c.crop_padding <= 16, f"crop_padding must be in [0, 16], got {c.crop_padding}")
    _check(c.val_size >= 0 and c.val_size % 100 == 0 and c.val_size < 50_000,
           f"val_size must be a multiple of 100 in [0, 50000), got {c.val_size}")
    _check(c.device in DEVICES, f"device must be one of {DEVICES}, got {c.device!r}")
    _check(c.amp in AMP, f"amp must be one of {AMP}, got {c.amp!r}")
    _check(c.tta in TTA, f"tta must be one of {TTA}, got {c.tta!r}")
    _check(c.eval_every >= 1, f"eval_every must be at least 1, got {c.eval_every}")
    _check(c.budget_minutes >= 0, f"budget_minutes must be >= 0, got {c.budget_minutes}")
    _check(c.train_subset >= 0 and c.train_subset % 100 == 0,
           f"train_subset must be a multiple of 100 (0 = all), got {c.train_subset}")
    _check(0 <= c.threads <= MAX_THREADS, f"threads must be in [0, {MAX_THREADS}], got {c.threads}")
    for name in ("seed", "split_seed"):  # torch and numpy generators take seeds in [0, 2**63)
        _check(0 <= getattr(c, name) < 2**63, f"{name} must be in [0, 2**63), got {getattr(c, name)}")
    _check(c.model != "", "model must be named")
    _check(c.augment_policy in POLICIES, f"augment_policy must be one of {POLICIES}, got {c.augment_policy!r}")
    _check(1 <= c.randaugment_n <= 10, f"randaugment_n must be in [1, 10], got {c.randaugment_n}")
    _check(0 <= c.randaugment_m <= 30, f"randaugment_m must be a magnitude bin in [0, 30], got {c.randaugment_m}")
    _check(0 <= c.cutout <= 32, f"cutout must be a side in pixels in [0, 32], got {c.cutout}")
    _check(0 <= c.random_erasing <= 1, f"random_erasing must be a probability, got {c.random_erasing}")
    for name in ("mixup_alpha", "cutmix_alpha"):
        v = getattr(c, name)  # Beta(a, a) sampling degenerates for a vanishing a
        _check(v == 0 or 0.01 <= v <= 100, f"{name} must be 0 (off) or in [0.01, 100], got {v}")
    _check(0 <= c.mix_prob <= 1, f"mix_prob must be a probability, got {c.mix_prob}")
    _check(0 <= c.sam_rho <= 10, f"sam_rho must be in [0, 10], got {c.sam_rho}")
    _check(not (c.sam_rho > 0 and c.amp == "fp16"), "sam_rho needs amp bf16 or none: SAM with the fp16 "
                                                    "gradient scaler is not supported")
    _check(0 <= c.ema_decay < 1, f"ema_decay must be in [0, 1) (0 = off), got {c.ema_decay}")
    _check(0 <= c.drop_path < 1, f"drop_path must be in [0, 1), got {c.drop_path}")
    _check(0 <= c.dropout < 1, f"dropout must be in [0, 1), got {c.dropout}")
    model_kwargs(c)


def model_kwargs(c: TrainConfig) -> dict:
    """Builder keywords for `c.drop_path` and `c.dropout` (empty when both are 0).

    ConfigError for a model whose builder takes no such rate: a rate that silently does nothing
    would make a run look regularised when it is not.
    """
    kwargs = {}
    if c.drop_path <= 0 and c.dropout <= 0:
        return kwargs
    if c.model.startswith("timm/"):
        if c.drop_path > 0:
            kwargs["drop_path_rate"] = c.drop_path
        if c.dropout > 0:
            kwargs["drop_rate"] = c.dropout
        return kwargs
    import inspect

    from c100.models import get_entry

    accepted = inspect.signature(get_entry(c.model).builder).parameters
    if c.drop_path > 0:
        names = [k for k in DROP_PATH_KWARGS if k in accepted]
        _check(names, f"model {c.model} has no stochastic depth or ShakeDrop (its builder takes none of "
                      f"{', '.join(DROP_PATH_KWARGS)}); leave drop_path at 0")
        kwargs[names[0]] = c.drop_path
    if c.dropout > 0:
        _check("dropout" in accepted, f"model {c.model} takes no dropout rate; leave dropout at 0")
        kwargs["dropout"] = c.dropout
    return kwargs
