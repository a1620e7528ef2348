"""The MLflow pyfunc model, as code (MLflow's "models from code"): this file is copied into the
logged model and run when the model loads, so no pickled class is ever stored. It wraps this
project's checkpoint (tensor-only weights, JSON vocabulary and config), which the logged model
carries as its ``checkpoint`` artifact, and scores with the same ``predict`` as predict.py.

Input: a DataFrame with a string column ``text``. Output: ``label`` (negative/positive) and
``probability`` (of that label), one row per review.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class SentimentClassifier(PythonModel):
    # No type-hint based validation: the logged model has an explicit signature (a string column
    # ``text``), which MLflow enforces; without this, MLflow warns at every save and load that
    # ``predict`` lacks type hints. (MLflow's switch for classes whose hints it does not read.)
    _skip_type_hint_validation = True

    def load_context(self, context):
        from sentiment_core.training.checkpoint import load_checkpoint

        self.checkpoint = load_checkpoint(context.artifacts["checkpoint"])

    def predict(self, context, model_input, params=None):
        from sentiment_core.errors import UserError
        from sentiment_core.training.checkpoint import predict

        if not isinstance(model_input, pd.DataFrame) or "text" not in model_input.columns:
            columns = list(model_input.columns) if isinstance(model_input, pd.DataFrame) else type(model_input).__name__
            raise UserError(f"the model takes a column 'text' of reviews; got {columns}")
        results = predict(self.checkpoint, [str(text) for text in model_input["text"]])
        return pd.DataFrame(results, columns=["label", "probability"])


mlflow.models.set_model(SentimentClassifier())
