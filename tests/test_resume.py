"""A run cut off between epochs goes on from its saved state, to the uninterrupted run's result."""

from __future__ import annotations

import pytest
import torch

from sentiment_core.training.loop import train
from sentiment_core.training.resume import SUFFIX, ResumeFile, corpus_digest
from sentiment_core.training.runtime import runtime_of

TIMING = ("epoch_seconds", "train_reviews_per_s", "train_tokens_per_s")


def learned(history):
    return [{k: v for k, v in record.items() if k not in TIMING} for record in history]


def saved_states(directory):
    return sorted(directory.glob(f"*{SUFFIX}"))


def leftovers(directory):
    """Whatever a run left in its resume folder: nothing, once it finished (no lock files either)."""
    return sorted(directory.iterdir()) if directory.exists() else []


@pytest.fixture(autouse=True)
def save_every_epoch(monkeypatch):
    # Tiny epochs take a fraction of a second: save each (by default at most every 30 s).
    monkeypatch.setattr(ResumeFile, "every_s", 0.0)


@pytest.fixture(scope="module")
def config(tiny_config):
    # Every source of randomness and state the resume must restore: dropout and word dropout (torch's
    # generator), weight decay and Adam's moments, a scheduler that lowers the rate at epochs 3 and 4 (its memory of epoch 1 decides epoch 4).
    return tiny_config.replace(epochs=4, embedding_dropout=0.3, output_dropout=0.3, word_dropout=0.1,
                               weight_decay=1e-4, scheduler_patience=0, scheduler_metric="valid_loss", seed=7,
                               lr=0.03)


@pytest.fixture(scope="module")
def uninterrupted(config, tiny_corpus, tmp_path_factory):
    directory = tmp_path_factory.mktemp("resume-none")
    result = train(config, tiny_corpus, progress=False, resume_dir=directory)
    assert leftovers(directory) == [], "a finished run leaves no state to resume from"
    return result


def interrupt_after(epoch: int):
    def hook(record):
        if record["epoch"] == epoch:
            raise KeyboardInterrupt  # what SIGTERM and Ctrl-C become in the scripts
    return hook


def test_an_interrupted_run_goes_on_to_the_uninterrupted_result(config, tiny_corpus, uninterrupted, tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_corpus, progress=False, resume_dir=tmp_path, on_epoch_end=interrupt_after(2))
    assert len(saved_states(tmp_path)) == 1
    seen = []
    result = train(config, tiny_corpus, progress=False, resume_dir=tmp_path, on_epoch_end=lambda r: seen.append(r["epoch"]))
    assert "resuming after epoch 2 of 4" in capsys.readouterr().out
    assert seen == [1, 2, 3, 4], "the restored epochs reach the hook (a new tracking run holds them all)"
    assert result.resumed_epochs == 2
    assert learned(result.history) == learned(uninterrupted.history)
    assert [r["lr"] for r in result.history] != [config.lr] * 4, "the scheduler state was exercised"
    assert result.best_epoch == uninterrupted.best_epoch
    for name, tensor in uninterrupted.model.state_dict().items():
        assert torch.equal(result.model.state_dict()[name], tensor), name
    assert leftovers(tmp_path) == []


def test_another_config_or_a_finished_run_starts_from_epoch_one(config, tiny_corpus, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_corpus, progress=False, resume_dir=tmp_path, on_epoch_end=interrupt_after(1))
    other = train(config.replace(seed=8, epochs=1), tiny_corpus, progress=False, resume_dir=tmp_path)
    assert other.resumed_epochs == 0
    assert len(saved_states(tmp_path)) == 1, "the other config's state stays for its own command"


def test_a_stop_asked_during_the_replay_ends_the_run_after_the_restored_epochs(config, tiny_corpus, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_corpus, progress=False, resume_dir=tmp_path, on_epoch_end=interrupt_after(3))
    # A pruner that, by now, would have stopped the run at epoch 2 (other trials moved on meanwhile).
    result = train(config, tiny_corpus, progress=False, resume_dir=tmp_path,
                   on_epoch_end=lambda r: "pruned at epoch 2" if r["epoch"] >= 2 else None)
    assert result.status == "stopped"
    assert len(result.history) == 3, "epochs 1-3 all ran; none is dropped, none is retrained"
    assert result.message.startswith("pruned at epoch 2 (while epochs 1-3")
    assert leftovers(tmp_path) == []


def test_an_unreadable_state_is_set_aside_and_training_starts_over(config, tiny_corpus, tmp_path, capsys):
    short = config.replace(epochs=1)
    path = ResumeFile.of_run(tmp_path, short, runtime_of(short), tiny_corpus).path
    tmp_path.joinpath(path.name).write_bytes(b"not a torch file")
    result = train(short, tiny_corpus, progress=False, resume_dir=tmp_path)
    assert result.resumed_epochs == 0 and len(result.history) == 1
    assert "could not resume from" in capsys.readouterr().out
    assert path.with_suffix(".unreadable").exists()


def test_a_second_process_on_the_same_run_saves_nothing(config, tiny_corpus, tmp_path):
    first = ResumeFile(tmp_path, config, corpus_digest(tiny_corpus))
    with first.claimed() as mine:
        assert mine is first
        with ResumeFile(tmp_path, config, corpus_digest(tiny_corpus)).claimed() as theirs:
            assert theirs is None


def test_a_saved_gpu_state_is_the_current_gpus_and_old_lists_still_load():
    from sentiment_core.training.resume import cuda_state_for

    one, two = torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)
    assert cuda_state_for(one, 0) is one  # what runs save now: the current GPU's state alone
    # Files saved with two GPUs visible, resumed where a worker sees one: its own entry, no IndexError.
    assert cuda_state_for([one, two], 0) is one and cuda_state_for([one, two], 1) is two
    assert cuda_state_for([one], 1) is None
