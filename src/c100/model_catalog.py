"""What ``c100 models`` lists, without importing torch when nothing changed: a cache of the zoo.

Measuring every model's parameters and FLOPs builds and runs all 60+ models: about 20 s on a 2-core
CPU (over 100 s beside a training run), and importing torch alone takes 1-2 s there. So the rows are
counted once and kept in ``$XDG_CACHE_HOME/c100/models-<c100 version>.json`` (default
``~/.cache/c100``; ``$C100_CACHE_DIR`` overrides the folder), with the registry's names, families and
aliases. A model is measured when it is first listed; the whole file is rebuilt when its key changes:
the c100 and torch versions (FLOP counting may change with torch) and a hash of the source of
c100/models/ (an edited family file in a development checkout changes counts without a new version).

The file is written atomically (c100.atomic); an unwritable or corrupt cache is no error: the rows are
then counted in this process, as before there was a cache. Whether weights ship is looked up on every
call (a file, or $C100_WEIGHTS, may appear at any time), and timm/<name> rows are never cached (they
depend on the installed timm). ``c100 models --recount`` measures again and rewrites the entries.

This module is the torch-free side: it imports c100.models (the zoo, and torch) only on a cache miss.
"""
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from c100.version import __version__

# Trained weights that ship with the repository (weights/README.md); $C100_WEIGHTS overrides.
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
MODELS_SRC = Path(__file__).resolve().parent / "models"
TIMM_PREFIX = "timm/"  # = c100.models.registry.TIMM_PREFIX (that module imports torch)


def weights_path(name) -> Path:
    """Where trained weights for the registered model ``name`` ship: weights/<name>.safetensors of the
    repository, or of $C100_WEIGHTS."""
    return Path(os.environ.get("C100_WEIGHTS") or REPO_WEIGHTS) / f"{name}.safetensors"


def cache_file() -> Path:
    folder = os.environ.get("C100_CACHE_DIR")
    if not folder:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "c100"
    return Path(folder) / f"models-{__version__}.json"


def cache_key() -> str:
    """c100 version, torch version and the hash of c100/models/*.py (about 1 ms to compute)."""
    h = hashlib.sha256()
    for p in sorted(MODELS_SRC.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "?"
    return f"c100 {__version__}, torch {torch_version}, models {h.hexdigest()[:16]}"


class Catalog:
    """The registry's names, families and aliases and the measured rows, from the cache or counted."""

    def __init__(self, recount=False):
        self.path, self.key = cache_file(), cache_key()
        data = None if recount else self._read()
        self.recount, self.changed = recount, data is None
        if data is None:
            from c100.models import get_entry, list_aliases, list_models

            data = {"key": self.key, "families": {n: get_entry(n).family for n in list_models()},
                    "aliases": list_aliases(), "rows": {}}
        self.families, self.aliases, self.rows = data["families"], data["aliases"], data["rows"]

    def _read(self):
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        ok = (isinstance(data, dict) and data.get("key") == self.key
              and all(isinstance(data.get(k), dict) for k in ("families", "aliases", "rows")))
        return data if ok else None

    def list_models(self, family=None):
        """As c100.models.list_models, from the cache; an unknown family is the registry's error."""
        if family is not None and family not in self.families.values():
            from c100.models import list_models

            list_models(family)  # raises UnknownNameError with close matches
        return sorted(n for n, f in self.families.items() if family is None or f == family)

    def row(self, name):
        """``c100 models``' row of ``name`` (a registered name, an alias or timm/<name>); an unknown name
        is the registry's error, with close matches."""
        canonical = self.aliases.get(name, name)
        if canonical not in self.families:  # timm/<name> (no weights ship), or unknown: the registry decides
            from c100.models.info import describe

            return {**describe(name), "weights": False}
        cached = self.rows.get(canonical)
        if cached is None:
            from c100.models.info import describe

            cached = self.rows[canonical] = describe(canonical)
            self.changed = True
        return {**cached, "name": name, "weights": weights_path(canonical).is_file()}

    def save(self):
        """Write the cache if anything was counted; an unwritable cache folder is no error."""
        if not self.changed:
            return
        from c100.atomic import atomic_write_json
        from c100.errors import C100Error

        try:
            atomic_write_json(self.path, {"key": self.key, "families": self.families, "aliases": self.aliases,
                                          "rows": self.rows})
        except (OSError, C100Error):
            pass  # read-only home, full disk, ...: the next call counts again
        self.changed = False


def model_rows(names=(), family=None, recount=False):
    """(rows, aliases) for ``c100 models``: the rows of ``names`` (default: every model, or those of
    ``family``) and the aliases of the listed family."""
    cat = Catalog(recount)
    in_family = cat.list_models(family)
    for n in names:  # unknown names fail before anything is measured
        if n.startswith(TIMM_PREFIX) or n not in cat.families and n not in cat.aliases:
            from c100.models import get_entry

            get_entry(n)
    try:
        rows = [cat.row(n) for n in (names or in_family)]
    finally:
        cat.save()  # what was counted before an error or Ctrl-C is kept
    aliases = {a: t for a, t in cat.aliases.items() if t in in_family}
    return rows, aliases
