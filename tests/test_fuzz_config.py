"""Fuzzing the option and config parsing: every input is a valid TrainConfig or a clear error.

* ``c100 train`` options: random text for each config override goes through the real parser and
  ``commands.train.resolve``; the outcome is a TrainConfig, a ConfigError, or argparse's usage
  error (SystemExit 2), never another exception. A config that is accepted survives the JSON round
  trip of config.json and its seeds are usable by torch and numpy.
* ``TrainConfig.from_dict`` on random dicts (what config.json and checkpoints hold): TrainConfig or
  ConfigError only.
"""
import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from c100.cli import build_parser
from c100.commands._common import OVERRIDABLE
from c100.commands.train import resolve
from c100.engine.config import TrainConfig
from c100.errors import ConfigError

PARSER = build_parser()
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

option_text = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "-1e400", "1e-320", "true", "false", "yes", "off",
                     "0", "-0", "-1", "1,2,3", "3,2", "1,,2", ",", "0x10", "1_000", " 5", "\uff15", "cuda", "cpu",
                     "auto", "flip", "flip-translate", "cosine", "multistep", "none", "bf16", "fp16", "seed",
                     "cifar100", "9" * 40, "-" + "9" * 40, "2e10", "4096", "18446744073709551616"]),
    st.text(max_size=12),
)


def _parse(argv):
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return PARSER.parse_args(argv)


def _usable(cfg: TrainConfig):
    """What every accepted config must allow: JSON round trip, seeding torch and numpy."""
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    torch.Generator().manual_seed(cfg.seed)
    np.random.default_rng(cfg.split_seed + 1)
    np.random.default_rng(cfg.seed)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(OVERRIDABLE)), option_text, max_size=5),
       st.sampled_from(["fast", "seed"]), st.sampled_from(["simplecnn", "resnet18", "logreg"]))
def test_cli_overrides_give_a_valid_config_or_a_clear_error(opts, recipe, model):
    argv = ["train", model, "--recipe", recipe]
    for name, text in opts.items():
        argv.append(f"--{name.replace('_', '-')}={text}")  # '=' so that values like '-1' are values
    try:
        args = _parse(argv)
    except SystemExit as e:
        assert e.code == 2
        return
    try:
        cfg, out = resolve(args)
    except ConfigError:
        return
    assert isinstance(cfg, TrainConfig) and out
    _usable(cfg)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(10**400), 10**400) | st.floats()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6), st.integers(), st.none()),
                       json_value, max_size=6))
def test_from_dict_on_random_dicts_gives_a_config_or_a_config_error(d):
    try:
        cfg = TrainConfig.from_dict(d)
    except ConfigError:
        return
    _usable(cfg)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), json_value, min_size=1, max_size=4))
def test_from_dict_on_a_valid_config_with_random_fields_replaced(changes):
    d = {**TrainConfig().to_dict(), **changes}
    try:
        cfg = TrainConfig.from_dict(d)
    except ConfigError:
        return
    _usable(cfg)


@pytest.mark.parametrize("bad", [None, [], "epochs=3", 3, [("epochs", 3)]])
def test_from_dict_on_what_is_not_a_dict(bad):
    with pytest.raises(ConfigError, match="object|dict|mapping"):
        TrainConfig.from_dict(bad)


@pytest.mark.parametrize("bad", [dict(seed=-1), dict(seed=2**64), dict(split_seed=-3), dict(threads=10**6),
                                 dict(budget_minutes=10**400), dict(lr=10**400), dict(milestones=(True, 2)),
                                 dict(milestones=5), dict(milestones=["3"])])
def test_values_that_would_fail_later_are_refused_now(bad):
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({**TrainConfig().to_dict(), **bad})
