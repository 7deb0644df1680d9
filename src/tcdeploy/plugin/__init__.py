"""The MLflow target: MLflow's deployment API as calls to the wedata and tione cloud APIs.

``client`` (the ``BaseDeploymentClient``; ``tcdeploy`` re-exports it), ``settings`` (target URI,
credentials, allow-list), ``cloudapi`` (signed calls with retries, behind a one-method seam),
``configkeys`` (what ``config`` may say), ``bodies`` (request bodies from MLflow's arguments),
``casing`` (PascalCase on the wire, snake_case for users), ``lookup`` (names to ids), ``predict``
(one scoring call), ``waiting`` (blocking until a service runs). Nothing here imports
``tcdeploy.server``.
"""
