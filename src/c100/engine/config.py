"""TrainConfig: every choice of a training run in one frozen dataclass, with units, help and choices.

A config is resolved from a recipe (c100.engine.recipes), the recipe's per-model overrides and the
command line's overrides (each `option` field is a flag; c100.commands._common), validated, written to the run folder and saved in every checkpoint.
"""
import dataclasses
import math
from dataclasses import dataclass, field, fields

from c100.data.names import POLICIES
from c100.errors import ConfigError

SCHEDULES = ("multistep", "cosine", "linear", "constant")
NORMALIZE = ("seed", "cifar100")
AMP = ("auto", "bf16", "fp16", "none")
TTA = ("none", "flip", "flip-translate")
DEVICES = ("auto", "cpu", "cuda")
CPU_KERNELS = ("auto", "inductor", "aten")
# Builder keywords that take `drop_path`, in order of preference: ShakeDrop's p_L (pyramidnet);
# stochastic depth under the names models use for it (timm/<name> entries take drop_path_rate).
DROP_PATH_KWARGS = ("shakedrop", "drop_path_rate", "drop_path", "stochastic_depth")
# Builder keywords that take `dropout`: c100's name, then timm's.
DROPOUT_KWARGS = ("dropout", "drop_rate")
MAX_THREADS = 4096


