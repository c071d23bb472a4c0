"""The optimizer: SGD with momentum or Nesterov, weight decay optionally off for norms and biases."""
import torch


def param_groups(model, weight_decay, decay_norm_and_bias=True):
    """One group, or two: weights of convs/linears with decay, 1-D parameters (norms, biases) without."""
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model, cfg):
    groups = param_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def set_lr(optimizer, lr):
    for g in optimizer.param_groups:
        g["lr"] = lr
