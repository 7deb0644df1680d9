"""A model that takes its time: an MLflow pyfunc (saved from code, so a replica needs nothing of
the tests to load it) that sleeps `delay_s` per call and answers one number per row. Requests to
it stay in flight long enough for concurrency to build up."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

_CODE = """
import time

import mlflow


class Slow(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep({delay_s})
        return [1.0] * len(model_input)


mlflow.models.set_model(Slow())
"""


def save_slow_model(path: Path, delay_s: float = 0.2) -> Path:
    import mlflow
    from mlflow.models import infer_signature

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    code = path.parent / f"{path.name}_code.py"
    code.write_text(_CODE.format(delay_s=float(delay_s)))
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.pyfunc.save_model(str(path), python_model=str(code), signature=infer_signature(frame, [1.0, 1.0]))
    return path


def slow_body(rows: int = 1) -> dict:
    return {"dataframe_split": {"columns": ["x"], "data": [[1.0]] * rows}}


def create_slow_service(wedata, name: str, model: Path, workspace: str = "default", **service) -> dict:
    """A service of `model` (`CreateMLModelServices`, `service` its other settings) with one request
    at a time per replica, so the load shows as requests in flight; returned once Running."""
    from tests.support.cloudapi import create_service, wait_for_status

    created = create_service(
        wedata,
        {
            "WorkspaceId": workspace,
            "ServiceName": name,
            "Services": [
                {
                    "InstanceType": "TI.S.SMALL.POST",
                    "MlModelInfo": {"ModelPath": str(model)},
                    "BatchConfig": {"MaxBatchSize": 1},
                    **service,
                }
            ],
        },
    )
    wait_for_status(wedata, created["ServiceId"], {"RUNNING"}, workspace=workspace)
    return created
