"""SIGINT/SIGTERM during training: a flag the loop checks between steps, and the typed errors it raises.

Between steps a signal only sets a flag, so the loop stops at a step boundary and checkpoints that
exact position; under torchrun the ranks agree on the flag every ``STOP_SYNC_EVERY`` steps, so all
of them stop at the same step. The final evaluation has no steps to stop between: there a signal
raises at once (EvaluationInterrupted), since the last epoch's checkpoint is already written.
"""
import signal
from contextlib import contextmanager

from c100.distributed import agree_max

STOP_SYNC_EVERY = 10  # under torchrun: steps between the ranks' agreement on a SIGINT/SIGTERM stop
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint of the exact position was written."""

    def __init__(self, run_dir, signum):
        self.run_dir, self.signum = run_dir, signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; a checkpoint was written. "
                         f"Continue with: c100 train --resume {run_dir}")


class EvaluationInterrupted(TrainingInterrupted):
    """SIGINT/SIGTERM during the final evaluation: every epoch is trained and its checkpoint written."""

    def __init__(self, run_dir, signum, last):
        self.run_dir, self.signum = run_dir, signum
        Exception.__init__(self, f"stopped by {signal.Signals(signum).name} during the final evaluation; every "
                                 f"epoch is trained and saved in {last}. Finish the evaluation (summary.json, "
                                 f"predictions.npz) with: c100 train --resume {run_dir} (`c100 eval {run_dir}` "
                                 f"gives the test error alone)")


@contextmanager
def _handling(handler):
    old = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.signum = None

    @contextmanager
    def installed(self):
        def handler(signum, frame):
            self.signum = signum

        with _handling(handler):
            yield self

    def requested(self, step, env, device):
        """The signal number if training should stop after ``step``; under torchrun every rank gives
        the same answer at the same step (they agree every ``STOP_SYNC_EVERY`` steps), so all save together."""
        if not env.enabled:
            return self.signum
        if step % STOP_SYNC_EVERY:
            return None
        return agree_max(self.signum or 0, env, device) or None


@contextmanager
def interruptible_final_eval(run_dir, last):
    """The final evaluation has no steps to check a flag between: SIGINT/SIGTERM stop it at once,
    with a message saying how to finish it (``last``, the last epoch's checkpoint, is already written)."""
    def handler(signum, frame):
        raise EvaluationInterrupted(run_dir, signum, last)

    with _handling(handler):
        yield
