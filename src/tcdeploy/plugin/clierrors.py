"""Errors as `mlflow deployments …` prints them: one line that says what went wrong.

MLflow's CLI lets a plugin's exceptions escape to Python, which prints a 30-100-line traceback
(twice over for a chained one) around a message that already says what to do. When the client is
made by that CLI, an ``MlflowException`` is printed as ``Error: <message>`` instead (exit status
1, as before); anything else still gets its traceback, and ``TCDEPLOY_TRACEBACK=1`` brings the
traceback back for every error. Nothing changes for Python callers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

_MARK = "_tcdeploy_one_line_errors"


def install_when_under_mlflow_cli() -> None:
    """Print MLflow errors as one line, if this process is ``mlflow deployments …``."""
    if _under_mlflow_cli() and not getattr(sys.excepthook, _MARK, False):
        sys.excepthook = _one_line_hook(sys.excepthook)


def _under_mlflow_cli() -> bool:
    program = Path(sys.argv[0] if sys.argv else "")
    ran_mlflow = program.name == "mlflow" or program.parent.name == "mlflow"  # `mlflow` or `python -m mlflow`
    return ran_mlflow and "deployments" in sys.argv[1:3]


def _one_line_hook(previous):
    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        from mlflow.exceptions import MlflowException

        if isinstance(error, MlflowException) and not os.environ.get("TCDEPLOY_TRACEBACK"):
            print(f"Error: {error.message}", file=sys.stderr)
        else:
            previous(kind, error, trace)

    setattr(hook, _MARK, True)
    return hook
