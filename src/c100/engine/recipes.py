"""Named, frozen training recipes. A recipe is a set of TrainConfig values plus per-model overrides.

    c100 recipes            # lists them
    c100 train resnet18 --recipe seed

Each value below is a documented choice; README.md gives the exact command behind every result.
"""
from dataclasses import dataclass, field

from c100.engine.config import TrainConfig
from c100.errors import close_matches_message, UnknownNameError


@dataclass(frozen=True)
class Recipe:
    name: str
    doc: str
    values: dict
    per_model: dict = field(default_factory=dict)  # model name -> values that replace `values` for it

    def config_for(self, model: str, **overrides) -> TrainConfig:
        values = {**self.values, **self.per_model.get(model, {}), **overrides}
        return TrainConfig(model=model, recipe=self.name, **values)


RECIPES = {}


def _recipe(name, doc, values, per_model=None):
    RECIPES[name] = Recipe(name, doc, values, per_model or {})


_recipe(
    "seed",
    "The seed tutorial's pipeline as it stands: 0.5/0.5 normalisation, crop+flip, batch 128, SGD lr 0.1 "
    "(0.01 for logreg and simplecnn, as the seed's code), momentum 0.9, weight decay 5e-4, 200 epochs, "
    "lr x0.2 at epochs 60/120/160, 1 warm-up epoch. Trains on all 50,000 images (val_size 0) like the seed.",
    dict(normalize="seed", batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=200,
         schedule="multistep", milestones=(60, 120, 160), gamma=0.2, warmup_epochs=1.0, val_size=0,
         amp="none"),
    per_model={"logreg": dict(lr=0.01), "simplecnn": dict(lr=0.01)},
)

_recipe(
    "fast",
    "The fewest seconds to the seed's rows. Data-set normalisation, nesterov SGD, no decay on norms and "
    "biases, label smoothing 0.1, short warm-up then linear decay to 0, bf16 autocast + channels_last + "
    "torch.compile on CUDA, flip TTA at test. Per-model lengths and learning rates below were chosen on "
    "the validation split (see docs/BENCHMARKS.md).",
    dict(normalize="cifar100", batch_size=512, lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4,
         decay_norm_and_bias=False, epochs=30, schedule="linear", warmup_epochs=2.0, label_smoothing=0.1,
         compile=True, tta="flip"),
    per_model={
        # A linear model on pixels: random crops misalign the pixels it weighs (off), flips regularise it
        # (on: validation top-1 error 80.56% with, 81.24% without; docs/BENCHMARKS.md).
        "logreg": dict(epochs=8, batch_size=256, lr=0.01, crop_padding=0, flip=True, warmup_epochs=0.0,
                       weight_decay=5e-4, label_smoothing=0.0, compile=False, tta="none"),
        "simplecnn": dict(epochs=20, batch_size=256, lr=0.1, warmup_epochs=1.0, weight_decay=5e-4,
                          compile=False),
    },
)


_recipe(
    "cpu",
    "ResNet18's tutorial row (24.39 / 6.95) on a CPU without a GPU: 60 epochs of ~237 s on 2 cores of an "
    "Intel Xeon with AMX or an AMD Zen 5 (~4.5 h; ~300 s on a slower shared Zen 5 host; ~425 s per epoch "
    "on Zen 4, whose bf16 units are half as wide), resumable across sessions (`c100 train --resume RUN`). "
    "The tutorial's crop+flip and batch 128 with `fast`'s optimiser choices and a 60-epoch linear "
    "schedule: Nesterov SGD lr 0.1, momentum 0.9, weight decay 5e-4 off norms and biases, 1 warm-up "
    "epoch then linear decay to 0, no label smoothing, "
    "flip TTA at test, bf16 autocast where the CPU has bf16 units (amp auto) and channels_last. Length, "
    "label smoothing and TTA chosen on the validation split (60 epochs without smoothing: val 24.18 / 6.52 "
    "with flip TTA, against 24.20 / 7.36 for 34 epochs with smoothing 0.1; docs/BENCHMARKS.md 3c). Batch "
    "128 rather than `fast`'s 512: on the CPU a larger batch buys little speed (resnet18 bf16 step: 175 "
    "img/s at 128, 181 at 512) and the schedule gets 4x more updates. Holds out 5,000 validation images, "
    "validated every epoch. Seed models: `fast`'s values.",
    dict(normalize="cifar100", batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
         decay_norm_and_bias=False, epochs=60, schedule="linear", warmup_epochs=1.0, label_smoothing=0.0,
         tta="flip"),
    per_model={m: dict(RECIPES["fast"].per_model[m]) for m in ("logreg", "simplecnn")},
)

