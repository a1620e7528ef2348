"""Score reviews with a trained model: a registered model, a run's MLflow Model, or a checkpoint folder.

    python experiments/predict.py --model models:/sentiment-imdb-lstm@best "A wonderful film." "Dull and too long."
    python experiments/predict.py --model runs:/RUN_ID/model --file reviews.txt   # one review per line
    python experiments/predict.py --run-id RUN_ID "A wonderful film."
    python experiments/predict.py --checkpoint path/to/checkpoint "A wonderful film."
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sentiment_core.system.startup import heavy_imports  # noqa: E402

with heavy_imports():  # torch's and MLflow's imports without the garbage collector's passes
    from sentiment_core.cli import run_main
    from sentiment_core.errors import UserError
    from sentiment_core.training.checkpoint import load_checkpoint, predict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="URI", help="models:/<name>@<alias> (e.g. models:/sentiment-imdb-lstm@best), "
                                                      "models:/<name>/<version> or runs:/<run id>/model")
    source.add_argument("--checkpoint", type=Path, help="folder with weights.pt, vocab.json, config.json")
    source.add_argument("--run-id", help="MLflow run whose model to use (same as --model runs:/<id>/model; "
                                         "store: $MLFLOW_TRACKING_URI, else the repository's mlflow.db)")
    parser.add_argument("--file", type=Path, help="read reviews from this file, one per line ('-' = stdin)")
    parser.add_argument("texts", nargs="*", help="reviews to score")
    args = parser.parse_args()

    texts = list(args.texts)
    if args.file is not None:
        try:
            lines = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {args.file}: {exc}") from None
        texts += [line for line in lines.splitlines() if line.strip()]
    if not texts:
        raise UserError("no reviews to score: pass them as arguments or with --file")

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.checkpoint
        if args.run_id or args.model:
            from sentiment_core.tracking.models import download_checkpoint
            from sentiment_core.tracking.store import resolve_tracking_uri

            uri = resolve_tracking_uri(REPO_ROOT)
            if args.model:
                from sentiment_core.tracking.models import checkpoint_of, download_model

                directory = checkpoint_of(download_model(args.model, uri, tmp))
            else:
                directory = download_checkpoint(uri, args.run_id, tmp)
        checkpoint = load_checkpoint(directory)
        results = predict(checkpoint, texts)
    print(f"{'label':<9} {'prob':>6}  review")
    for text, (label, probability) in zip(texts, results):
        excerpt = text if len(text) <= 70 else text[:67] + "..."
        print(f"{label:<9} {probability:>6.3f}  {excerpt}")
    return 0


if __name__ == "__main__":
    run_main(main)
