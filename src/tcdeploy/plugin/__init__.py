"""The MLflow target: MLflow's deployment API as calls to the wedata and tione cloud APIs.

``client`` (the ``BaseDeploymentClient``; ``tcdeploy`` re-exports it), ``settings`` (target URI,
credentials, allow-list), ``cloudapi`` (signed calls with retries, behind a one-method seam),
``bodies`` (request bodies and config keys), ``lookup`` (names to ids), ``predict`` (one scoring
call), ``waiting`` (blocking until a service runs). Nothing here imports ``tcdeploy.server``.
"""
