"""The MLflow model registry: which URI a service's replicas load, and the versions of a model.

The registry is partitioned by workspace: a version belongs to the workspace its
`tcdeploy.workspace` tag names, else to the one its registered model's tag names, else to
`default` (a model registered from a notebook with plain MLflow). From another workspace it
cannot be listed, read, changed or deployed: it answers as a model that is not there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tcdeploy.protocol.errors import InvalidParameterValue, MissingParameter, ResourceNotFound
from tcdeploy.protocol.urls import validate_model_uri

WORKSPACE_TAG = "tcdeploy.workspace"
DEFAULT_WORKSPACE = "default"


@dataclass(frozen=True)
class ModelRef:
    """What a request names to deploy: a model path or URI, or a registered name and version."""

    path: str | None = None
    name: str | None = None
    version: str | None = None


class ModelRegistry:
    """The server's MLflow registry; every call that touches it runs off the event loop."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    @cached_property
    def _client(self):
        from mlflow import MlflowClient  # heavy import, paid once and only when needed

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    async def resolve(
        self, ref: ModelRef, catalog: str | None, schema: str | None, field: str, workspace: str = DEFAULT_WORKSPACE
    ) -> str:
        """The URI replicas load: the path if given (checked), else the registry's name/version
        (qualified by catalog and schema first, as WeData's Unity-style names are), of a model
        in `workspace`."""
        if ref.path:
            try:
                uri = validate_model_uri(ref.path)
            except ValueError as exc:
                raise InvalidParameterValue(f"{field}.ModelPath", str(exc)) from None
            await asyncio.to_thread(self._check_exists, uri, f"{field}.ModelPath", workspace)
            return uri
        if ref.name and ref.version:
            names = [f"{catalog}.{schema}.{ref.name}"] if catalog and schema else []
            names.append(ref.name)
            for name in names:
                if await asyncio.to_thread(self._registered, name, ref.version, workspace):
                    return f"models:/{name}/{ref.version}"
            raise ResourceNotFound("model version", f"{names[0]}/{ref.version}")
        raise MissingParameter(field, "ModelPath, or Name and Version, is required")

    async def versions(self, names: list[str], workspace: str = DEFAULT_WORKSPACE) -> list[dict] | None:
        """The versions in `workspace` of the first of `names` that is registered there, oldest
        first; None if none is."""
        return await asyncio.to_thread(self._versions, names, workspace)

    async def mlmodel(self, uri: str) -> dict | None:
        """The model's MLmodel file as a dict (what it is: flavors, signature, metadata), or None
        if it cannot be read from here."""
        return await asyncio.to_thread(self._mlmodel, uri)

    def _mlmodel(self, uri: str) -> dict | None:
        import yaml

        try:
            with open(self._mlmodel_file(uri)) as file:
                document = yaml.safe_load(file)
        except (OSError, ValueError, yaml.YAMLError):
            return None
        return document if isinstance(document, dict) else None

    def _mlmodel_file(self, uri: str) -> str:
        """A local copy of the model's MLmodel file. A model on this machine's disk is read in
        place: importing MLflow (about 65 MiB of the server's memory) is only paid for a registry
        or a remote store."""
        path = _local_path(uri)
        if path is not None:
            return str(path / "MLmodel")
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        try:
            return download_artifacts(artifact_uri=f"{self._location(uri).rstrip('/')}/MLmodel")
        except MlflowException as exc:
            raise OSError(str(exc)) from None

    def _location(self, uri: str) -> str:
        """Where a model's files are: registry and logged-model URIs resolved with this server's
        registry (not the process's global tracking URI)."""
        if not uri.startswith("models:/"):
            return uri
        ref = uri[len("models:/") :]
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return self._client.get_model_version_download_uri(
                name, self._client.get_model_version_by_alias(name, alias).version
            )
        name, _, version = ref.partition("/")
        if version:
            return self._client.get_model_version_download_uri(name, version)
        return self._client.get_logged_model(name).artifact_location

    def _check_exists(self, uri: str, field: str, workspace: str) -> None:
        if uri.startswith("models:/"):
            ref = uri[len("models:/") :]
            if "@" in ref:
                name, alias = ref.split("@", 1)
                found = self._alias_exists(name, alias, workspace)
            else:
                name, _, version = ref.partition("/")
                found = (not version) or self._registered(name, version, workspace)
            if not found:
                raise InvalidParameterValue(field, f"{uri} is not in the model registry")
        elif uri.startswith("runs:/"):
            # Checked here like the other forms, before anything is created: a run that is not
            # there would otherwise surface as a service that fails to load.
            run_id = uri[len("runs:/") :].split("/", 1)[0]
            if not self._run_exists(run_id):
                raise InvalidParameterValue(field, f"{uri}: run {run_id!r} is not in the server's tracking store")
        elif (path := _local_path(uri)) is not None:
            if not (path / "MLmodel").is_file():
                raise InvalidParameterValue(field, f"{path} is not an MLflow model directory (no MLmodel file)")

    def _registered(self, name: str, version: str, workspace: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self._in(workspace, self._client.get_model_version(name, str(version)))
        except MlflowException:
            return False

    def _in(self, workspace: str, version, model=None) -> bool:
        """Whether a model version (or, with `version` None, a registered model) is `workspace`'s."""
        tags = dict(getattr(version, "tags", None) or {}) if version is not None else {}
        if WORKSPACE_TAG not in tags:
            model = model or self._client.get_registered_model(version.name)
            tags = dict(model.tags or {})
        return tags.get(WORKSPACE_TAG, DEFAULT_WORKSPACE) == workspace

    def _run_exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_run(run_id)
            return True
        except MlflowException:
            return False

    def _alias_exists(self, name: str, alias: str, workspace: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self._in(workspace, self._client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return False

    def _versions(self, names: list[str], workspace: str) -> list[dict] | None:
        name = self._first_registered(names, workspace)
        if name is None:
            return None
        model = self._client.get_registered_model(name)
        versions = self._client.search_model_versions(f"name = '{_quote(name)}'")
        versions.sort(key=lambda v: int(v.version))
        return [_version(v) for v in versions if self._in(workspace, v, model)]

    def _first_registered(self, names: list[str], workspace: str) -> str | None:
        """The first of `names` registered with a version (or, with none yet, its model tag) in
        `workspace`."""
        from mlflow.exceptions import MlflowException

        for name in names:
            try:
                model = self._client.get_registered_model(name)
            except MlflowException:
                continue
            if self._model_in(workspace, model):
                return name
        return None

    def _model_in(self, workspace: str, model) -> bool:
        if WORKSPACE_TAG in (model.tags or {}):
            return model.tags[WORKSPACE_TAG] == workspace
        latest = model.latest_versions or ()
        return self._in(workspace, latest[-1], model) if latest else workspace == DEFAULT_WORKSPACE

    # ---- models and aliases, for wedata's registry actions --------------------------------------

    async def version(self, names: list[str], version: str, workspace: str = DEFAULT_WORKSPACE) -> dict | None:
        """One version in `workspace` of the first of `names` registered there; None if there is none."""
        return await asyncio.to_thread(self._version, names, version, workspace)

    async def models(self, prefix: str = "", contains: str = "", workspace: str = DEFAULT_WORKSPACE) -> list[dict]:
        """Every registered model of `workspace` whose name starts with `prefix` and contains
        `contains`, by name."""
        return await asyncio.to_thread(self._models, prefix, contains, workspace)

    async def model(self, names: list[str], workspace: str = DEFAULT_WORKSPACE) -> dict | None:
        return await asyncio.to_thread(self._model, names, workspace)

    async def update_aliases(
        self, names: list[str], version: str, added: list[str], removed: list[str], workspace: str = DEFAULT_WORKSPACE
    ) -> dict | None:
        """Point `added` at this version (moving them from another) and drop `removed` from it.
        An alias to remove must be on this version: refused naming `RemovedAliases`, nothing changed."""
        return await asyncio.to_thread(self._update_aliases, names, version, added, removed, workspace)

    def _version(self, names: list[str], version: str, workspace: str) -> dict | None:
        from mlflow.exceptions import MlflowException

        name = self._first_registered(names, workspace)
        if name is None:
            return None
        try:
            found = self._client.get_model_version(name, str(version))
        except MlflowException:
            return None
        return _version(found) if self._in(workspace, found) else None

    def _models(self, prefix: str, contains: str, workspace: str) -> list[dict]:
        found, token = [], None
        while True:
            page = self._client.search_registered_models(max_results=1000, page_token=token)
            found.extend(
                m for m in page if m.name.startswith(prefix) and contains in m.name and self._model_in(workspace, m)
            )
            token = page.token
            if not token:
                break
        return [_model(m) for m in sorted(found, key=lambda m: m.name)]

    def _model(self, names: list[str], workspace: str) -> dict | None:
        name = self._first_registered(names, workspace)
        return None if name is None else _model(self._client.get_registered_model(name))

    def _update_aliases(
        self, names: list[str], version: str, added: list[str], removed: list[str], workspace: str
    ) -> dict | None:
        current = self._version(names, version, workspace)
        if current is None:
            return None
        for i, alias in enumerate(removed):
            if alias not in current["Aliases"]:
                raise InvalidParameterValue(f"RemovedAliases.{i}", f"{alias!r} is not an alias of version {version}")
        for alias in removed:
            self._client.delete_registered_model_alias(current["Name"], alias)
        for alias in added:
            self._client.set_registered_model_alias(current["Name"], alias, str(version))
        return self._version([current["Name"]], version, workspace)


def _version(v) -> dict:
    return {
        "Name": v.name,
        "Version": str(v.version),
        "Status": v.status,
        "CreateTime": str(v.creation_timestamp),
        "UpdateTime": str(v.last_updated_timestamp or v.creation_timestamp),
        "Description": v.description or "",
        "ModelId": getattr(v, "model_id", None) or v.run_id or "",
        "RunId": v.run_id or "",
        "Source": v.source or "",
        "UserId": v.user_id or "",
        "Aliases": sorted(v.aliases or ()),
        "Tags": dict(v.tags or {}),
    }


def _model(m) -> dict:
    latest = max((int(v.version) for v in m.latest_versions or ()), default=0)
    return {
        "Name": m.name,
        "Description": m.description or "",
        "CreateTime": str(m.creation_timestamp),
        "UpdateTime": str(m.last_updated_timestamp or m.creation_timestamp),
        "LatestVersion": str(latest) if latest else "",
        "Tags": dict(m.tags or {}),
    }


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")


def _local_path(uri: str) -> Path | None:
    """The directory of a model on this machine's disk (an absolute path or `file:///…`), else None."""
    if uri.startswith("/") or uri.startswith("file:"):
        return Path(uri.removeprefix("file://"))
    return None
