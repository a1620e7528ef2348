"""One recurrent classifier; the recurrent cell (rnn, lstm, gru) is a parameter.

Two execution paths compute the same function:

* ``packed``: each layer and direction runs on a PackedSequence (cuDNN's fast path on GPUs).
* ``padded``: each layer and direction runs on the padded batch and the final state is read at
  position ``length - 1``. Pads sit after every review, so a forward pass never reads them
  before that position. The CPU's bf16 (oneDNN/AMX) kernels only take this path: packing drops
  them to a slow fallback (about 15x slower, ../shared/NOTES.md).

The backward direction of a bidirectional model runs over each review reversed *within its
length*, so it too starts at the last real token, never at padding. Layers and directions are
separate single-layer modules so both paths share the same parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import UserError
from .dropout import Dropout, dropout
from .fast_rnn import tanh_rnn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
PATHS = ("packed", "padded")


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x`` [batch, time, ...] in its first ``length`` steps; pads stay put."""
    time = x.shape[1]
    steps = torch.arange(time, device=x.device).unsqueeze(0)  # [1, T]
    lengths = lengths.to(x.device).unsqueeze(1)  # [B, 1]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # [B, T]
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


class RecurrentClassifier(nn.Module):
    """Embedding -> embedding dropout -> recurrent layers (output dropout between them) -> output
    dropout -> linear head with ``num_classes`` logits.

    Two more regularizers, both 0 (off) by default: ``word_dropout`` replaces each real training
    token by ``<unk>`` with that probability (a whole word forgotten, not a few of its embedding's
    features), and ``weight_drop`` is DropConnect on the hidden-to-hidden weights (AWD-LSTM): one
    mask per batch, shared by every time step. Every regularizer acts in training mode only.
    """

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        pad_index: int = 1,
        embedding_dim: int = 100,
        hidden_dim: int = 256,
        num_layers: int = 1,
        bidirectional: bool = False,
        embedding_dropout: float = 0.6,
        output_dropout: float = 0.6,
        num_classes: int = 2,
        word_dropout: float = 0.0,
        weight_drop: float = 0.0,
        unk_index: int = 0,
    ):
        super().__init__()
        if cell not in CELLS:
            raise UserError(f"unknown cell {cell!r}: choose one of {', '.join(CELLS)}")
        for name, value in (("embedding_dropout", embedding_dropout), ("output_dropout", output_dropout),
                            ("word_dropout", word_dropout), ("weight_drop", weight_drop)):
            if not 0.0 <= value < 1.0:
                raise UserError(f"{name} must be in [0, 1), got {value}")
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                            ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
            if value < 1:
                raise UserError(f"{name} must be >= 1, got {value}")
        self.cell = cell
        self.directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        # The seed's dropout sat on the embeddings only. Output dropout (between layers and
        # before the head) acts in a 1-layer model too, unlike nn.LSTM's own `dropout` argument.
        self.embedding_dropout = Dropout(embedding_dropout)
        self.output_dropout = Dropout(output_dropout)
        self.word_dropout, self.weight_drop = word_dropout, weight_drop
        self.pad_index, self.unk_index = pad_index, unk_index
        self.layers = nn.ModuleList()
        for layer in range(num_layers):
            input_dim = embedding_dim if layer == 0 else hidden_dim * self.directions
            self.layers.append(nn.ModuleList(
                CELLS[cell](input_dim, hidden_dim, batch_first=True) for _ in range(self.directions)))
        self.head = nn.Linear(hidden_dim * self.directions, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, path: str = "padded", *,
                lengths_cpu: torch.Tensor | None = None, recurrent_fp32: bool = False) -> torch.Tensor:
        """Logits [batch, num_classes] for ``tokens`` [batch, time] with true ``lengths`` [batch].

        On a GPU, give ``lengths`` on the GPU and ``lengths_cpu`` (what packing reads) as well: then
        the forward pass never waits for the GPU. ``recurrent_fp32`` runs the recurrent layers
        outside autocast (CUDA bf16, see runtime.py)."""
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        lengths = lengths.to(tokens.device)  # no-op when the caller moved them already
        lengths_cpu = lengths.cpu() if lengths_cpu is None else lengths_cpu
        if self.training and self.word_dropout:
            forget = torch.rand(tokens.shape, device=tokens.device) < self.word_dropout
            tokens = tokens.masked_fill(forget & (tokens != self.pad_index), self.unk_index)
        x = self.embedding_dropout(self.embedding(tokens))
        # Rows longest first (make_batch(longest_first=True)): packing then skips its own sort.
        longest_first = path == "packed" and bool((lengths_cpu[:-1] >= lengths_cpu[1:]).all())
        last = (lengths - 1).view(-1, 1, 1)
        for depth, directions in enumerate(self.layers):
            if depth:
                x = self.output_dropout(x)
            outputs, finals = [], []
            for direction, rnn in enumerate(directions):
                source = x if direction == 0 else reverse_within_length(x, lengths)
                out = self._run(rnn, source, lengths_cpu, path, longest_first, recurrent_fp32)
                # Final state = output at the last real step (for the reversed input: the state
                # after reading the review backwards down to its first token).
                finals.append(out.gather(1, last.expand(-1, 1, out.shape[2])).squeeze(1))
                outputs.append(out if direction == 0 else reverse_within_length(out, lengths))
            if depth + 1 < len(self.layers):
                x = torch.cat(outputs, dim=2)
        return self.head(self.output_dropout(torch.cat(finals, dim=1)))

    def _run(self, rnn: nn.Module, x: torch.Tensor, lengths_cpu: torch.Tensor, path: str, longest_first: bool = False,
             recurrent_fp32: bool = False) -> torch.Tensor:
        if recurrent_fp32:
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self._run(rnn, x.float(), lengths_cpu, path, longest_first)
        # DropConnect: the cell runs with a dropped copy of its hidden-to-hidden matrix
        # (functional_call swaps the parameter for this call only), so the fused kernels (oneDNN
        # bf16 on CPU, cuDNN on GPU) still run the whole sequence: no Python loop over time steps.
        dropped = ({"weight_hh_l0": dropout(rnn.weight_hh_l0, self.weight_drop)}
                   if self.training and self.weight_drop else None)

        def call(inputs):
            return functional_call(rnn, dropped, (inputs,), strict=False) if dropped else rnn(inputs)

        if path == "padded" and self.cell == "rnn" and x.device.type == "cpu":
            # nn.RNN's CPU loop is op by op; this one does the work of all steps at once where it can.
            weights = {**dict(rnn.named_parameters()), **(dropped or {})}
            return tanh_rnn(x, *(weights[f"{kind}_l0"] for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        if path == "padded":
            return call(x)[0]
        packed = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=longest_first)
        out, _ = call(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