def option(default, help, choices=None):
    """A field the command line may override: its help text and choices live here, once, and
    c100.commands._common generates the `--flag` from them (fields without `option` are not flags)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class TrainConfig:
    model: str = "resnet18"
    recipe: str = "custom"
    seed: int = option(0, "random seed (model init, data order and augmentation)")
    # --- data
    val_size: int = option(5000, "validation images held out (stratified) of train for every choice "
                                 "(multiple of 100; 0 = none)")
    split_seed: int = 0                # fixes the validation split, independent of `seed`
    normalize: str = option("cifar100", "normalisation: seed = mean/std 0.5, cifar100 = the data set's "
                                        "mean/std", NORMALIZE)
    crop_padding: int = option(4, "zero padding in pixels before the random 32x32 crop (0 = no crop)")
    flip: bool = option(True, "random horizontal flip (true/false)")
    # Strong augmentation after crop/flip, in this order (c100.data.policies, c100.data.mixing); every
    # draw comes from a per-(seed, epoch) stream, so runs stay exact to resume and world-size free.
    augment_policy: str = option("none", "per-image policy after crop/flip, on the device (autoaugment: "
                                         "its CIFAR-10 policy)", POLICIES)
    randaugment_n: int = option(2, "RandAugment ops per image")
    randaugment_m: int = option(9, "RandAugment magnitude bin (0-30)")
    cutout: int = option(0, "side in pixels of a square erased at a uniform centre (0 = off)")
    random_erasing: float = option(0.0, "probability of erasing one box of 2-33% of the area (0 = off)")
    mixup_alpha: float = option(0.0, "Mixup weight ~ Beta(a, a) (0 = off)")
    cutmix_alpha: float = option(0.0, "CutMix area ~ Beta(a, a) (0 = off; both on: 50/50 per image)")
    mix_prob: float = option(1.0, "probability that an image is mixed at all (when Mixup or CutMix is on)")
    # --- optimisation
    epochs: int = option(30, "number of epochs (the schedule spans them)")
    batch_size: int = option(128, "global batch size (images per optimizer step, all ranks together)")
    lr: float = option(0.1, "peak learning rate for batch_size")
    momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(False, "Nesterov momentum (true/false)")
    weight_decay: float = option(5e-4, "weight decay (L2 coefficient, coupled as in torch.optim.SGD)")
    decay_norm_and_bias: bool = option(True, "apply weight decay to norm weights and biases (true/false)")
    schedule: str = option("multistep", "learning-rate schedule (linear decays to 0)", SCHEDULES)
    milestones: tuple = option((60, 120, 160), "multistep epochs at which the lr is multiplied by gamma, "
                                               "comma-separated (e.g. 60,120,160)")
    gamma: float = option(0.2, "multistep factor")
    warmup_epochs: float = option(0.0, "linear warm-up from 0 over this many epochs")
    label_smoothing: float = option(0.0, "label smoothing")
    grad_clip: float = option(0.0, "max global gradient norm (0 = off)")
    sam_rho: float = option(0.0, "SAM radius, L2 norm in weight space (0 = plain optimizer step; >0 doubles "
                                 "the step cost)")
    ema_decay: float = option(0.0, "EMA of weights, decay per optimizer step (0 = off); validation, test and "
                                   "c100 eval then use the EMA weights")
    ema_warmup: bool = option(False, "EMA decay warm-up min(decay, (1+t)/(10+t)) at step t (true/false)")
    drop_path: float = option(0.0, "stochastic depth / ShakeDrop rate at the last block, for models whose "
                                   "builder takes one (0 = the model's default; see model_kwargs)")
    dropout: float = option(0.0, "dropout rate for models whose builder takes one (0 = the model's default)")
    # --- hardware
    device: str = option("auto", "where to train", DEVICES)
    amp: str = option("auto", "precision: auto = bf16 autocast on CUDA and on CPUs with bf16 units, "
                              "else none (fp32); config.json records the resolved value", AMP)
    channels_last: bool = option(True, "NHWC activations and weights, on CUDA and the CPU (true/false)")
    compile: bool = option(False, "torch.compile the model, on CUDA only; ignored on the CPU (true/false)")
    cpu_kernels: str = option("auto", "CPU training kernels: inductor = generated fused kernels where a model has "
                                      "them (simplecnn's pool + ReLU; results bit-identical to aten's), aten = "
                                      "PyTorch's own; auto = inductor on the CPU where a C++ compiler is found. "
                                      "config.json records the resolved value", CPU_KERNELS)
    sync_bn: bool = option(False, "SyncBatchNorm across ranks under torchrun (true/false)")
    eval_batch_size: int = option(1000, "evaluation batch size")
    checkpoint_minutes: float = option(1.0, "write checkpoints/last.pt (and a better best.pt) once at least this "
                                            "many minutes have passed since the last write, and always after "
                                            "the last epoch, at --stop-at-epoch and on a stop signal; a kill loses "
                                            "at most this much training (0 = after every epoch)")
    # --- run control
    eval_every: int = option(1, "validate every N epochs (and always after the last)")
    tta: str = option("none", "test-time augmentation of the final evaluation", TTA)
    budget_minutes: float = option(0.0, "fit training into this many minutes (fewer epochs, or a subset; "
                                        "0 = off)")
    train_subset: int = option(0, "train on only this many stratified images, for budgets (0 = all)")
    threads: int = option(0, "CPU threads for torch (0 = torch's default)")
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
    """ConfigError (exit code 2) naming the first field of ``c`` that is out of its range."""
    _check_types(c)
    _check_optimisation(c)
    _check_data(c)
    _check_execution(c)
    _check_regularisation(c)
    model_kwargs(c)  # a rate the model's builder does not take


def _check_types(c):
    for f in fields(c):
        v = getattr(c, f.name)
        typ = (int, float) if f.type is float else f.type
        ok = isinstance(v, typ) and not (f.type in (int, float) and isinstance(v, bool))
        _check(ok, f"{f.name} must be of type {f.type.__name__}, got {v!r}")
        _check(f.type is not float or _finite(v), f"{f.name} must be finite, got {v!r}")


def _check_optimisation(c):
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


def _check_data(c):
    _check(c.normalize in NORMALIZE, f"normalize must be one of {NORMALIZE}, got {c.normalize!r}")
    _check(0 <= c.crop_padding <= 16, f"crop_padding must be in [0, 16], got {c.crop_padding}")
    _check(c.val_size >= 0 and c.val_size % 100 == 0 and c.val_size < 50_000,
           f"val_size must be a multiple of 100 in [0, 50000), got {c.val_size}")


def _check_execution(c):
    _check(c.device in DEVICES, f"device must be one of {DEVICES}, got {c.device!r}")
    _check(c.amp in AMP, f"amp must be one of {AMP}, got {c.amp!r}")
    _check(c.cpu_kernels in CPU_KERNELS, f"cpu_kernels must be one of {CPU_KERNELS}, got {c.cpu_kernels!r}")
    _check(c.tta in TTA, f"tta must be one of {TTA}, got {c.tta!r}")
    _check(c.eval_every >= 1, f"eval_every must be at least 1, got {c.eval_every}")
    _check(c.checkpoint_minutes >= 0, f"checkpoint_minutes must be >= 0, got {c.checkpoint_minutes}")
    _check(c.budget_minutes >= 0, f"budget_minutes must be >= 0, got {c.budget_minutes}")
    _check(c.train_subset >= 0 and c.train_subset % 100 == 0,
           f"train_subset must be a multiple of 100 (0 = all), got {c.train_subset}")
    _check(0 <= c.threads <= MAX_THREADS, f"threads must be in [0, {MAX_THREADS}], got {c.threads}")
    for name in ("seed", "split_seed"):  # torch and numpy generators take seeds in [0, 2**63)
        _check(0 <= getattr(c, name) < 2**63, f"{name} must be in [0, 2**63), got {getattr(c, name)}")
    _check(c.model != "", "model must be named")


def _check_regularisation(c):
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


def model_kwargs(c: TrainConfig) -> dict:
    """Builder keywords for `c.drop_path` and `c.dropout` (empty when both are 0).

    ConfigError for a model whose builder takes no such rate: a rate that silently does nothing
    would make a run look regularised when it is not.
    """
    kwargs = {}
    if c.drop_path <= 0 and c.dropout <= 0:
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
        names = [k for k in DROPOUT_KWARGS if k in accepted]
        _check(names, f"model {c.model} takes no dropout rate; leave dropout at 0")
        kwargs[names[0]] = c.dropout
    return kwargs