# Strong augmentation and EMA do not help models that underfit: in `best` the seed models keep `fast`.
_OFF = dict(augment_policy="none", cutout=0, ema_decay=0.0, ema_warmup=False)

_recipe(
    "best",
    "The most accuracy for resnet18 in about 10 minutes on one H100: `fast` run longer with strong "
    "augmentation and weight averaging. 100 epochs of 512 (nesterov SGD lr 0.4, i.e. 0.1 per 128 images, "
    "momentum 0.9, weight decay 5e-4 off norms and biases, 2 warm-up epochs then linear decay to 0), "
    "label smoothing 0.1, crop+flip then TrivialAugment (one op per image, Mueller & Hutter 2021) and "
    "Cutout 16x16 (DeVries & Taylor 2017; the TrivialAugment paper's CIFAR pipeline), EMA of the weights "
    "(decay 0.999 per step, horizon ~1,000 steps ~ 11 epochs, with warm-up; validation, test and `c100 "
    "eval` use the EMA weights), flip+translate TTA at test (10 views), bf16 + channels_last + "
    "torch.compile on CUDA. Holds out the usual 5,000 validation images (--val-size 0 trains on all "
    "50,000). UNTESTED ON THE GPU: the epoch count assumes a few seconds per epoch and its accuracy and "
    "time are pending a device run (docs/RECIPES.md). Seed models: `fast`'s values, no augmentation or EMA.",
    dict(normalize="cifar100", batch_size=512, lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4,
         decay_norm_and_bias=False, epochs=100, schedule="linear", warmup_epochs=2.0, label_smoothing=0.1,
         augment_policy="trivialaugment", cutout=16, ema_decay=0.999, ema_warmup=True,
         compile=True, tta="flip-translate"),
    per_model={m: {**RECIPES["fast"].per_model[m], **_OFF} for m in ("logreg", "simplecnn")},
)

_PYRAMIDNET = dict(batch_size=64, lr=0.05, weight_decay=5e-5, drop_path=0.5)

_recipe(
    "long",
    "The published 200-epoch CIFAR regime with AutoAugment: SGD lr 0.1 for batch 128, momentum 0.9, "
    "weight decay 5e-4, 200 epochs, cosine decay to 0, crop+flip then AutoAugment's CIFAR-10 policy and "
    "Cutout 16x16, no label smoothing, no EMA, single-view test; trains on all 50,000 images (val_size 0) "
    "as the papers did. Literature (Cubuk et al., AutoAugment, CVPR 2019, Table 2, CIFAR-100 test error): "
    "WRN-28-10 17.1% (82.9% accuracy; 18.8% without AutoAugment, 18.4% with Cutout alone), "
    "PyramidNet-272 a=200 + ShakeDrop 10.7% (89.3%) -- the PyramidNet figure came from a much longer "
    "schedule (1,800 epochs, batch 64, lr 0.05, weight decay 5e-5), so expect less from 200 epochs. "
    "PyramidNets take that paper's batch 64, lr 0.05, weight decay 5e-5 and ShakeDrop p_L 0.5 "
    "(drop_path). Not yet run here: its accuracy is pending a GPU run. Seed models: lr 0.01, no strong "
    "augmentation (they underfit).",
    dict(normalize="cifar100", batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=200,
         schedule="cosine", warmup_epochs=0.0, augment_policy="autoaugment", cutout=16, val_size=0,
         compile=True, tta="none"),
    per_model={"logreg": dict(lr=0.01, augment_policy="none", cutout=0, compile=False),
               "simplecnn": dict(lr=0.01, augment_policy="none", cutout=0, compile=False),
               **{m: _PYRAMIDNET for m in ("pyramidnet110_a48", "pyramidnet110_a270", "pyramidnet272_a200")}},
)


def get_recipe(name) -> Recipe:
    if name not in RECIPES:
        raise UnknownNameError(close_matches_message("recipe", name, sorted(RECIPES)))
    return RECIPES[name]


def list_recipes():
    return sorted(RECIPES)
