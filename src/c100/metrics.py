"""Metrics as pure functions of (logits, labels). Errors are in percent."""
import torch
import torch.nn.functional as F


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[torch.Tensor]:
    """Number of samples whose label is among the top-k logits, for each k (tensors, no host sync)."""
    top = logits.topk(max(ks), dim=1).indices
    hit = top.eq(labels[:, None])
    return [hit[:, :k].any(1).sum() for k in ks]


def summarize_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Top-1/top-5 error (percent) and mean cross-entropy of full-set logits."""
    logits = logits.float()
    c1, c5 = topk_correct(logits, labels)
    n = len(labels)
    return {"top1_err": round(100.0 * (1 - c1.item() / n), 4), "top5_err": round(100.0 * (1 - c5.item() / n), 4),
            "loss": round(F.cross_entropy(logits, labels).item(), 6), "n": n}
