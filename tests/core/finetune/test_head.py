"""The labelled-positions loss equals cross-entropy over full logits, in value and gradient."""

import torch

from core.finetune.head import labelled_nll_sum


def reference(hidden, weight, labels):
    logits = hidden[:, :-1] @ weight.t()
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, weight.shape[0]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
    )


def test_value_and_gradient_match_full_cross_entropy_across_chunk_boundaries():
    torch.manual_seed(0)
    hidden = torch.randn(3, 11, 16, dtype=torch.float64)
    weight = torch.randn(50, 16, dtype=torch.float64)
    labels = torch.randint(0, 50, (3, 11))
    labels[:, :4] = -100  # masked prompts
    labels[1, 7] = -100
    h_ours = hidden.clone().requires_grad_(True)
    h_ref = hidden.clone().requires_grad_(True)
    ours, count = labelled_nll_sum(h_ours, weight, labels, chunk=4)  # several chunks, a ragged last one
    expected = reference(h_ref, weight, labels)
    ours.backward()
    expected.backward()
    assert count == int((labels[:, 1:] != -100).sum())
    torch.testing.assert_close(ours.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(h_ours.grad, h_ref.grad, rtol=1e-6, atol=1e-8)


def test_no_grad_path_gives_the_same_value():
    torch.manual_seed(1)
    hidden, weight = torch.randn(2, 9, 8), torch.randn(30, 8)
    labels = torch.randint(0, 30, (2, 9))
    with torch.no_grad():
        value, _ = labelled_nll_sum(hidden, weight, labels, chunk=5)
    torch.testing.assert_close(value, reference(hidden, weight, labels), rtol=1e-5, atol=1e-5)


def test_all_masked_batch_contributes_zero_and_backpropagates():
    hidden = torch.randn(1, 5, 8, requires_grad=True)
    value, count = labelled_nll_sum(hidden, torch.randn(30, 8), torch.full((1, 5), -100))
    value.backward()
    assert count == 0 and value.item() == 0.0 and torch.count_nonzero(hidden.grad) == 0
