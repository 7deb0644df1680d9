"""A pyfunc model (saved as models-from-code) that raises on a magic value.

Input: one double column `x`. Output: a DataFrame with `double` (2x) and `scaled` (x * the
`scale` param), so tests see DataFrame predictions split back per request and params honoured.
The `sleep_s` param makes a prediction slow, for tests of a graceful stop.
"""

import time

import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model

MAGIC = 666.0


class MagicModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None):
        if (model_input["x"] == MAGIC).any():
            raise ValueError(f"the magic value {MAGIC:g} is not allowed")
        params = params or {}
        time.sleep(params.get("sleep_s", 0.0))
        scale = params.get("scale", 1.0)
        return pd.DataFrame({"double": model_input["x"] * 2, "scaled": model_input["x"] * scale})


set_model(MagicModel())
