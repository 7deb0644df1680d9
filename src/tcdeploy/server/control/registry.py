"""The MLflow model registry behind `ListModelVersions` and the model URIs services load."""
from __future__ import annotations

import asyncio
from functools import lru_cache
from pathlib import Path

from ...protocol.actions import ListModelVersions, MlModelInfoSpec
from ...protocol.errors import MISSING_PARAMETER, ApiError, invalid_value, not_found
from ...protocol.urls import validate_model_uri
from .actions import Context, action


@lru_cache(maxsize=4)
def _client(tracking_uri: str):
    from mlflow import MlflowClient  # heavy import, paid once and only when needed

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


async def resolve_model_uri(
    ctx: Context, info: MlModelInfoSpec, catalog: str | None, schema: str | None, field: str
) -> str:
    """The URI replicas load: ModelPath if given (checked), else the registry's Name/Version."""
    if info.ModelPath:
        try:
            uri = validate_model_uri(info.ModelPath)
        except ValueError as exc:
            raise invalid_value(f"{field}.ModelPath", str(exc)) from None
        await asyncio.to_thread(_check_exists, ctx.core.settings.tracking_uri, uri, f"{field}.ModelPath")
        return uri
    if info.Name and info.Version:
        names = [f"{catalog}.{schema}.{info.Name}"] if catalog and schema else []
        names.append(info.Name)
        for name in names:
            uri = f"models:/{name}/{info.Version}"
            if await asyncio.to_thread(_registered, ctx.core.settings.tracking_uri, name, info.Version):
                return uri
        raise not_found("model version", f"{names[0]}/{info.Version}")
    raise ApiError(MISSING_PARAMETER, f"{field}: ModelPath, or Name and Version, is required")


def _check_exists(tracking_uri: str, uri: str, field: str) -> None:
    if uri.startswith("models:/"):
        ref = uri[len("models:/"):]
        if "@" in ref:
            name, alias = ref.split("@", 1)
            found = _alias_exists(tracking_uri, name, alias)
        else:
            name, _, version = ref.partition("/")
            found = (not version) or _registered(tracking_uri, name, version)
        if not found:
            raise invalid_value(field, f"{uri} is not in the model registry")
    elif uri.startswith("/") or uri.startswith("file:"):
        path = Path(uri.removeprefix("file://"))
        if not (path / "MLmodel").is_file():
            raise invalid_value(field, f"{path} is not an MLflow model directory (no MLmodel file)")


def _registered(tracking_uri: str, name: str, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        _client(tracking_uri).get_model_version(name, str(version))
        return True
    except MlflowException:
        return False


def _alias_exists(tracking_uri: str, name: str, alias: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        _client(tracking_uri).get_model_version_by_alias(name, alias)
        return True
    except MlflowException:
        return False


@action("wedata", ListModelVersions)
async def list_model_versions(ctx: Context, req: ListModelVersions) -> dict:
    names = [f"{req.CatalogName}.{req.SchemaName}.{req.ModelName}", req.ModelName]
    items = await asyncio.to_thread(_versions, ctx.core.settings.tracking_uri, names)
    if items is None:
        raise not_found("model", names[0])
    start = int(req.PageToken) if (req.PageToken or "").isdigit() else 0
    page = items[start:start + req.MaxResults]
    following = start + req.MaxResults
    return {"Data": {
        "Items": page,
        "NextPageToken": str(following) if following < len(items) else "",
        "TotalCount": str(len(items)),
    }}


def _versions(tracking_uri: str, names: list[str]) -> list[dict] | None:
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    for name in names:
        try:
            client.get_registered_model(name)
        except MlflowException:
            continue
        versions = client.search_model_versions(f"name = '{_quote(name)}'")
        versions.sort(key=lambda v: int(v.version))
        return [
            {
                "Name": name,
                "Version": str(v.version),
                "Status": v.status,
                "CreateTime": str(v.creation_timestamp),
                "Description": v.description or "",
                "Properties": [
                    {"Key": "tclake.mlflow.model_id", "Value": getattr(v, "model_id", None) or v.run_id or ""},
                    {"Key": "tclake.mlflow.artifact_path", "Value": f"models:/{name}/{v.version}"},
                    {"Key": "tclake.mlflow.source", "Value": v.source or ""},
                ],
            }
            for v in versions
        ]
    return None


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")

