import numpy as np

from sentiment_core.data.batching import batch_indices, eval_batches, iterate_batches, make_batch, truncate_ids


def test_every_review_once_per_epoch_and_reshuffled(tiny_corpus):
    lengths = tiny_corpus.train.lengths
    epoch1 = batch_indices(lengths, 32, shuffle=True, seed=7, epoch=1)
    assert sorted(np.concatenate(epoch1).tolist()) == list(range(len(lengths)))
    again = batch_indices(lengths, 32, shuffle=True, seed=7, epoch=1)
    assert all((a == b).all() for a, b in zip(epoch1, again))
    epoch2 = batch_indices(lengths, 32, shuffle=True, seed=7, epoch=2)
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(epoch1, epoch2))


def test_bucketing_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 1000, size=3200)
    bucketed = batch_indices(lengths, 32, shuffle=True, seed=0)
    padded = sum(len(b) * lengths[b].max() for b in bucketed)
    shuffled = rng.permutation(len(lengths))
    padded_random = sum(32 * lengths[shuffled[i:i + 32]].max() for i in range(0, len(lengths), 32))
    assert padded < 0.6 * padded_random
    assert padded < 1.1 * lengths.sum()


def test_evaluation_batches_keep_to_their_rows_and_padded_tokens_and_cut_padding():
    # IMDB-like lengths: most reviews short, a long tail.
    lengths = np.random.default_rng(3).lognormal(5.2, 0.7, size=5000).astype(np.int64) + 1
    budget = 32768
    batches = eval_batches(lengths, 256, budget)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    in_order = lengths[np.concatenate(batches)]
    assert (np.diff(in_order) >= 0).all()  # sorted by length across batches
    for batch in batches:
        assert 1 <= len(batch) <= 256
        assert len(batch) * lengths[batch].max() <= budget or len(batch) == 1
    assert any(len(b) == 256 for b in batches) and any(len(b) < 64 for b in batches)
    # Packed into the budget greedily: the next review would not have fitted.
    for batch, following in zip(batches, batches[1:]):
        assert len(batch) == 256 or (len(batch) + 1) * lengths[following[0]] > budget
    fixed = eval_batches(lengths, 256)
    assert [b.tolist() for b in fixed] == [b.tolist() for b in batch_indices(lengths, 256, shuffle=False)]

    def padded(batches):
        return sum(len(b) * lengths[b].max() for b in batches)

    assert padded(batches) < 0.9 * padded(fixed)


def test_a_review_longer_than_the_budget_is_a_batch_of_its_own():
    lengths = np.array([5, 1, 3, 100, 7, 2, 50, 9])
    batches = eval_batches(lengths, 3, 20)
    assert [lengths[b].tolist() for b in batches] == [[1, 2, 3], [5, 7], [9], [50], [100]]


def test_batches_are_padded_after_each_review_and_truncate(tiny_corpus):
    pad = tiny_corpus.vocab.pad_index
    for batch in iterate_batches(tiny_corpus.valid, 50, pad, shuffle=False):
        for row, length in zip(batch.tokens, batch.lengths):
            assert (row[length:] == pad).all() and (row[:length] != pad).all()
    lengths = [int(b.tokens.shape[1]) for b in iterate_batches(tiny_corpus.valid, 50, pad, shuffle=False, max_len=20)]
    assert max(lengths) == 20


def test_head_and_tail_truncation_keep_the_first_or_last_tokens(tiny_corpus):
    split, pad = tiny_corpus.valid, tiny_corpus.vocab.pad_index
    long = np.array([i for i in range(len(split)) if split.lengths[i] > 30][:6])
    short = int(np.argmin(split.lengths))
    for side, cut in (("head", lambda ids: ids[:30]), ("tail", lambda ids: ids[-30:])):
        batch = make_batch(split, np.append(long, short), pad, max_len=30, truncate=side)
        for row, index in zip(batch.tokens, long):
            assert row.tolist() == cut(split.review(index)).tolist()
            assert truncate_ids(split.review(index).tolist(), 30, side) == cut(split.review(index)).tolist()
        # A review shorter than max_len is whole either way, padded after its last token.
        length = int(split.lengths[short])
        assert batch.tokens[-1, :length].tolist() == split.review(short).tolist()
        assert (batch.tokens[-1, length:] == pad).all()


def test_the_help_names_the_evaluation_budget_the_loop_uses():
    from sentiment_core.cli import HELP
    from sentiment_core.training.loop import EVAL_PADDED_TOKENS

    assert f"{EVAL_PADDED_TOKENS:,} tokens" in HELP["eval_batch_size"]
