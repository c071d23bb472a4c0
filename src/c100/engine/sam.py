"""Sharpness-aware minimisation as a two-pass step.

Foret, Kleiner, Mobahi, Neyshabur. "Sharpness-Aware Minimization for Efficiently Improving
Generalization", ICLR 2021 (arXiv:2010.01412). With the gradient g at the weights w:
e = rho * g / ||g||_2 (over all parameters), the gradient is taken again at w + e, and the base
optimizer (SGD here, with its momentum and weight decay) steps from w with that gradient.

Choices: the second pass does not update BatchNorm running statistics (they see the same batch
twice otherwise); under DDP both passes' gradients are all-reduced, so e comes from the global
batch's gradient and the step is the same at any world size. fp16 with a GradScaler is refused by
the config (the scaled first-pass gradient would need unscaling twice); use bf16.
"""
from contextlib import contextmanager, nullcontext

import torch
import torch.nn as nn


@contextmanager
def frozen_bn_stats(model: nn.Module):
    """BatchNorm layers normalise with the batch's statistics; their running statistics are saved
    before and put back after, so the pass leaves them as they were.

    Saving and restoring, rather than switching ``track_running_stats`` off for the pass, keeps the
    modules' attributes constant: torch.compile guards on them, and toggling recompiled the model
    once (issue 19, defect 4). The result is the same: BatchNorm in training mode normalises with
    the batch's statistics either way."""
    stats = [t for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats for t in (m.running_mean, m.running_var, m.num_batches_tracked)
             if t is not None]
    saved = [t.clone() for t in stats]
    try:
        yield
    finally:
        if stats:
            with torch.no_grad():
                torch._foreach_copy_(stats, saved)


def sam_step(model, optimizer, x, y, loss_fn, rho, autocast=nullcontext, grad_clip=0.0):
    """One SAM step; returns (loss, logits) of the first pass, detached, without a host sync."""
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        logits = model(x)
        loss = loss_fn(logits, y)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    grads = [p.grad for p in params]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    eps = torch._foreach_mul(grads, rho / (norm + 1e-12))
    with torch.no_grad():
        torch._foreach_add_(params, eps)
    optimizer.zero_grad(set_to_none=True)
    with frozen_bn_stats(model):  # restored after the backward, which reads the statistics (CPU kernel)
        with autocast():
            perturbed = loss_fn(model(x), y)
        perturbed.backward()
    with torch.no_grad():
        torch._foreach_sub_(params, eps)
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach(), logits.detach()
