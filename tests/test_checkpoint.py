import pytest
import torch

from sentiment_core.errors import UserError
from sentiment_core.training.checkpoint import load_checkpoint, predict, save_checkpoint
from sentiment_core.training.loop import evaluate, train


@pytest.fixture(scope="module")
def trained(tiny_config, tiny_corpus, tmp_path_factory):
    result = train(tiny_config, tiny_corpus, progress=False)
    directory = save_checkpoint(tmp_path_factory.mktemp("ckpt"), result.model, tiny_corpus.vocab, tiny_config)
    return result, directory


def test_checkpoint_round_trip_gives_the_same_accuracy(trained, tiny_corpus):
    result, directory = trained
    loaded = load_checkpoint(directory)
    assert loaded.config.max_len == 80 and loaded.vocab.itos == tiny_corpus.vocab.itos
    assert evaluate(loaded.model, tiny_corpus.test, result.runtime, max_len=80) == \
        evaluate(result.model, tiny_corpus.test, result.runtime, max_len=80)


def test_weights_are_plain_tensors_loadable_with_weights_only(trained):
    _, directory = trained
    state = torch.load(directory / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_predict_prints_a_label_and_probability(trained):
    _, directory = trained
    results = predict(load_checkpoint(directory), ["A wonderful, moving film.", "Dull and far too long."])
    for label, probability in results:
        assert label in ("negative", "positive") and 0.5 <= probability <= 1.0
    with pytest.raises(UserError, match="review 2 is empty"):
        predict(load_checkpoint(directory), ["fine", "   "])


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not a checkpoint: missing weights.pt"):
        load_checkpoint(tmp_path)
