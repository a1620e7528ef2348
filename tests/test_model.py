import pytest
import torch

from sentiment_core.errors import UserError
from sentiment_core.training.model import RecurrentClassifier, reverse_within_length


def _batch(vocab=50, pad=1):
    torch.manual_seed(0)
    lengths = torch.tensor([7, 3, 5, 1])
    tokens = torch.full((4, 9), pad)  # 2 columns of padding beyond the longest review
    for row, length in enumerate(lengths):
        tokens[row, :length] = torch.randint(2, vocab, (int(length),))
    return tokens, lengths


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_packed_and_padded_paths_give_the_same_logits(cell, bidirectional, num_layers):
    model = RecurrentClassifier(cell, 50, hidden_dim=16, embedding_dim=8, num_layers=num_layers,
                                bidirectional=bidirectional).eval()
    tokens, lengths = _batch()
    packed = model(tokens, lengths, path="packed")
    padded = model(tokens, lengths, path="padded")
    assert packed.shape == (4, 2)
    torch.testing.assert_close(padded, packed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_a_reviews_logits(bidirectional):
    model = RecurrentClassifier("lstm", 50, hidden_dim=16, embedding_dim=8, bidirectional=bidirectional).eval()
    tokens, lengths = _batch()
    alone = model(tokens[1:2, :3], lengths[1:2])  # the 3-token review without any padding
    in_batch = model(tokens, lengths)[1:2]
    torch.testing.assert_close(in_batch, alone, rtol=1e-5, atol=1e-6)


def test_reverse_within_length_keeps_pads_in_place():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    assert reverse_within_length(x, torch.tensor([3, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


@pytest.mark.parametrize("knob", ["embedding_dropout", "output_dropout", "word_dropout", "weight_drop"])
def test_each_dropout_acts_in_training_mode_only(knob):
    # The other knobs are 0, so any randomness comes from this one.
    other = {"embedding_dropout": 0.0, "output_dropout": 0.0, "word_dropout": 0.0, "weight_drop": 0.0}
    model = RecurrentClassifier("lstm", 50, hidden_dim=16, embedding_dim=8, **{**other, knob: 0.5})
    tokens, lengths = _batch()
    model.train()
    assert not torch.equal(model(tokens, lengths), model(tokens, lengths))
    model.eval()
    assert torch.equal(model(tokens, lengths), model(tokens, lengths))
    # With both knobs at 0, training mode is deterministic too: nothing else drops.
    quiet = RecurrentClassifier("lstm", 50, hidden_dim=16, embedding_dim=8, **other).train()
    assert torch.equal(quiet(tokens, lengths), quiet(tokens, lengths))


def test_word_dropout_replaces_real_tokens_by_unk_and_leaves_pads():
    model = RecurrentClassifier("lstm", 50, pad_index=1, unk_index=0, hidden_dim=16, embedding_dim=8,
                                embedding_dropout=0.0, output_dropout=0.0, word_dropout=0.999)
    seen = []
    model.embedding.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].clone()))
    tokens = torch.tensor([[5, 6, 7, 1, 1], [8, 9, 10, 11, 12]])
    lengths = torch.tensor([3, 5])
    model.train()(tokens, lengths)
    assert seen[-1].tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]
    model.eval()(tokens, lengths)
    assert torch.equal(seen[-1], tokens)


@pytest.mark.parametrize("path", ["padded", "packed"])
def test_weight_drop_masks_a_copy_and_trains_the_weights(path):
    torch.manual_seed(0)
    model = RecurrentClassifier("lstm", 50, hidden_dim=16, embedding_dim=8, embedding_dropout=0.0,
                                output_dropout=0.0, weight_drop=0.5).train()
    cell = model.layers[0][0]
    before = cell.weight_hh_l0.detach().clone()
    tokens, lengths = _batch()
    model(tokens, lengths, path=path).sum().backward()
    assert torch.equal(cell.weight_hh_l0.detach(), before)  # the parameter itself is never masked
    grad = cell.weight_hh_l0.grad
    # Dropped weights get no gradient this batch (about half of them); the rest do.
    assert 0.3 < (grad == 0).float().mean().item() < 0.7


def test_bad_arguments_are_clear():
    with pytest.raises(UserError, match="unknown cell 'transformer'"):
        RecurrentClassifier("transformer", 50)
    with pytest.raises(UserError, match="output_dropout"):
        RecurrentClassifier("lstm", 50, output_dropout=1.0)
