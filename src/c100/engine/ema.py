"""Exponential moving average (EMA) of a model's weights, updated after every optimizer step.

    ema = EMA(model, decay=0.999, warmup=True)
    ...; optimizer.step(); ema.update(model, step)    # step: optimizer steps taken before this one

After the update at step t: ema = d_t * ema + (1 - d_t) * weights, with d_t = decay, or
min(decay, (1 + t) / (10 + t)) with ``warmup`` (the num_updates rule of TensorFlow's
ExponentialMovingAverage), so that an early EMA is not dominated by the random initial weights.
Buffers (BatchNorm running statistics, counters) are copied from the model, not averaged. The
average lives on the model's device, in its dtype; ``module`` is a plain model in eval mode that
evaluation and checkpoints use (checkpoint key "ema", which ``c100 eval`` prefers).
"""
import copy

import torch
import torch.nn as nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = False):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int):
        mine, theirs = list(self.module.parameters()), list(model.parameters())
        # lerp(a, b, w) = a + w (b - a); torch computes it as b - (b - a)(1 - w) for w >= 0.5, so decay 0
        # gives the weights exactly
        torch._foreach_lerp_(mine, theirs, 1.0 - self.decay_at(step))
        # one foreach op for all buffers, not one copy_ launch each (60 for resnet18, 1,086 for
        # pyramidnet272: on CUDA each launch costs a few microseconds of a step of a few milliseconds)
        buffers = list(self.module.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(model.buffers()))

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state):
        self.module.load_state_dict(state)
