"""A tanh RNN layer for the CPU, computed the way cuDNN computes it.

PyTorch sends only LSTMs to oneDNN's fused CPU kernels; ``nn.RNN`` runs an op-by-op loop whose
backward goes through an autograd node per op and step, and it ran at 1.22x the LSTM's speed for
a quarter of the LSTM's arithmetic. Here, for one layer and direction over a padded batch:

* forward: the input projection of every step as one matrix product, then per step one small
  product added in place and a tanh in place (two ops, no allocation);
* backward through time: per step one small product and one multiply; then the weight gradients
  as one product over all steps, and the input gradient as one more.

The function equals ``nn.RNN(nonlinearity="tanh")`` started from a zero state (to rounding), in
float32 or, under CPU autocast, in its lower precision like ``nn.RNN`` under autocast.
"""

from __future__ import annotations

import torch


class _TanhRNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight_ih, weight_hh, bias_ih, bias_hh):
        # x: [T, B, I], time-major, so that each step's rows are one contiguous block.
        steps, batch, _ = x.shape
        out = torch.addmm(bias_ih + bias_hh, x.reshape(steps * batch, -1), weight_ih.t())
        out = out.view(steps, batch, -1)  # the input projection, then overwritten step by step
        hidden_t = weight_hh.t()
        # The steps as views made once (indexing out[t] in the loop costs a call per step).
        rows = out.unbind(0)
        state = rows[0].tanh_()
        for row in rows[1:]:
            state = row.addmm_(state, hidden_t).tanh_()
        ctx.save_for_backward(x, weight_ih, weight_hh, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight_ih, weight_hh, out = ctx.saved_tensors
        steps, batch, hidden = out.shape
        # grad[t]: the loss's gradient with respect to step t's pre-activation, built in place
        # from the last step back: (grad_out[t] + grad[t + 1] @ W_hh) * (1 - out[t]^2).
        grad = torch.empty_like(out).copy_(grad_out)  # contiguous, whatever grad_out's layout
        # tanh's derivative 1 - out^2 in one pass and one buffer (1 - out * out takes two of each).
        derivative = torch.addcmul(torch.ones((), dtype=out.dtype), out, out, value=-1)
        grads, derivatives = grad.unbind(0), derivative.unbind(0)
        later = grads[steps - 1].mul_(derivatives[steps - 1])
        for t in range(steps - 2, -1, -1):
            later = grads[t].addmm_(later, weight_hh).mul_(derivatives[t])
        flat = grad.view(steps * batch, hidden)
        grad_x = (flat @ weight_ih).view(steps, batch, -1)
        grad_weight_ih = flat.t() @ x.reshape(steps * batch, -1)
        grad_weight_hh = grad[1:].reshape(-1, hidden).t() @ out[:-1].reshape(-1, hidden)
        grad_bias = flat.sum(0)
        # Two tensors: autograd may hand each to a bias as its .grad, and the optimizer scales in place.
        return grad_x, grad_weight_ih, grad_weight_hh, grad_bias, grad_bias.clone()


def tanh_rnn(x: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor, bias_ih: torch.Tensor,
             bias_hh: torch.Tensor) -> torch.Tensor:
    """Outputs [batch, time, hidden] of a one-layer tanh RNN over ``x`` [batch, time, input] from a
    zero state: ``nn.RNN(batch_first=True)(x)[0]`` with these weights. Under CPU autocast it computes
    in the autocast dtype (as ``nn.RNN`` does there) and returns that dtype; gradients reach the
    weights in their own dtype."""
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    with torch.autocast("cpu", enabled=False):
        args = [t.to(dtype) for t in (x.transpose(0, 1).contiguous(), weight_ih, weight_hh, bias_ih, bias_hh)]
        return _TanhRNN.apply(*args).transpose(0, 1)
