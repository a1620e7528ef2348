"""The CPU tanh RNN (input projection for all steps at once, backward through time with the
weight gradients as one product) computes what nn.RNN computes: outputs and every gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sentiment_core.training.fast_rnn import tanh_rnn
from sentiment_core.training.model import RecurrentClassifier


def _outputs_and_gradients(model_or_rnn, run, *inputs, bf16=False):
    model_or_rnn.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = run(*inputs)
    upstream = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out.float() * upstream).sum().backward()
    return out.float().detach(), {name: p.grad.clone() for name, p in model_or_rnn.named_parameters()}


def _one_layer(rnn):
    return lambda x: tanh_rnn(x, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)


def test_one_layer_equals_nn_rnn_outputs_and_gradients():
    torch.manual_seed(0)
    rnn = nn.RNN(12, 24, batch_first=True)
    x = torch.randn(5, 17, 12)
    expected = _outputs_and_gradients(rnn, lambda x: rnn(x)[0], x)
    ours = _outputs_and_gradients(rnn, _one_layer(rnn), x)
    torch.testing.assert_close(ours[0], expected[0], rtol=1e-5, atol=1e-6)
    for name in expected[1]:
        torch.testing.assert_close(ours[1][name], expected[1][name], rtol=1e-5, atol=1e-5, msg=name)


def test_in_bf16_it_is_as_close_to_float32_as_nn_rnn_in_bf16():
    """Both round every step to bf16, in a different order: neither equals the other, so each is
    held to its distance from the float32 result, and ours may not be more than twice as far."""
    torch.manual_seed(0)
    rnn = nn.RNN(12, 24, batch_first=True)
    x = torch.randn(5, 17, 12)
    exact = _outputs_and_gradients(rnn, lambda x: rnn(x)[0], x)
    theirs = _outputs_and_gradients(rnn, lambda x: rnn(x)[0], x, bf16=True)
    ours = _outputs_and_gradients(rnn, _one_layer(rnn), x, bf16=True)

    def error(a, b):  # relative to the largest value
        return ((a - b).abs().max() / b.abs().max()).item()

    assert error(ours[0], exact[0]) <= max(2 * error(theirs[0], exact[0]), 0.01)
    for name in exact[1]:
        assert ours[1][name].dtype == torch.float32  # the weights' own dtype, also under autocast
        assert error(ours[1][name], exact[1][name]) <= max(2 * error(theirs[1][name], exact[1][name]), 0.01), name


def test_the_input_gradient_equals_nn_rnns():
    torch.manual_seed(1)
    rnn = nn.RNN(6, 10, batch_first=True)
    x = torch.randn(3, 9, 6, requires_grad=True)
    rnn(x)[0].pow(2).sum().backward()
    expected, x.grad = x.grad.clone(), None
    tanh_rnn(x, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_the_classifiers_padded_rnn_equals_its_packed_nn_rnn_in_gradients(bidirectional, num_layers):
    """The padded CPU path (this RNN, final state at length - 1) against the packed one (nn.RNN),
    on a batch with padding: the same logits and the same gradient for every parameter."""
    torch.manual_seed(2)
    model = RecurrentClassifier("rnn", 40, hidden_dim=16, embedding_dim=8, num_layers=num_layers,
                                bidirectional=bidirectional, embedding_dropout=0.0, output_dropout=0.0).train()
    lengths = torch.tensor([9, 6, 6, 2])
    tokens = torch.full((4, 11), 1)
    for row, length in enumerate(lengths):
        tokens[row, :length] = torch.randint(2, 40, (int(length),))
    padded = _outputs_and_gradients(model, lambda t, n: model(t, n, path="padded"), tokens, lengths)
    packed = _outputs_and_gradients(model, lambda t, n: model(t, n, path="packed"), tokens, lengths)
    torch.testing.assert_close(padded[0], packed[0], rtol=1e-5, atol=1e-6)
    for name in packed[1]:
        torch.testing.assert_close(padded[1][name], packed[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_weight_drop_reaches_the_hidden_weights_gradient():
    torch.manual_seed(3)
    model = RecurrentClassifier("rnn", 30, hidden_dim=8, embedding_dim=4, weight_drop=0.5).train()
    tokens, lengths = torch.randint(2, 30, (2, 5)), torch.tensor([5, 3])
    model(tokens, lengths).sum().backward()
    grad = model.layers[0][0].weight_hh_l0.grad
    assert (grad == 0).any() and (grad != 0).any()  # dropped connections get no gradient
