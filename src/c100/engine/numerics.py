"""Numerical guards of a training run: a NaN/inf or exploding loss, and non-finite weights, stop it
with a NumericalError that names the last good checkpoint and what to try.

The loss is read on the host only every ``NAN_CHECK_EVERY`` steps and at each epoch's end (a read
waits for the device); weights are checked before every checkpoint, so none with a NaN is written.
"""
import math

import torch

from c100.distributed import agree_max
from c100.errors import NumericalError

NAN_CHECK_EVERY = 100  # steps between host checks for a non-finite or exploding loss
# A mean training loss above this is a divergence, stopped like a NaN. Guessing uniformly over the 100
# classes costs ln(100) = 4.61, and a training run starts there and goes down; ten times that (46.1)
# means the true class gets probability ~e^-46 = 1e-20 on average, which only logits blown far past
# any trained model's scale give (label smoothing and Mixup bound the logits, they do not raise the
# loss there). simplecnn --lr 99 averages 2.2e9 over its first epoch on the tests' tiny copy (issue 15
# saw 4.9e12 on the full data), so the bound is crossed at once, and a NaN/inf is caught as before.
LOSS_EXPLODED = 10 * math.log(100)


def kept(last) -> str:
    """What is left to go back to, for the error message: the last checkpoint ``last``, if written."""
    return f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint had been written yet"


def check_finite(sums, session, epoch, step):
    """Stop on a NaN/inf loss (1) or a loss explosion (2): the epoch's mean loss above LOSS_EXPLODED.
    ``sums``: (loss sum, correct, seen); ``session``: the run's cfg, env, device and dir."""
    total, seen = sums[0].item(), sums[2].item()
    bad = 1 if not math.isfinite(total) else 2 if seen and total / seen > LOSS_EXPLODED else 0
    bad = agree_max(bad, session.env, session.device)  # every rank stops, not only the one that saw it
    lr, where = session.cfg.lr, kept(session.dir.last)
    if bad == 1:
        raise NumericalError(f"the training loss became NaN or inf in epoch {epoch + 1} (by step {step}); "
                             f"{where}. Try a lower --lr or --grad-clip 1.0")
    if bad == 2:
        mean = f"{total / seen:.3g}" if seen and math.isfinite(total) else "a value"
        raise NumericalError(f"the training diverged in epoch {epoch + 1} (by step {step}): mean training loss "
                             f"{mean}, above {LOSS_EXPLODED:.1f} (10 x ln(100), the loss of guessing); {where}. "
                             f"Lower the learning rate (--lr {lr:g} now, try {lr / 10:g}), or add "
                             f"--grad-clip 1.0, in a new run (a resume keeps the run's --lr)")


def check_finite_weights(model, epoch, last):
    """Refuse to checkpoint non-finite weights: a NaN can reach them in the step after the last loss check.
    ``epoch``: the 1-based epoch the weights are in, for the message."""
    floats = [t for t in model.state_dict().values() if t.is_floating_point()]
    if floats and not bool(torch.stack([torch.isfinite(t).all() for t in floats]).all()):
        raise NumericalError(f"the model's weights became NaN or inf in epoch {epoch}; {kept(last)}. "
                             f"Try a lower --lr or --grad-clip 1.0")
