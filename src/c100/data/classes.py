"""CIFAR-100's class names: the built-in list of its 100 fine classes and 20 superclasses.

Lets a checkpoint name its classes on a machine without the data set; c100.data.cifar.class_names
prefers the data set's own meta file when it is there. No torch here: this is a table and its checks.
"""
from dataclasses import dataclass

from c100.errors import CheckpointError

# CIFAR-100's 20 superclasses and their fine classes, as in the data set's meta file (whose name lists
# are these, sorted). Lets a checkpoint name its classes on a machine without the data set.
_SUPERCLASSES = (
    ("aquatic_mammals", ("beaver", "dolphin", "otter", "seal", "whale")),
    ("fish", ("aquarium_fish", "flatfish", "ray", "shark", "trout")),
    ("flowers", ("orchid", "poppy", "rose", "sunflower", "tulip")),
    ("food_containers", ("bottle", "bowl", "can", "cup", "plate")),
    ("fruit_and_vegetables", ("apple", "mushroom", "orange", "pear", "sweet_pepper")),
    ("household_electrical_devices", ("clock", "keyboard", "lamp", "telephone", "television")),
    ("household_furniture", ("bed", "chair", "couch", "table", "wardrobe")),
    ("insects", ("bee", "beetle", "butterfly", "caterpillar", "cockroach")),
    ("large_carnivores", ("bear", "leopard", "lion", "tiger", "wolf")),
    ("large_man-made_outdoor_things", ("bridge", "castle", "house", "road", "skyscraper")),
    ("large_natural_outdoor_scenes", ("cloud", "forest", "mountain", "plain", "sea")),
    ("large_omnivores_and_herbivores", ("camel", "cattle", "chimpanzee", "elephant", "kangaroo")),
    ("medium_mammals", ("fox", "porcupine", "possum", "raccoon", "skunk")),
    ("non-insect_invertebrates", ("crab", "lobster", "snail", "spider", "worm")),
    ("people", ("baby", "boy", "girl", "man", "woman")),
    ("reptiles", ("crocodile", "dinosaur", "lizard", "snake", "turtle")),
    ("small_mammals", ("hamster", "mouse", "rabbit", "shrew", "squirrel")),
    ("trees", ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree")),
    ("vehicles_1", ("bicycle", "bus", "motorcycle", "pickup_truck", "train")),
    ("vehicles_2", ("lawn_mower", "rocket", "streetcar", "tank", "tractor")),
)


@dataclass
class ClassNames:
    fine: list                    # fine class names by label index
    coarse: list | None           # superclass names by coarse index
    fine_to_coarse: list | None   # coarse index of each fine label
    source: str                   # where they came from, for people

    def superclass(self, fine_index):
        if not self.coarse or not self.fine_to_coarse:
            return None
        c = int(self.fine_to_coarse[fine_index])
        return {"index": c, "label": self.coarse[c]}

    def check(self, num_classes, where):
        ok = len(self.fine) == num_classes and (self.fine_to_coarse is None or (
            len(self.fine_to_coarse) == num_classes and self.coarse
            and all(isinstance(c, int) and 0 <= c < len(self.coarse) for c in self.fine_to_coarse)))
        if not ok:
            raise CheckpointError(f"{where}: the class names do not fit a {num_classes}-class model "
                                  f"({len(self.fine)} fine names); the file is inconsistent")


def builtin_class_names() -> ClassNames:
    fine = sorted(f for _, group in _SUPERCLASSES for f in group)
    coarse = [c for c, _ in _SUPERCLASSES]
    of = {f: i for i, (_, group) in enumerate(_SUPERCLASSES) for f in group}
    return ClassNames(fine, coarse, [of[f] for f in fine], "built-in CIFAR-100 class list")
