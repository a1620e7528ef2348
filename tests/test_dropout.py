"""The CPU dropout's cheaper mask is nn.Dropout's: Bernoulli(keep) per element, kept ones scaled by
1 / keep, the gradient the same mask times the upstream gradient, reproducible from the seed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sentiment_core.training.dropout import Dropout, dropout
from sentiment_core.training.model import RecurrentClassifier


@pytest.mark.parametrize("p", [0.1, 0.6, 0.9])
def test_keep_rate_and_scale_match_nn_dropout(p):
    n = 400_000
    ours = Dropout(p).train()(torch.ones(n))
    theirs = nn.Dropout(p).train()(torch.ones(n))
    keep = 1 - p
    for out in (ours, theirs):
        values = out.unique()
        assert values[0] == 0 and len(values) == 2 and values[1].item() == pytest.approx(1 / keep)
        kept = (out != 0).double().mean().item()
        # Five standard errors of a Bernoulli(keep) mean over n draws: fails by chance about once in 3 million.
        assert abs(kept - keep) < 5 * math.sqrt(keep * p / n), (kept, keep)
    # Unbiased, as nn.Dropout: the mean of the output is the mean of the input.
    assert abs(ours.double().mean().item() - 1.0) < 5 * math.sqrt(p / keep / n)


def test_the_gradient_is_the_mask_times_the_upstream_gradient():
    x = torch.randn(32, 50, 16, requires_grad=True)
    out = dropout(x, 0.6)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    mask = out.detach() / x.detach()  # 0 or 1 / keep, element by element
    assert torch.equal(x.grad == 0, out.detach() == 0)
    torch.testing.assert_close(x.grad, upstream * mask)


def test_eval_mode_and_p_zero_are_the_identity_and_the_dtype_is_kept():
    x = torch.randn(4, 5)
    assert Dropout(0.6).eval()(x) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    assert dropout(x.bfloat16(), 0.5).dtype == torch.bfloat16


def test_same_seed_same_mask_and_the_model_has_no_new_state():
    torch.manual_seed(7)
    first = dropout(torch.ones(1000), 0.5)
    torch.manual_seed(7)
    assert torch.equal(first, dropout(torch.ones(1000), 0.5))
    # Checkpoints saved with nn.Dropout load as they did: dropout holds no parameters or buffers.
    model = RecurrentClassifier("lstm", 50, hidden_dim=8, embedding_dim=4)
    assert set(model.state_dict()) == {k for k in model.state_dict() if "dropout" not in k}
    assert "p=0.6" in repr(model.embedding_dropout)
