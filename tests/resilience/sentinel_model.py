"""A pyfunc model (saved as models-from-code) that tells its replies apart and can kill its process.

Input: the iris columns, as the logistic test model takes them, so one body fits both. Output: 7
for every row — never a class the logistic model predicts, so each reply says which model answered.
A row whose first column is 666 ends the replica process on the spot (`os._exit(1)`), as a model
with a native crash would. The `sleep_s` param makes a prediction slow (requests in flight on a stop).
"""

import os
import time

import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model

ANSWER = 7
CRASH_VALUE = 666.0


class SentinelModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None):
        if (model_input.iloc[:, 0] == CRASH_VALUE).any():
            os._exit(1)
        time.sleep((params or {}).get("sleep_s", 0.0))
        return [ANSWER] * len(model_input)


set_model(SentinelModel())
