import math

import numpy as np
import pytest

from sentiment_core.data.batching import eval_batches
from sentiment_core.errors import UserError
from sentiment_core.training.config import TrainConfig
from sentiment_core.training.loop import evaluate, evaluate_predictions, train, train_eval_sample


def test_loss_falls_on_real_reviews(tiny_config, tiny_corpus):
    config = tiny_config.replace(epochs=4, dropout=0.2, scheduler_patience=10)
    seen = []
    result = train(config, tiny_corpus, on_epoch_end=seen.append, progress=False)
    losses = [r["train_loss"] for r in result.history]
    assert result.status == "completed" and len(result.history) == 4
    assert seen == result.history
    assert losses[-1] < losses[0] - 0.05
    assert result.history[-1]["train_acc"] > 0.6
    for record in result.history:
        for name in ("train_acc", "valid_acc", "test_acc"):
            assert 0 <= record[name] <= 1
        # Exact over examples: accuracy * n is a whole number of correct reviews.
        assert math.isclose(record["valid_acc"] * len(tiny_corpus.valid), round(record["valid_acc"] * len(tiny_corpus.valid)))
        # The honest gap: eval-mode accuracy on the fixed training sample, not the running value.
        n_sample = len(tiny_corpus.valid)
        assert math.isclose(record["train_eval_acc"] * n_sample, round(record["train_eval_acc"] * n_sample))
        assert record["generalization_gap"] == pytest.approx(record["train_eval_acc"] - record["valid_acc"])


def test_same_seed_same_history_on_cpu(tiny_config, tiny_corpus):
    def metrics(result):
        return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "train_reviews_per_s", "train_tokens_per_s")} for r in result.history]

    first = train(tiny_config, tiny_corpus, progress=False)
    second = train(tiny_config, tiny_corpus, progress=False)
    other = train(tiny_config.replace(seed=99), tiny_corpus, progress=False)
    assert metrics(first) == metrics(second)
    assert metrics(first) != metrics(other)


def test_the_returned_model_holds_the_best_valid_weights(tiny_config, tiny_corpus):
    result = train(tiny_config.replace(epochs=3), tiny_corpus, progress=False)
    best = result.history[result.best_epoch - 1]
    assert best["valid_acc"] == max(r["valid_acc"] for r in result.history)
    loss, acc = evaluate(result.model, tiny_corpus.test, result.runtime, max_len=tiny_config.max_len)
    assert acc == best["test_acc"] == result.summary["test_acc_at_best_valid"]
    assert loss == pytest.approx(best["test_loss"], rel=1e-6)


def test_evaluation_gives_the_same_loss_and_predictions_however_it_is_batched(tiny_config, tiny_corpus):
    """One review per batch (no padding at all) against batches cut by the padded-token budget
    (set small here, so that the tiny split makes batches of several sizes)."""
    result = train(tiny_config.replace(epochs=1, precision="fp32"), tiny_corpus, progress=False)
    alone = evaluate_predictions(result.model, tiny_corpus.test, result.runtime, batch_size=1,
                                 max_len=tiny_config.max_len)
    sizes = {len(b) for b in eval_batches(np.minimum(tiny_corpus.test.lengths, tiny_config.max_len), 64, 300)}
    assert len(sizes) > 2  # the premise: batches of several sizes, several reviews each
    budgeted = evaluate_predictions(result.model, tiny_corpus.test, result.runtime, batch_size=64,
                                    max_len=tiny_config.max_len, max_padded_tokens=300)
    assert (budgeted[1] == alone[1]).all()
    assert budgeted[0] == pytest.approx(alone[0], rel=1e-5)


def test_early_stopping_stops_after_patience(tiny_config, tiny_corpus):
    # lr 0 learns nothing: epoch 1 stays best, so patience 2 stops after epoch 3.
    result = train(tiny_config.replace(epochs=10, lr=1e-12, early_stopping_patience=2, dropout=0.0),
                   tiny_corpus, progress=False)
    assert result.status == "early_stopped"
    assert len(result.history) == 3 and result.best_epoch == 1


def test_divergence_stops_with_a_status(tiny_config, tiny_corpus):
    result = train(tiny_config.replace(lr=1e38, clip_grad_norm=0, epochs=3, precision="fp32"), tiny_corpus, progress=False)
    assert result.status == "diverged"
    assert "lower --lr" in result.message


