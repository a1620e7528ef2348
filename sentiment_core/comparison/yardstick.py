"""The linear yardstick: TF-IDF over word unigrams and bigrams + logistic regression.

It reads the same reviews as the recurrent models (the corpus's splits, the same truncation)
and is fitted on the same train split; its regularization strength ``C`` is chosen on the valid
split, as the recurrent models' best epoch is; test never selects. It trains in seconds, so
every comparison can show what an hour of LSTM training buys over it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..data.batching import truncate_ids
from ..data.corpus import Corpus
from ..data.text import get_tokenizer, strip_markup
from ..errors import UserError
from ..training.config import TrainConfig

NAME = "tfidf-logreg"
C_GRID = (1.0, 4.0, 16.0, 64.0)  # inverse L2 strength; chosen on valid accuracy
VECTORIZER = {"ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True}


@dataclass
class BaselineResult:
    metrics: dict  # {train,valid,test}_{loss,acc}: mean log-loss and accuracy over examples
    params: dict
    fit_seconds: float
    test_predictions: np.ndarray  # predicted labels, in the corpus's test order


def model_texts(texts: list[str], config: TrainConfig) -> list[str]:
    """The reviews as the recurrent model reads them: the config's tokens (reviews empty after
    tokenization dropped, as the corpus drops them), cut to ``max_len`` the same way."""
    tokenize = get_tokenizer(config.tokenizer)
    kept = (tokens for tokens in map(tokenize, texts) if tokens)
    return [" ".join(truncate_ids(tokens, config.max_len, config.truncate)) for tokens in kept]


def fit_tfidf_logreg(corpus: Corpus, config: TrainConfig) -> BaselineResult:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    if corpus.splits is None:
        raise UserError("the TF-IDF yardstick needs the raw review texts; run without --no-baseline on a fresh corpus")
    texts = {name: model_texts(split.texts, config) for name, split in corpus.splits.items()}
    labels = {name: split.labels for name, split in corpus.items()}
    if any(len(texts[name]) != len(labels[name]) for name in texts):
        raise RuntimeError("yardstick texts and corpus labels disagree in length")  # a bug, not user input

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(preprocessor=strip_markup, **VECTORIZER)
    features = {"train": vectorizer.fit_transform(texts["train"])}
    features.update({name: vectorizer.transform(texts[name]) for name in ("valid", "test")})
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=0)
        model.fit(features["train"], labels["train"])
        valid_acc = float((model.predict(features["valid"]) == labels["valid"]).mean())
        if best is None or valid_acc > best[0]:  # ties keep the stronger regularization
            best = (valid_acc, c, model)
    _, c, model = best
    fit_seconds = time.perf_counter() - started

    metrics, predictions = {}, {}
    for name in ("train", "valid", "test"):
        probabilities = model.predict_proba(features[name])
        predictions[name] = probabilities.argmax(axis=1)
        metrics[f"{name}_loss"] = float(log_loss(labels[name], probabilities, labels=[0, 1]))
        metrics[f"{name}_acc"] = float((predictions[name] == labels[name]).mean())
    params = {"model": NAME, "C": c, "C_grid": list(C_GRID), "features": len(vectorizer.vocabulary_),
              **{k: str(v) for k, v in VECTORIZER.items()}, "tokenizer": config.tokenizer,
              "max_len": config.max_len, "truncate": config.truncate}
    return BaselineResult(metrics, params, fit_seconds, predictions["test"])
