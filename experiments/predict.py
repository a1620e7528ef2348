"""Score reviews with a trained checkpoint: a local folder or the checkpoint of an MLflow run.

    python experiments/predict.py --run-id RUN_ID "A wonderful film." "Dull and too long."
    python experiments/predict.py --checkpoint path/to/checkpoint --file reviews.txt   # one per line
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sentiment_core.checkpoint import load_checkpoint, predict  # noqa: E402
from sentiment_core.cli import run_main  # noqa: E402
from sentiment_core.errors import UserError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="folder with weights.pt, vocab.json, config.json")
    source.add_argument("--run-id", help="MLflow run whose 'checkpoint' artifact to use "
                                         "(store: $MLFLOW_TRACKING_URI, else the repository's mlflow.db)")
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
        if args.run_id:
            from sentiment_core.tracking import download_checkpoint, resolve_tracking_uri

            directory = download_checkpoint(resolve_tracking_uri(REPO_ROOT), args.run_id, tmp)
        checkpoint = load_checkpoint(directory)
        results = predict(checkpoint, texts)
    print(f"{'label':<9} {'prob':>6}  review")
    for text, (label, probability) in zip(texts, results):
        excerpt = text if len(text) <= 70 else text[:67] + "..."
        print(f"{label:<9} {probability:>6.3f}  {excerpt}")
    return 0


if __name__ == "__main__":
    run_main(main)
