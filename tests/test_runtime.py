"""Device and precision resolution: what runs where, and clear errors where it cannot."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from sentiment_core.errors import UserError
from sentiment_core.training.config import TrainConfig
from sentiment_core.training.model import RecurrentClassifier
from sentiment_core.training.runtime import Runtime, accumulator_dtype, cpu_has_native_bf16, cpu_name, resolve_runtime


def test_bf16_on_a_cpu_runs_only_where_its_kernels_exist():
    # oneDNN has no bf16 LSTM for CPUs without AVX512-BF16 or AMX (an AMD Zen 2 failed at the first
    # forward with "could not create a primitive descriptor"): say so before training starts.
    if cpu_has_native_bf16():
        assert resolve_runtime("cpu", "bf16").precision == "bf16"
        assert resolve_runtime("cpu", "auto").precision == "bf16"
    else:
        with pytest.raises(UserError, match="--precision bf16 needs a CPU with AVX512-BF16 or AMX.*--precision fp32"):
            resolve_runtime("cpu", "bf16")
        assert resolve_runtime("cpu", "auto").precision == "fp32"


def test_precision_resolution_on_cuda_counts_only_native_bf16():
    from sentiment_core.training.runtime import cuda_precision

    assert cuda_precision("auto", (9, 0), True) == "fp16"  # tensor cores: fp16 with loss scaling
    assert cuda_precision("auto", (6, 1), False) == "fp32"  # no fp16 tensor cores
    assert cuda_precision("bf16", (8, 0), True) == "bf16"
    with pytest.raises(UserError, match="no native bf16"):  # is_bf16_supported() would count emulation
        cuda_precision("bf16", (7, 5), False)
    with pytest.raises(UserError, match="tf32 needs an Ampere"):
        cuda_precision("tf32", (7, 5), False)
    assert cuda_precision("fp32", (9, 0), True) == "fp32"


def test_precision_resolution_on_a_cpu_follows_its_family():
    from sentiment_core.training.runtime import cpu_has_native_bf16, cpu_precision

    assert cpu_precision("auto", native_bf16=True) == "bf16"  # AMX, AVX512-BF16: measured faster
    assert cpu_precision("auto", native_bf16=False) == "fp32"
    for cuda_only in ("tf32", "fp16"):
        with pytest.raises(UserError, match="for CUDA GPUs"):
            cpu_precision(cuda_only, native_bf16=True)
    assert cpu_has_native_bf16("flags : fpu avx2 avx512f avx512_bf16 ")
    assert cpu_has_native_bf16("flags : fpu amx_bf16 amx_tile")
    assert not cpu_has_native_bf16("flags : fpu sse4_2 avx2 fma")  # AMD Zen 2


def test_an_amd_cpu_is_named_with_its_microarchitecture():
    def cpuinfo(family, model, flags, name="AMD EPYC", vendor="AuthenticAMD"):
        return (f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
                f"model name\t: {name}\nflags\t\t: fpu {flags}\n\nprocessor\t: 1\nmodel name\t: other\n")

    # The masked model names of this project's virtual machines, told apart.
    assert cpu_name(cpuinfo(23, 49, "avx2 fma")) == "AMD EPYC (family 23 model 49: Zen 2)"
    assert cpu_name(cpuinfo(25, 17, "avx2 avx512f avx512_bf16")) == "AMD EPYC (family 25 model 17: Zen 4)"
    assert cpu_name(cpuinfo(25, 1, "avx2 fma")) == "AMD EPYC (family 25 model 1: Zen 3)"
    assert cpu_name(cpuinfo(26, 2, "avx2 avx512f avx512_vp2intersect")) == "AMD EPYC (family 26 model 2: Zen 5)"
    assert cpu_name(cpuinfo(29, 0, "avx2")) == "AMD EPYC (family 29 model 0)"  # a family to come
    intel = "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu_name(cpuinfo(6, 143, "amx_bf16", name=intel, vendor="GenuineIntel")) == intel


def test_what_each_precision_runs_in():
    # What is logged as rnn_dtype: on CUDA "bf16" keeps the recurrent layers out of autocast,
    # whose cuDNN RNN wrapper would make them fp16 without loss scaling.
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert Runtime(cuda, "bf16", "packed").rnn_dtype() == "tf32" and Runtime(cuda, "bf16", "packed").recurrent_fp32
    assert Runtime(cuda, "fp16", "packed").rnn_dtype("gru") == "fp16" and not Runtime(cuda, "fp16", "packed").recurrent_fp32
    assert Runtime(cpu, "bf16", "padded").rnn_dtype() == "bf16" and not Runtime(cpu, "bf16", "padded").recurrent_fp32
    # CPU autocast has no GRU, and oneDNN's bf16 LSTM takes padded input only: those run float32.
    assert Runtime(cpu, "bf16", "padded").rnn_dtype("gru") == "fp32"
    assert Runtime(cpu, "bf16", "packed").rnn_dtype("lstm") == "fp32"
    assert Runtime(cpu, "bf16", "packed").rnn_dtype("rnn") == "bf16"
    assert Runtime(cuda, "fp16", "packed").grad_scaler() is not None
    assert Runtime(cpu, "fp32", "padded").grad_scaler() is None


def test_loss_totals_fit_the_device():
    assert accumulator_dtype(torch.device("cpu")) == torch.float64
    assert accumulator_dtype(torch.device("cuda")) == torch.float64
    assert accumulator_dtype(torch.device("mps")) == torch.float32  # MPS has no float64


def test_recurrent_layers_can_run_outside_autocast():
    # The CUDA bf16 policy's mechanism, checked where it runs here: under bf16 autocast, the
    # recurrent layers in fp32 give the fp32 logits to bf16 rounding of the rest (embedding, head).
    model = RecurrentClassifier("lstm", 500, embedding_dim=16, hidden_dim=16, embedding_dropout=0,
                                output_dropout=0).eval()
    lengths = torch.tensor([7, 5, 3])
    tokens = torch.randint(2, 500, (3, 7))
    with torch.no_grad():
        reference = model(tokens, lengths)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(tokens, lengths, recurrent_fp32=True)
    assert mixed.dtype == torch.bfloat16
    assert torch.allclose(mixed.float(), reference, atol=3e-2)


def test_loss_scaling_changes_nothing_but_the_scale(tiny_config, tiny_corpus):
    # One step with a GradScaler and one without, from the same weights: fp32 gradients scaled
    # by a power of two and unscaled (before clipping) are the same numbers.
    from sentiment_core.data.batching import make_batch
    from sentiment_core.training.loop import build_model, make_optimizer, train_step

    batch = make_batch(tiny_corpus.train, np.arange(32), tiny_corpus.vocab.pad_index, 80)
    runtime = Runtime(torch.device("cpu"), "fp32", "padded")
    after = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0**12)):
        torch.manual_seed(0)
        model = build_model(tiny_config.replace(embedding_dropout=0.0), tiny_corpus.vocab)
        optimizer = make_optimizer(tiny_config, model)
        train_step(model, optimizer, batch, runtime, clip_grad_norm=0.5, scaler=scaler)
        after.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*after))


def test_packed_batches_come_longest_first():
    from sentiment_core.data.batching import make_batch
    from sentiment_core.data.corpus import EncodedSplit

    split = EncodedSplit.from_token_ids([[2] * n for n in (3, 9, 5, 9, 1)], [0, 1, 0, 1, 0])
    batch = make_batch(split, np.array([0, 1, 2, 3, 4]), pad_index=1, longest_first=True)
    assert batch.lengths.tolist() == [9, 9, 5, 3, 1] and batch.indices.tolist() == [1, 3, 2, 0, 4]
    assert make_batch(split, np.array([0, 1, 2]), pad_index=1).indices.tolist() == [0, 1, 2]


def test_workers_get_one_gpu_each_round_robin():
    from sentiment_core.system.workers import gpu_for_worker, visible_gpus

    assert [gpu_for_worker(i, ["0", "1"]) for i in range(4)] == ["0", "1", "0", "1"]
    assert gpu_for_worker(3, []) is None  # no GPU: nothing set
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]  # a scheduler's choice is kept
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({}, count=3) == ["0", "1", "2"]


def test_deterministic_mode_sets_the_backends_and_is_recorded(tiny_config):
    from sentiment_core.training.runtime import resolved_config

    before = torch.are_deterministic_algorithms_enabled()
    try:
        Runtime(torch.device("cpu"), "fp32", "padded", deterministic=True).apply()
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.deterministic = False
    config = resolved_config(tiny_config.replace(deterministic=True))
    assert config.deterministic and config.to_dict()["deterministic"] is True


def test_a_cuda_run_cannot_resume_a_cpu_study():
    from sentiment_core.tuning.fingerprint import fingerprint_differences, study_fingerprint
    from sentiment_core.tuning.space import SearchSpace

    config = TrainConfig(device="cpu", precision="fp32", sequence_path="padded")
    stored = study_fingerprint(config, SearchSpace())
    wanted = study_fingerprint(config.replace(device="cuda", precision="fp16", sequence_path="packed"), SearchSpace())
    assert fingerprint_differences(stored, wanted) == [
        "device (the study runs on cpu)", "precision (the study runs on fp32)", "sequence_path (the study runs on padded)"]
    # A stored fingerprint from before a field existed matches that field's default.
    del stored["runtime"]["deterministic"], stored["config"]["word_dropout"]
    assert fingerprint_differences(stored, study_fingerprint(config, SearchSpace())) == []


def test_the_training_commands_switch_huge_pages_on_themselves(monkeypatch, run_inprocess, tmp_path):
    from helpers import COMPARE

    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    assert run_inprocess(COMPARE, ["--print-config"], cwd=tmp_path).returncode == 0
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")  # a user's own choice stands
    assert run_inprocess(COMPARE, ["--print-config"], cwd=tmp_path).returncode == 0
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"


def test_native_bf16_is_asked_the_way_each_torch_release_understands():
    from sentiment_core.training.runtime import cuda_native_bf16

    def with_the_argument(including_emulation: bool = True) -> bool:  # a T4 emulates bf16
        return including_emulation

    def without_it() -> bool:  # older releases: the keyword is a TypeError
        return True

    assert cuda_native_bf16((7, 5), with_the_argument) is False
    assert cuda_native_bf16((7, 5), without_it) is bool(torch.version.hip)  # Turing: emulated on NVIDIA
    assert cuda_native_bf16((8, 0), without_it) is True  # Ampere and later: native


def test_each_precision_says_what_each_part_computes_in():
    from sentiment_core.training.runtime import what_runs

    # CUDA bf16: the recurrent layers run outside autocast (fp32 storage, TF32 math), the embedding
    # and gather are no autocast ops: the head alone is bf16.
    assert what_runs("cuda", "bf16") == {"recurrent layers": "float32", "embedding": "float32", "head": "bfloat16",
                                         "math": "TF32", "loss scaling": "no"}
    assert what_runs("cpu", "bf16")["recurrent layers"] == "bfloat16" and what_runs("cpu", "bf16")["math"] == "IEEE"
    assert what_runs("cuda", "fp16") == {"recurrent layers": "float16", "embedding": "float32", "head": "float16",
                                         "math": "IEEE", "loss scaling": "yes"}
    assert what_runs("cuda", "fp32")["math"] == "IEEE" and what_runs("cuda", "tf32")["math"] == "TF32"
    assert set(what_runs("mps", "fp32").values()) == {"float32", "IEEE", "no"}
    described = Runtime(torch.device("cpu"), "bf16", "padded").describe()
    assert "recurrent layers in bf16, head in bfloat16" not in described  # the same dtype is said once
    assert "(recurrent layers in bf16)" in described


def test_deterministic_flags_follow_each_runtime_both_ways(monkeypatch):
    from sentiment_core.training.runtime import set_cublas_workspace

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")  # not a deterministic setting: replaced
    try:
        Runtime(torch.device("cpu"), "fp32", "padded", deterministic=True).apply()
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        # The next run in the same process is not deterministic: its flags are off again.
        Runtime(torch.device("cpu"), "fp32", "padded", deterministic=False).apply()
        assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    environ = {"CUBLAS_WORKSPACE_CONFIG": ":16:8"}
    set_cublas_workspace(environ)
    assert environ == {"CUBLAS_WORKSPACE_CONFIG": ":16:8"}  # the user's own deterministic choice stays


def test_the_command_line_sets_cublas_workspace_before_any_cuda_work(monkeypatch):
    import argparse

    from sentiment_core.cli import config_overrides

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    config_overrides(argparse.Namespace(deterministic=False))
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert config_overrides(argparse.Namespace(deterministic=True)) == {"deterministic": True}
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_host_copies_wait_everywhere_but_on_cuda():
    from sentiment_core.data.batching import copies_without_waiting, to_device

    # Non-blocking copies from the CPU to Apple GPUs have returned wrong data (pytorch#139550).
    assert [copies_without_waiting(torch.device(kind)) for kind in ("cuda", "mps", "cpu", "xpu", "meta")] == \
        [True, False, False, False, False]
    rows = torch.arange(5)
    assert to_device(rows, torch.device("cpu")) is rows
    moved = to_device(rows, torch.device("meta"))  # the waiting copy, on a device every machine has
    assert moved.device.type == "meta" and moved.shape == rows.shape


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_dtype_table_is_what_the_cpu_runs(precision):
    # Forward hooks on the recurrent modules, as the GPU check's dtype row: what_runs() (logged as
    # rnn_dtype) must say what really ran, per cell and path, or it misleads every run's record.
    from sentiment_core.data.batching import Batch
    from sentiment_core.training.loop import _forward
    from sentiment_core.training.runtime import what_runs

    if precision == "bf16" and not cpu_has_native_bf16():
        pytest.skip("no bf16 CPU kernels here")
    lengths = torch.tensor([9, 7, 4])
    tokens = torch.randint(2, 50, (3, 9)).masked_fill(torch.arange(9) >= lengths.unsqueeze(1), 1)
    for cell in ("rnn", "gru", "lstm"):
        for path in ("packed", "padded"):
            model = RecurrentClassifier(cell, 50, embedding_dim=8, hidden_dim=8).train()
            seen = set()
            for rnn in model.layers[0]:
                rnn.register_forward_hook(lambda m, i, out, seen=seen: seen.add(str(out[0].data.dtype).removeprefix("torch.")))
            _forward(model, Batch(tokens, lengths, torch.tensor([0, 1, 0])), resolve_runtime("cpu", precision, path), "sum")
            if cell == "rnn" and path == "padded":
                assert not seen  # the CPU's own tanh RNN (fast_rnn.py): it returns the autocast dtype itself
                continue
            assert seen == {what_runs("cpu", precision, cell, path)["recurrent layers"]}, (cell, path)
