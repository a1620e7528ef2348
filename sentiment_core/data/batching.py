"""Length-bucketed batches, as the seed's BucketIterator made them.

Reviews of similar length share a batch, so padding (wasted compute) stays small even at full
review length. Training batches are reshuffled every epoch from (seed, epoch), not from global
random state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .corpus import EncodedSplit

# Reviews are sorted by length inside pools of this many batches, then the batches are shuffled.
POOL_BATCHES = 100


@dataclass
class Batch:
    tokens: torch.Tensor  # [batch, max_length] int64, padded with pad_index after each review
    lengths: torch.Tensor  # [batch] int64, on the CPU (pack_padded_sequence wants it there)
    labels: torch.Tensor  # [batch] int64
    indices: np.ndarray | None = None  # the split's reviews in this batch, in row order
    device_lengths: torch.Tensor | None = None  # ``lengths`` on the device of ``tokens``, moved once

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Batch:
        """On ``device`` (:func:`to_device`)."""
        return Batch(to_device(self.tokens, device), self.lengths, to_device(self.labels, device), self.indices,
                     to_device(self.lengths, device))


def copies_without_waiting(device: torch.device) -> bool:
    """Whether host-to-``device`` copies may be non-blocking: on CUDA only, from pinned memory,
    where the copy then overlaps the GPU's work. Not on MPS: non-blocking copies from the CPU to
    Apple GPUs have returned wrong data (pytorch#139550, #189690), which would silently scramble
    predictions and accuracy. The CPU needs no copy."""
    return device.type == "cuda"


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``, copied as :func:`copies_without_waiting` allows."""
    if device.type == "cpu":
        return tensor
    if copies_without_waiting(device):
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def make_batch(split: EncodedSplit, indices: np.ndarray, pad_index: int, max_len: int | None = None,
               truncate: str = "head", longest_first: bool = False) -> Batch:
    """Reviews ``indices`` of ``split`` padded after their last token; reviews longer than
    ``max_len`` keep their first (``truncate="head"``) or last (``"tail"``) ``max_len`` tokens.
    ``longest_first`` orders the rows by length, longest first, as a packed sequence wants them
    (then packing needs no sort of its own, whose indices would be copied to the GPU)."""
    indices = np.asarray(indices)
    if longest_first:
        cut = split.lengths[indices] if max_len is None else np.minimum(split.lengths[indices], max_len)
        indices = indices[np.argsort(-cut, kind="stable")]
    full = split.lengths[indices]
    lengths = full if max_len is None else np.minimum(full, max_len)
    tokens = np.full((len(indices), int(lengths.max())), pad_index, dtype=np.int64)
    for row, (index, length, whole) in enumerate(zip(indices, lengths, full)):
        start = split.offsets[index] + (whole - length if truncate == "tail" else 0)
        tokens[row, :length] = split.flat[start : start + length]
    return Batch(torch.from_numpy(tokens), torch.from_numpy(lengths.astype(np.int64)),
                 torch.from_numpy(split.labels[indices]), indices)


def batch_indices(lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0) -> list[np.ndarray]:
    """Index arrays, one per batch. Evaluation (shuffle=False) sorts everything by length
    (:func:`eval_batches` with no token budget)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not shuffle:
        return eval_batches(lengths, batch_size)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def eval_batches(lengths: np.ndarray, max_rows: int, max_padded_tokens: int | None = None) -> list[np.ndarray]:
    """Evaluation batches: every review once, sorted by length, at most ``max_rows`` per batch and,
    given ``max_padded_tokens``, at most that many tokens once padded (rows x the longest review;
    a review longer than that alone is a batch of its own).

    A fixed row count puts the long tail of review lengths into few wide batches padded to their
    longest review: an epoch's evaluation of IMDB computed 24% more tokens than it read at 256
    reviews per batch, 5.5% with a budget of 32,768. The padded path computes every padded step,
    so there a budget of tokens keeps short reviews in large batches and long ones in small ones
    (docs/speed.md, "Evaluation batches")."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    order = np.argsort(lengths, kind="stable")
    if max_padded_tokens is None:
        return [order[i : i + max_rows] for i in range(0, len(order), max_rows)]
    sorted_lengths = lengths[order]
    batches, start = [], 0
    while start < len(order):
        # Sorted ascending, the batch's last review is its longest, so k rows pad to k x the k-th
        # length: that only grows with k, and the rows that fit are a prefix, counted.
        rows = np.arange(1, min(max_rows, len(order) - start) + 1)
        fits = rows * sorted_lengths[start : start + len(rows)] <= max_padded_tokens
        end = start + max(1, int(np.count_nonzero(fits)))
        batches.append(order[start:end])
        start = end
    return batches


def iterate_batches(split: EncodedSplit, batch_size: int, pad_index: int, *, shuffle: bool,
                    seed: int = 0, epoch: int = 0, max_len: int | None = None,
                    truncate: str = "head") -> Iterator[Batch]:
    for indices in batch_indices(split.lengths, batch_size, shuffle=shuffle, seed=seed, epoch=epoch):
        yield make_batch(split, indices, pad_index, max_len, truncate)


def truncate_ids(ids: list[int], max_len: int | None, truncate: str = "head") -> list[int]:
    """One review's token ids cut as :func:`make_batch` cuts them."""
    if max_len is None or len(ids) <= max_len:
        return ids
    return ids[-max_len:] if truncate == "tail" else ids[:max_len]
