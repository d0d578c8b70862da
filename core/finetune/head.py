"""The loss of a causal LM computed only where there are labels, in chunks, with the gradient formed on the way.

Gemma 3's output projection is 262,144 x 640: on CPU it costs more than the 18 transformer layers together.
The model's own loss projects every position; TRL's chunked head (on devices without Triton) projects every
position too and recomputes each tile in the backward. Here only labelled positions are projected, each chunk's
logits are turned into the gradient w.r.t. the hidden states at once (softmax minus one-hot, times the frozen
weight), and only that (N, H) gradient is kept for the backward: two matrix products per chunk instead of three,
and a few hundred MB of logits at most.
"""

import torch

CHUNK_TOKENS = 256  # (256, 262144) fp32 logits = 268 MB: the largest buffer of the loss


class _LabelledHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        # hidden (N, H) at labelled positions; weight (V, H), frozen; targets (N,)
        n_all = hidden.shape[0]
        grad = torch.empty_like(hidden)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        buffer = torch.empty((min(chunk, n_all), weight.shape[0]), dtype=hidden.dtype, device=hidden.device)
        for start in range(0, n_all, chunk):
            h, t = hidden[start : start + chunk], targets[start : start + chunk]
            logits = buffer[: h.shape[0]]  # (n, V)
            torch.mm(h, weight.t(), out=logits)
            target_logit = logits.gather(1, t[:, None]).squeeze(1)
            peak = logits.amax(dim=1, keepdim=True)
            logits.sub_(peak).exp_()
            norm = logits.sum(dim=1, keepdim=True)
            total += (peak.squeeze(1) + norm.squeeze(1).log() - target_logit).float().sum()
            logits.div_(norm)  # softmax
            logits[torch.arange(h.shape[0], device=h.device), t] -= 1  # d(-log p_t)/d logits
            torch.mm(logits, weight, out=grad[start : start + chunk])  # (n, H)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype), None, None, None


def _loss_only(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.shape[0], chunk):
        logits = hidden[start : start + chunk] @ weight.t()
        total += torch.nn.functional.cross_entropy(logits.float(), targets[start : start + chunk], reduction="sum")
    return total


def labelled_nll_sum(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk: int = CHUNK_TOKENS
) -> tuple[torch.Tensor, int]:
    """Sum of next-token negative log-likelihoods over the labelled positions.

    Args:
        hidden: Final hidden states, (B, T, H).
        weight: Output projection (tied embedding) of shape (V, H); must not require grad.
        labels: (B, T) token ids, -100 where no loss is taken (not yet shifted).
        chunk: Tokens projected at once.

    Returns:
        The summed loss (fp32 scalar, differentiable w.r.t. ``hidden``) and the number of labelled tokens.
    """
    shifted = labels[:, 1:].reshape(-1)  # position t predicts token t+1
    keep = shifted != -100
    h = hidden[:, :-1].reshape(-1, hidden.shape[-1])[keep]  # (N, H)
    targets = shifted[keep]
    count = int(keep.sum())
    if count == 0:
        return hidden.sum() * 0.0, 0  # stays attached to the graph: an all-masked batch adds zero
    if torch.is_grad_enabled() and hidden.requires_grad:
        return _LabelledHeadLoss.apply(h, weight.detach(), targets, chunk), count
    return _loss_only(h, weight, targets, chunk), count
