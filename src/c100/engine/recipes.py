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


def get_recipe(name) -> Recipe:
    if name not in RECIPES:
        raise UnknownNameError(close_matches_message("recipe", name, sorted(RECIPES)))
    return RECIPES[name]


def list_recipes():
    return sorted(RECIPES)
