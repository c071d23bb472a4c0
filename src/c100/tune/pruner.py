"""Pruning: the median stopping rule, compared at the same fraction of each trial's schedule.

Optuna's MedianPruner compares trials at the same step. When the space searches ``epochs``, epoch 5
of a 10-epoch trial (lr half decayed) and epoch 5 of a 30-epoch one (lr still high) are not
comparable: the longer schedule is always behind early and would be pruned for its length, not its
quality. So a trial at epoch e of E is compared with each completed trial at epoch round(e/E * E')
of its E'. With one length for all trials this is exactly the median rule of Golovin et al. (2017,
Google Vizier), as Optuna's MedianPruner applies it: prune when the trial's best validation error
so far is worse than the median of the completed trials' best errors up to the same point.
"""
import math

import numpy as np

N_STARTUP = 4         # completed trials before anything is pruned (Optuna's MedianPruner uses 5)
WARMUP_FRACTION = 0.25  # no trial is judged in the first quarter of its schedule (warm-up, noisy start)


def best_up_to(curve: dict, epoch: int):
    """The lowest value of ``curve`` ({epoch: val error}) at epochs <= ``epoch``; None if there is none."""
    vals = [v for e, v in curve.items() if e <= epoch and math.isfinite(v)]
    return min(vals) if vals else None


def should_prune(curve: dict, epochs: int, completed, n_startup=N_STARTUP, warmup=WARMUP_FRACTION) -> bool:
    """``curve``: this trial's {epoch: val top-1 error}; ``epochs``: its schedule length;
    ``completed``: (curve, epochs) of each completed trial. Pure, for tests and the pruner below."""
    if not curve or len(completed) < n_startup:
        return False
    epoch = max(curve)
    frac = epoch / epochs
    if frac < warmup or epoch >= epochs:
        return False
    others = []
    for c, e in completed:
        at = min(e, max(1, round(frac * e)))
        b = best_up_to(c, at)
        if b is not None:
            others.append(b)
    if len(others) < n_startup:
        return False
    return best_up_to(curve, epoch) > float(np.median(others))


def make_pruner():
    from optuna.pruners import BasePruner
    from optuna.trial import TrialState

    class ScheduleMedianPruner(BasePruner):
        """should_prune over the study's COMPLETE trials; each trial's length is its user attr "epochs"."""

        def prune(self, study, trial):
            epochs = trial.user_attrs.get("epochs")
            if not epochs:
                return False
            completed = [(t.intermediate_values, t.user_attrs["epochs"])
                         for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                         if t.user_attrs.get("epochs")]
            return should_prune(dict(trial.intermediate_values), epochs, completed)

    return ScheduleMedianPruner()
