import numpy as np
import pytest

from sentiment_core.data.corpus import encode_splits, load_corpus
from sentiment_core.data.sources import load_splits
from sentiment_core.data.splits import Split, Splits
from sentiment_core.data.text import Vocabulary, basic_tokenizer, get_tokenizer, split_tokenizer
from sentiment_core.errors import UserError
from sentiment_core.training.config import TrainConfig


def test_split_tokenizer_is_the_seeds():
    assert split_tokenizer("Great  film.<br /><br />Loved IT") == ["great", "film.<br", "/><br", "/>loved", "it"]


def test_basic_tokenizer_drops_markup_and_separates_punctuation():
    assert basic_tokenizer("Great film.<br /><br />Didn't LOVE it!") == ["great", "film", ".", "didn't", "love", "it", "!"]


def test_unknown_tokenizer():
    with pytest.raises(UserError, match="unknown tokenizer"):
        get_tokenizer("spacy")


def test_vocabulary_counts_specials_and_ties(tmp_path):
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "c", "d"]], max_size=2)
    assert vocab.itos == ["<unk>", "<pad>", "a", "c"]  # a, c (2 each) beat b, d (1 each)
    assert vocab.encode(["a", "zzz"]) == [2, 0]
    assert Vocabulary.build([["a", "b", "a"]], min_freq=2).itos == ["<unk>", "<pad>", "a"]
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").itos == vocab.itos


def test_seed_vocabulary_size_on_embedded_train(tmp_path):
    corpus = load_corpus(TrainConfig(), cache_dir=tmp_path)
    assert len(corpus.vocab) == 25_002
    # Built on train only: a word that occurs only in test is unknown.
    train_words = {t for text in load_splits("embedded").train.texts for t in split_tokenizer(text)}
    assert set(corpus.vocab.itos[2:]) <= train_words


def test_cache_is_keyed_and_reused(tmp_path):
    splits = load_splits("embedded", max_examples=200)
    first = encode_splits(splits, "basic", 3000, 1, tmp_path)
    assert len(list(tmp_path.glob("corpus-*.npz"))) == 1
    again = encode_splits(splits, "basic", 3000, 1, tmp_path)
    np.testing.assert_array_equal(first.train.flat, again.train.flat)
    assert again.vocab.itos == first.vocab.itos
    encode_splits(splits, "split", 3000, 1, tmp_path)  # another tokenizer: another entry
    assert len(list(tmp_path.glob("corpus-*.npz"))) == 2
    for path in tmp_path.glob("corpus-*.npz"):  # a damaged entry is rebuilt, not fatal
        path.write_bytes(b"junk")
    assert encode_splits(splits, "basic", 3000, 1, tmp_path).vocab.itos == first.vocab.itos


def test_reviews_empty_after_tokenization_are_skipped_and_counted():
    real = load_splits("embedded", max_examples=40)
    real.train = Split(real.train.texts + ["<br /><br />", "  "], real.train.labels + [1, 0])
    corpus = encode_splits(real, "basic")
    assert len(corpus.train) == 40
    assert "train: skipped 2 review(s) that are empty after tokenization" in corpus.notes


def test_a_split_with_nothing_left_is_an_error():
    empty = Split(["<br />"], [1])
    with pytest.raises(UserError, match="valid split has no review left"):
        encode_splits(Splits("x", Split(["good"], [1]), empty, Split(["bad"], [0])), "basic")