@pytest.mark.parametrize("metric", ["valid_loss", "train_loss"])
def test_learning_rate_drops_on_a_plateau(tiny_config, tiny_corpus, metric):
    # lr 1e-6 barely moves the loss: a plateau, so patience 0 cuts the rate after epoch 2 (epoch 1 sets the best).
    # No dropout: its masks alone move the training loss by more than the scheduler's threshold.
    result = train(tiny_config.replace(scheduler_metric=metric, scheduler_patience=0, epochs=3, lr=1e-6,
                                       embedding_dropout=0.0, output_dropout=0.0), tiny_corpus, progress=False)
    assert result.history[-1]["lr"] == pytest.approx(1e-7)


def expected_learning_rates(losses: list[float], lr: float, patience: int) -> list[float]:
    """ReduceLROnPlateau's rule written out (mode min, relative threshold 1e-4, factor 0.1): the
    learning rate each epoch starts with, given the followed loss at the end of each epoch."""
    rates, best, bad = [], float("inf"), 0
    for loss in losses:
        rates.append(lr)
        if loss < best * (1 - 1e-4):
            best, bad = loss, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr * 0.1, 0
    return rates


def test_the_scheduler_follows_the_metric_it_is_told(tiny_config, tiny_corpus):
    # Tiny data, many epochs: training loss keeps falling while valid loss turns up (overfitting),
    # so the two metrics cut the learning rate at different epochs; each run must follow its own.
    runs = {metric: train(tiny_config.replace(scheduler_metric=metric, scheduler_patience=0, epochs=6,
                                              embedding_dropout=0.0), tiny_corpus, progress=False).history
            for metric in ("train_loss", "valid_loss")}
    for metric, history in runs.items():
        assert [r["lr"] for r in history] == pytest.approx(
            expected_learning_rates([r[metric] for r in history], 3e-3, 0)), metric
    # The case separates the two: had a run followed the other metric, its rates would differ.
    assert expected_learning_rates([r["train_loss"] for r in runs["valid_loss"]], 3e-3, 0) != pytest.approx(
        [r["lr"] for r in runs["valid_loss"]])


@pytest.mark.parametrize("change, message", [
    ({"dropout": 1.5}, "dropout"), ({"cell": "cnn"}, "cell"), ({"weight_decay": -1}, "weight_decay"),
    ({"batch_size": 0}, "batch_size"), ({"lr": 0}, "lr"), ({"precision": "fp8"}, "precision"),
])
def test_impossible_hyperparameters_are_clear(change, message):
    with pytest.raises(UserError, match=message):
        TrainConfig().replace(**change)


def test_train_eval_metrics_measure_a_fixed_training_sample_in_eval_mode(tiny_config, tiny_corpus):
    result = train(tiny_config.replace(epochs=2), tiny_corpus, progress=False)
    sample = train_eval_sample(tiny_corpus.train, len(tiny_corpus.valid), tiny_config.split_seed)
    assert len(sample) == min(len(tiny_corpus.valid), len(tiny_corpus.train))
    # Fixed: the same reviews whatever the training seed and however often it is drawn.
    again = train_eval_sample(tiny_corpus.train, len(tiny_corpus.valid), tiny_config.split_seed)
    assert (sample.flat == again.flat).all() and (sample.labels == again.labels).all()
    # The returned model (best epoch) re-evaluated in eval mode on that sample gives the logged value.
    best = result.history[result.best_epoch - 1]
    loss, acc = evaluate(result.model, sample, result.runtime, max_len=tiny_config.max_len)
    assert acc == best["train_eval_acc"] and loss == pytest.approx(best["train_eval_loss"], rel=1e-6)


def test_the_train_eval_sample_is_a_subset_as_large_as_asked(tiny_corpus):
    train_split = tiny_corpus.train
    sample = train_eval_sample(train_split, 50, seed=7)
    assert len(sample) == 50
    reviews = {tuple(train_split.review(i)) for i in range(len(train_split))}
    assert all(tuple(sample.review(i)) in reviews for i in range(50))
    assert train_eval_sample(train_split, 10_000, seed=7) is train_split  # never larger than the split
