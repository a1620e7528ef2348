"""Training, without MLflow or Optuna: every knob of a run (``config``), the device and precision
it runs in (``runtime``), the one model whose recurrent cell is a parameter (``model``; its CPU
dropout mask in ``dropout``, its CPU tanh RNN in ``fast_rnn``), the loop with its per-epoch history
(``loop``) and safe checkpoints with ``predict`` (``checkpoint``)."""

from .checkpoint import load_checkpoint, predict, save_checkpoint
from .config import PRESETS, TrainConfig
from .loop import TrainResult, build_model, evaluate, train
from .model import CELLS, RecurrentClassifier
from .runtime import Runtime, resolve_runtime

__all__ = ["load_checkpoint", "predict", "save_checkpoint", "PRESETS", "TrainConfig", "TrainResult", "build_model",
           "evaluate", "train", "CELLS", "RecurrentClassifier", "Runtime", "resolve_runtime"]
