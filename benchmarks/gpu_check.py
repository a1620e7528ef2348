"""The CUDA path, checked and timed in one short run (about 6-8 minutes on one GPU).

Run it through ``bash benchmarks/gpu_check.sh`` (which installs the other dependencies from
``.whl/`` first). Every step runs on its own: one that crashes is a FAIL row, and the others still
run, so one lent GPU session always yields the whole table (also written as JSON, ``--json``).

1. parity: every cell (rnn, gru, lstm), uni- and bidirectional, packed and padded, on the device
   at each precision it offers, against a CPU fp32 run of the same weights: max |logits| difference
   and max gradient difference relative to the largest CPU gradient. Tolerances: fp32 1e-4 (TF32
   off), tf32 2e-2, bf16 (recurrent layers in TF32) and fp16 5e-2: a precision's rounding, not a
   wrong path, which is off by O(1).
   Also a 2-layer bidirectional LSTM (the dropout and concatenation between layers).
2. what ran: forward hooks on the recurrent modules record the dtype each ran in, against what the
   precision promises (``runtime.what_runs``: float32 for fp32, tf32 and CUDA bf16, float16 for
   fp16), and on CUDA the TF32 flags against the mode. Parity cannot see this: if CUDA bf16 let
   cuDNN run fp16 again, its error would still be inside the tolerance.
   Then determinism (two seeded ``--deterministic`` runs of 3 steps, bit for bit) and the
   GradScaler (3 clipped steps with loss scaling equal 3 without: fp32 to 1e-5, fp16 to 5e-2).
3. host syncs: a few training steps under ``torch.cuda.set_sync_debug_mode("error")``: any wait
   for the GPU in the training step fails it (the loss readout comes every 10 batches, outside).
4. speed: the seed's code path (fp32, packed nn.LSTM) vs a real epoch of the default path at batch
   32 and 64 (reviews/s, seconds per full-data epoch): information, no verdict. Then both sequence
   paths (packed, padded) at batch 32 and 64, and which one ``auto`` should pick on this GPU.
5. the main job for 3 epochs (RNN and LSTM, seed config, full embedded data), tracked in a
   temporary SQLite store: the LSTM must reach 75% best valid accuracy (on a CPU, 3 epochs of the
   seed recipe reached 79.9-83.5% over three seeds, chance is 50%) and every loss must be finite.
6. the extended space's regularizers (word dropout, DropConnect) train an epoch on the device.
7. a tiny study with 4 workers: at least one COMPLETE trial with finite values.

``--cpu-smoke`` runs the same steps on the CPU with tiny sizes and one batch size for speed (the
test suite does, so the script cannot rot); rows that only mean something on a GPU say "n/a".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402
from training_speed import in_subprocess  # noqa: E402

FULL_TRAIN_REVIEWS = 17_432  # the embedded data's train split
TINY = ["--max-examples", "200", "--max-len", "60", "--hidden-dim", "32", "--embedding-dim", "16",
        "--max-vocab-size", "3000"]
TOLERANCE = {"fp32": 1e-4, "tf32": 2e-2, "bf16": 5e-2, "fp16": 5e-2}
VALID_FLOOR = 0.75  # 3 epochs, full data, LSTM seed recipe (see the docstring)
OK, FAIL, NA, INFO = "ok", "FAIL", "n/a", "info"


def device_precisions(device: str) -> list[str]:
    from sentiment_core.errors import UserError
    from sentiment_core.training.runtime import cpu_precision, cuda_native_bf16, cuda_precision

    offered = []
    for precision in ("fp32", "tf32", "bf16", "fp16"):
        try:
            if device == "cuda":
                capability = torch.cuda.get_device_capability()
                cuda_precision(precision, capability, cuda_native_bf16(capability))
            else:
                cpu_precision(precision)
            offered.append(precision)
        except UserError:
            pass
    return offered


def _batch(vocab: int = 5000, size: int = 16, longest: int = 90):
    torch.manual_seed(0)
    lengths = torch.randint(1, longest, (size,))
    lengths[0] = longest  # one full row
    tokens = torch.randint(2, vocab, (size, longest))
    tokens[torch.arange(longest).unsqueeze(0) >= lengths.unsqueeze(1)] = 1
    return tokens, lengths, torch.randint(0, 2, (size,))


def parity_one(cell: str, precision: str, device: str, layers: int = 1,
               directions: tuple[bool, ...] = (False, True)) -> tuple[float, float]:
    """Max |logits - CPU fp32 logits| and max |grad - CPU grad| / max |CPU grad| over the models
    (uni- and bidirectional by default) and both sequence paths."""
    from sentiment_core.data.batching import Batch
    from sentiment_core.training.loop import _forward
    from sentiment_core.training.model import RecurrentClassifier
    from sentiment_core.training.runtime import resolve_runtime

    worst_logits = worst_grads = 0.0
    tokens, lengths, labels = _batch()
    for bidirectional in directions:
        torch.manual_seed(1)
        reference = RecurrentClassifier(cell, 5000, embedding_dim=64, hidden_dim=64, bidirectional=bidirectional,
                                        num_layers=layers, embedding_dropout=0.0, output_dropout=0.0).train()
        cpu_runtime = resolve_runtime("cpu", "fp32", "packed")
        cpu_loss, cpu_logits = _forward(reference, Batch(tokens, lengths, labels), cpu_runtime, "sum")
        cpu_loss.backward()
        cpu_grads = {n: p.grad.clone() for n, p in reference.named_parameters() if p.grad is not None}
        scale = max(g.abs().max().item() for g in cpu_grads.values())
        for path in ("packed", "padded"):
            model = RecurrentClassifier(cell, 5000, embedding_dim=64, hidden_dim=64, bidirectional=bidirectional,
                                        num_layers=layers, embedding_dropout=0.0, output_dropout=0.0)
            model.load_state_dict(reference.state_dict())
            model = model.to(device).train()
            runtime = resolve_runtime(device, precision, path)
            runtime.apply()
            batch = Batch(tokens, lengths, labels).to(torch.device(device))
            loss, logits = _forward(model, batch, runtime, "sum")
            loss.backward()
            worst_logits = max(worst_logits, (logits.float().cpu() - cpu_logits).abs().max().item())
            for name, param in model.named_parameters():
                if name in cpu_grads:
                    diff = (param.grad.float().cpu() - cpu_grads[name]).abs().max().item() / scale
                    worst_grads = max(worst_grads, diff)
    return worst_logits, worst_grads


def check_parity(device: str) -> list[tuple]:
    offered = device_precisions(device)
    # (label, parity_one's model), each at every precision; the 2-layer model checks what sits
    # between stacked layers (the output dropout and the directions' concatenation).
    models = [(f"parity {cell} {{}} vs CPU fp32 (uni+bi, packed+padded)", {"cell": cell}) for cell in ("rnn", "gru", "lstm")]
    models.append(("parity lstm 2-layer bidirectional {} vs CPU fp32 (packed+padded)",
                   {"cell": "lstm", "layers": 2, "directions": (True,)}))
    rows = []
    for label, model in models:
        for precision in ("fp32", "tf32", "bf16", "fp16"):
            if precision not in offered:
                rows.append((label.format(precision), f"{precision} is not offered on this {device}", NA))
                continue
            logits, grads = parity_one(precision=precision, device=device, **model)
            tolerance = TOLERANCE[precision]
            verdict = OK if logits <= tolerance and grads <= tolerance and math.isfinite(logits + grads) else FAIL
            rows.append((label.format(precision), f"logits {logits:.1e}, grads {grads:.1e} (tolerance {tolerance:g})",
                         verdict))
    return rows


def check_dtypes(device: str) -> list[tuple]:
    """Forward hooks on the recurrent modules record the dtype each ran in, on the device's default
    sequence path, against what the precision promises (runtime.what_runs); on CUDA the TF32 flags
    too. Parity alone cannot see this: bf16 and fp16 differ from fp32 by less than the tolerance."""
    from sentiment_core.data.batching import Batch
    from sentiment_core.training.loop import _forward
    from sentiment_core.training.model import RecurrentClassifier
    from sentiment_core.training.runtime import resolve_runtime, what_runs

    tokens, lengths, labels = _batch()
    rows = []
    for precision in device_precisions(device):
        runtime = resolve_runtime(device, precision)
        runtime.apply()
        seen: dict[str, set] = {}
        promised = {cell: what_runs(device, precision, cell, runtime.sequence_path)["recurrent layers"]
                    for cell in ("rnn", "gru", "lstm")}
        for cell in ("rnn", "gru", "lstm"):
            model = RecurrentClassifier(cell, 5000, embedding_dim=64, hidden_dim=64).to(runtime.device).train()

            def record(module, inputs, output, cell=cell, seen=seen):
                # output[0]: a tensor, or a PackedSequence; .data is the values of either
                seen.setdefault(cell, set()).add(str(output[0].data.dtype).removeprefix("torch."))

            for directions in model.layers:
                for rnn in directions:
                    rnn.register_forward_hook(record)
            _forward(model, Batch(tokens, lengths, labels).to(runtime.device), runtime, "sum")[0].backward()
        wrong = {cell: dtypes for cell, dtypes in seen.items() if dtypes != {promised[cell]}}
        unseen = [cell for cell in ("rnn", "gru", "lstm") if cell not in seen]
        said = ", ".join(f"{cell} {'/'.join(sorted(dtypes))}" for cell, dtypes in sorted(seen.items()))
        if unseen:  # the CPU's own tanh RNN (fast_rnn.py) runs no module to hook
            said += f"; {', '.join(unseen)}: no module ran ({runtime.sequence_path} path)"
        flags = ""
        if device == "cuda":
            tf32 = what_runs(device, precision)["math"] == "TF32"
            actual = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            flags = f"; TF32 flags (matmul, cuDNN) {actual}, promised {tf32}"
            wrong = wrong or ({"tf32": actual} if actual != (tf32, tf32) else {})
        rows.append((f"dtype seen in the recurrent layers, {precision} ({runtime.sequence_path})",
                     f"{said}; promised {', '.join(f'{c} {d}' for c, d in promised.items() if c in seen)}{flags}",
                     FAIL if wrong or not seen else OK))
    return rows


def _steps(device: str, precision: str, deterministic: bool = False, scaler=None, steps: int = 3) -> dict:
    """The weights after ``steps`` seeded training steps of a small LSTM on the same batches."""
    from sentiment_core.data.batching import Batch
    from sentiment_core.training.config import TrainConfig
    from sentiment_core.training.loop import make_optimizer, train_step
    from sentiment_core.training.model import RecurrentClassifier
    from sentiment_core.training.runtime import resolve_runtime, seed_everything

    runtime = resolve_runtime(device, precision, deterministic=deterministic)
    runtime.apply()
    seed_everything(7)
    model = RecurrentClassifier("lstm", 5000, embedding_dim=64, hidden_dim=64).to(runtime.device).train()
    optimizer = make_optimizer(TrainConfig(device=device), model)
    tokens, lengths, labels = _batch()
    for _ in range(steps):
        # A clip that bites: unscaling before clipping is what the scaler row can tell.
        train_step(model, optimizer, Batch(tokens, lengths, labels).to(runtime.device), runtime, 0.05, scaler)
    return {name: tensor.detach().float().cpu() for name, tensor in model.state_dict().items()}


def check_determinism(device: str) -> list[tuple]:
    first, second = _steps(device, "fp32", deterministic=True), _steps(device, "fp32", deterministic=True)
    differing = [name for name in first if not torch.equal(first[name], second[name])]
    _steps(device, "fp32", deterministic=False, steps=0)  # leave the flags off again
    return [("determinism: two seeded --deterministic runs of 3 steps, bit for bit",
             f"{len(first) - len(differing)} of {len(first)} tensors equal" +
             (f"; differ: {', '.join(differing[:3])}" if differing else ""), FAIL if differing else OK)]


def check_scaler(device: str) -> list[tuple]:
    """Loss scaling changes nothing but the range of the gradients: fp32 steps with a GradScaler
    (scale, backward, unscale, clip, step, update) equal steps without, to rounding; on CUDA also
    fp16 with and without, to its tolerance."""
    rows = []
    for precision in ("fp32", "fp16"):
        label = f"GradScaler: 3 {precision} steps with loss scaling vs without (clipped)"
        if precision not in device_precisions(device):
            rows.append((label, f"{precision} is not offered on this {device}", NA))
            continue
        scaled = _steps(device, precision, scaler=torch.amp.GradScaler(device))
        plain = _steps(device, precision)
        worst = max((scaled[n] - plain[n]).abs().max().item() for n in scaled)
        tolerance = 1e-5 if precision == "fp32" else TOLERANCE[precision]
        rows.append((label, f"max weight difference {worst:.1e} (tolerance {tolerance:g})",
                     OK if worst <= tolerance else FAIL))
    return rows


def check_syncs(device: str) -> list[tuple]:
    label = "training steps without host syncs (sync debug mode 'error')"
    if device != "cuda":
        return [(label, "CUDA only", NA)]
    from sentiment_core.data.batching import make_batch
    from sentiment_core.data.corpus import load_corpus
    from sentiment_core.training.config import TrainConfig
    from sentiment_core.training.loop import build_model, make_optimizer, train_step
    from sentiment_core.training.runtime import resolve_runtime

    config = TrainConfig(max_examples=400, max_len=120, device="cuda")
    corpus = load_corpus(config)
    rows = []
    for precision in device_precisions("cuda"):
        runtime = resolve_runtime("cuda", precision)
        runtime.apply()
        model = build_model(config, corpus.vocab).to(runtime.device).train()
        optimizer = make_optimizer(config, model)
        scaler = runtime.grad_scaler()
        batches = [make_batch(corpus.train, list(range(i, i + 32)), corpus.vocab.pad_index, config.max_len,
                              longest_first=True) for i in range(0, 160, 32)]
        train_step(model, optimizer, batches[0].to(runtime.device), runtime, 1.0, scaler)  # warm-up, lazy init
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for batch in batches[1:]:
                train_step(model, optimizer, batch.to(runtime.device), runtime, 1.0, scaler)
            rows.append((f"{label}, {precision}", f"{len(batches) - 1} steps", OK))
        except RuntimeError as exc:
            rows.append((f"{label}, {precision}", str(exc).splitlines()[0][:120], FAIL))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return rows


def check_speed(device: str, smoke: bool) -> list[tuple]:
    sizes = {"max_examples": 300, "max_len": 60} if smoke else {}
    rows = []
    for batch in (32,) if smoke else (32, 64):  # the smoke: every step runs; one batch size shows that
        seed = in_subprocess("seed_path", n_batches=2 if smoke else 30, batch_size=batch, device=device, **sizes)
        fast = in_subprocess("real_epoch", fraction=1.0, batch_size=batch, device=device, **sizes)
        for label, row in ((seed["path"], seed), (f"default ({fast['path'].split(': ', 1)[1]})", fast)):
            rows.append((f"speed, batch {batch}: {label}",
                         f"{row['reviews_per_s']:,.0f} reviews/s, {row['tokens_per_s']:,.0f} tokens/s, "
                         f"{FULL_TRAIN_REVIEWS / row['reviews_per_s']:.0f} s per full-data epoch, "
                         f"{row['tokens_per_s'] / seed['tokens_per_s']:.1f}x seed", INFO))
    return rows


def check_paths(device: str) -> list[tuple]:
    """Both sequence paths on CUDA, batch 32 and 64: cuDNN picks its persistent RNN kernels only
    for unpacked input, so padded (length-bucketed, little padding) may beat packed, the default."""
    label = "sequence paths on the GPU: padded vs packed, batch 32 and 64"
    if device != "cuda":
        return [(label, "CUDA only (the CPU's default, padded, is measured in training_speed.py)", NA)]
    rows, faster = [], {}
    for batch in (32, 64):
        speed = {path: in_subprocess("real_epoch", fraction=0.25, batch_size=batch, device=device,
                                     sequence_path=path)["tokens_per_s"] for path in ("packed", "padded")}
        faster[batch] = max(speed, key=speed.get)
        rows.append((f"sequence paths, batch {batch}", f"packed {speed['packed']:,.0f} tokens/s, padded "
                     f"{speed['padded']:,.0f} tokens/s: padded/packed {speed['padded'] / speed['packed']:.2f}x", INFO))
    pick = faster[32]
    rows.append((label, f"auto should pick {pick} on this GPU (packed is the default now)" +
                 ("" if faster[32] == faster[64] else f"; at batch 64 {faster[64]} is faster"), INFO))
    return rows


def _store(tmp: Path) -> str:
    """One MLflow store for the main job and the study (beside their folders): made once, not twice."""
    return f"sqlite:///{tmp.parent / 'mlflow.db'}"


def _env(tmp: Path) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": _store(tmp)}


def _last_line(proc) -> str:
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"


def check_run(device: str, smoke: bool, tmp: Path) -> list[tuple]:
    """3 epochs of the main job (both cells), then its epochs read back from MLflow."""
    from mlflow import MlflowClient

    command = [sys.executable, str(REPO / "experiments" / "compare_rnn_lstm.py"), "--epochs", "3",
               "--device", device, "--no-baseline", "--no-register", "--quiet", "--output-dir", str(tmp / "out"),
               *(TINY if smoke else [])]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=tmp, env=_env(tmp), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        return [("main job, 3 epochs", _last_line(proc), FAIL)]
    client = MlflowClient(_store(tmp))
    experiment_id = client.get_experiment_by_name("rnn-vs-lstm").experiment_id
    rows = []
    for cell in ("rnn", "lstm"):
        run = client.search_runs([experiment_id], f"tags.cell = '{cell}'")[0]
        history = {key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
                   for key in ("epoch_seconds", "train_reviews_per_s", "valid_acc", "train_loss", "valid_loss")}
        train_reviews = int(run.data.params["train_size"])
        for epoch in sorted(history["epoch_seconds"]):
            train_s = train_reviews / history["train_reviews_per_s"][epoch]
            rows.append((f"main job {cell} epoch {epoch} ({train_reviews} train reviews, "
                         f"{run.data.params.get('rnn_dtype', '?')} recurrent layers)",
                         f"train {train_s:.1f} s + eval {history['epoch_seconds'][epoch] - train_s:.1f} s, "
                         f"valid {history['valid_acc'][epoch]:.2%}", INFO))
        finite = all(math.isfinite(v) for key in ("train_loss", "valid_loss") for v in history[key].values())
        best = max(history["valid_acc"].values())
        if cell == "lstm" and not smoke:
            verdict = OK if finite and best >= VALID_FLOOR and run.info.status == "FINISHED" else FAIL
            judged = f"best valid {best:.2%} (floor {VALID_FLOOR:.0%}), losses finite: {finite}"
        else:  # the RNN, and tiny smoke data, are near chance: only that the run is sound
            verdict = OK if finite and run.info.status == "FINISHED" else FAIL
            judged = f"best valid {best:.2%}, losses finite: {finite}, status {run.info.status}"
        rows.append((f"main job {cell}, 3 epochs ({wall:.0f} s for the command)", judged, verdict))
    return rows


def check_extended(device: str, smoke: bool) -> list[tuple]:
    from sentiment_core.data.corpus import load_corpus
    from sentiment_core.training.config import TrainConfig
    from sentiment_core.training.loop import train

    sizes = {"max_examples": 200, "max_len": 60, "hidden_dim": 32, "embedding_dim": 16} if smoke else \
        {"max_examples": 2000, "max_len": 200}
    config = TrainConfig(epochs=1, device=device, word_dropout=0.1, weight_drop=0.3, output_dropout=0.2, **sizes)
    record = train(config, load_corpus(config), progress=False).history[0]
    finite = math.isfinite(record["train_loss"]) and math.isfinite(record["valid_loss"])
    return [("extended regularizers (word dropout 0.1, DropConnect 0.3) train an epoch",
             f"train loss {record['train_loss']:.4f}, valid {record['valid_acc']:.2%}", OK if finite else FAIL)]


def check_workers(device: str, smoke: bool, tmp: Path) -> list[tuple]:
    import optuna

    from sentiment_core.tuning.storage import make_storage

    workers, trials = (2, 4) if smoke else (4, 8)
    command = [sys.executable, str(REPO / "experiments" / "tune_regularization.py"), *TINY, "--epochs", "2",
               "--device", device, "--n-trials", str(trials), "--workers", str(workers), "--pruner", "none",
               "--storage", f"journal:{tmp / 'study.journal'}", "--study-name", "gpu-check", "--quiet",
               "--no-register", "--output-dir", str(tmp / "out")]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=tmp, env=_env(tmp), capture_output=True, text=True)
    wall = time.perf_counter() - start
    label = f"tiny study, {workers} workers on {device}"
    if proc.returncode:
        return [(label, _last_line(proc), FAIL)]
    study = optuna.load_study(study_name="gpu-check", storage=make_storage(f"journal:{tmp / 'study.journal'}"))
    complete = [t for t in study.trials if t.state.name == "COMPLETE" and all(math.isfinite(v) for v in t.values)]
    return [(label, f"{len(complete)} of {len(study.trials)} trials COMPLETE with finite values in {wall:.0f} s "
                    f"({trials / wall * 3600:,.0f} trials/hour)", OK if complete else FAIL)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="the same steps on the CPU with tiny sizes")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"),
                        help="where the table is written as JSON too (default: gpu_check.json)")
    args = parser.parse_args()
    if args.cpu_smoke:
        device = "cpu"
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        print("error: no CUDA device visible to torch; run with --cpu-smoke to check the script on a CPU",
              file=sys.stderr)
        return 2
    from sentiment_core.training.runtime import cpu_name

    name = torch.cuda.get_device_name() if device == "cuda" else f"{cpu_name()} (CPU smoke sizes)"
    print(f"gpu_check on {name}: torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    start = time.perf_counter()
    rows: list[tuple] = []
    with tempfile.TemporaryDirectory() as tmp:
        steps = {
            "parity": lambda: check_parity(device),
            "dtypes": lambda: check_dtypes(device),
            "determinism": lambda: check_determinism(device),
            "scaler": lambda: check_scaler(device),
            "syncs": lambda: check_syncs(device),
            "speed": lambda: check_speed(device, args.cpu_smoke),
            "paths": lambda: check_paths(device),
            "main job": lambda: check_run(device, args.cpu_smoke, Path(tmp) / "run"),
            "extended": lambda: check_extended(device, args.cpu_smoke),
            "workers": lambda: check_workers(device, args.cpu_smoke, Path(tmp) / "study"),
        }
        for step, check in steps.items():
            (Path(tmp) / "run").mkdir(exist_ok=True)
            (Path(tmp) / "study").mkdir(exist_ok=True)
            step_start = time.perf_counter()
            try:
                rows.extend(check())
            except Exception as exc:  # one step's crash must not cost the rest of the table
                rows.append((f"{step} (crashed)", f"{type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''}",
                             FAIL))
            print(f"  {step}: {time.perf_counter() - step_start:.0f} s", file=sys.stderr, flush=True)
    print("\n| check | measured | verdict |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    failed = [row[0] for row in rows if row[2] == FAIL]
    judged = [row for row in rows if row[2] in (OK, FAIL)]
    summary = (f"{len(judged) - len(failed)}/{len(judged)} judged checks ok, "
               f"{sum(row[2] == NA for row in rows)} n/a, {sum(row[2] == INFO for row in rows)} information rows, "
               f"in {time.perf_counter() - start:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    print("\n" + summary)
    args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "summary": summary,
                                     "rows": [dict(zip(("check", "measured", "verdict"), row)) for row in rows]},
                                    indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
