"""The benchmark model: a RandomForest on 11 synthetic numeric features, saved as an MLflow model."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

N_FEATURES = 11
COLUMNS = [f"x{i:02d}" for i in range(N_FEATURES)]
# MLflow >= 3.17 saves sklearn models with skops and refuses types it has not been told to trust.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


@dataclass(frozen=True)
class BenchModel:
    path: Path
    frame: pd.DataFrame  # rows that request bodies are cut from
    n_estimators: int
    n_samples: int
    seed: int
    train_s: float
    predict_ms: dict[int, float]  # rows -> median in-process sklearn predict time

    def describe(self) -> dict:
        return {
            "kind": "sklearn RandomForestClassifier",
            "features": N_FEATURES,
            "n_estimators": self.n_estimators,
            "training_rows": self.n_samples,
            "seed": self.seed,
            "train_s": round(self.train_s, 2),
            "path": str(self.path),
            "inprocess_sklearn_predict_ms": self.predict_ms,
        }


def synthetic_frame(n_samples: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Gaussian features and a noisy linear boundary: a forest that grows real, deep trees."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_samples, N_FEATURES))
    weights = rng.normal(size=N_FEATURES)
    labels = (features @ weights + rng.normal(scale=1.0, size=n_samples) > 0).astype(np.int64)
    return pd.DataFrame(features, columns=COLUMNS), labels


def train_bench_model(
    path: Path, n_estimators: int = 100, n_samples: int = 5000, seed: int = 0, row_counts: tuple[int, ...] = (1, 100)
) -> BenchModel:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier

    frame, labels = synthetic_frame(n_samples, seed)
    started = time.monotonic()
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed).fit(frame, labels)
    train_s = time.monotonic() - started
    signature = infer_signature(frame, model.predict(frame))
    mlflow.sklearn.save_model(model, str(path), signature=signature, skops_trusted_types=TRUSTED_TYPES)
    predict_ms = {rows: _median_predict_ms(model, frame.iloc[:rows]) for rows in row_counts}
    return BenchModel(path, frame, n_estimators, n_samples, seed, train_s, predict_ms)


def _median_predict_ms(model, rows: pd.DataFrame, repeats: int = 30) -> float:
    """The model's own cost, the floor under any server's latency."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(rows)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


def request_body(frame: pd.DataFrame, rows: int, form: str = "mlflow") -> bytes:
    """A body with `rows` rows in the form a server takes: `mlflow` (a `dataframe_split`, which
    mlflow, MLServer's /invocations and ours accept), `v2` (the Open Inference Protocol, one input
    per column decoded as a DataFrame: MLServer's batched endpoint) or `bentoml` (`{"data": rows}`
    for a BentoML API taking an ndarray)."""
    if rows > len(frame):
        raise ValueError(f"rows: {rows} is more than the {len(frame)} rows the model was trained on")
    split = frame.iloc[:rows].to_dict(orient="split")
    if form == "mlflow":
        body: dict = {"dataframe_split": {"columns": split["columns"], "data": split["data"]}}
    elif form == "v2":
        body = {
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": name, "datatype": "FP64", "shape": [rows], "data": frame[name].iloc[:rows].tolist()}
                for name in COLUMNS
            ],
        }
    elif form == "bentoml":
        body = {"data": split["data"]}
    else:
        raise ValueError(f"form: {form!r} is not mlflow, v2 or bentoml")
    return json.dumps(body).encode()


def predictions_in(reply: object, form: str) -> list | None:
    """The predictions of a server's reply to `request_body(..., form)`; None if it has none."""
    if form == "v2" and isinstance(reply, dict):
        outputs = reply.get("outputs") or [{}]
        reply = outputs[0].get("data")
    elif form == "mlflow" and isinstance(reply, dict):
        reply = reply.get("predictions")
    return reply if isinstance(reply, list) else None
