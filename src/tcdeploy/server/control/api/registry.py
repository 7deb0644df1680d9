"""The model registry on the wire, backed by the server's MLflow registry: versions (list, get, move
aliases) and models (list in a schema, get, search).

A wedata model is `<catalog>.<schema>.<model>`; the server registers MLflow names, so the name is
looked up qualified first, then bare (as a model a notebook registered with a plain name). Page
tokens are opaque: a client hands back the `NextPageToken` it was given.
"""

from __future__ import annotations

import base64
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue, ResourceNotFound

from .context import Context

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_TOKEN_PREFIX = "tcdeploy:"


# ---- versions ---------------------------------------------------------------------------------


async def list_model_versions(ctx: Context, req: Any) -> dict:
    names = _names(req)
    versions = await ctx.backend.registry.versions(names, ctx.workspace)
    if versions is None:
        raise ResourceNotFound("model", names[0])
    page, following = _page(versions, req.MaxResults, req.PageToken)
    return {
        "Data": {
            "Items": [_version_info(req, v) for v in page],
            "NextPageToken": following,
            "TotalCount": str(len(versions)),
        }
    }


async def get_model_version(ctx: Context, req: Any) -> dict:
    version = await ctx.backend.registry.version(_names(req), str(req.ModelVersion), ctx.workspace)
    if version is None:
        raise ResourceNotFound("model version", f"{_names(req)[0]}/{req.ModelVersion}")
    return {"Data": {"ModelVersion": _version_info(req, version)}}


async def update_aliases(ctx: Context, req: Any) -> dict:
    version = await ctx.backend.registry.update_aliases(
        _names(req),
        str(req.ModelVersion),
        list(req.AddedAliases or ()),
        list(req.RemovedAliases or ()),
        ctx.workspace,
    )
    if version is None:
        raise ResourceNotFound("model version", f"{_names(req)[0]}/{req.ModelVersion}")
    return {"Data": {"ModelVersion": _version_info(req, version)}}


# ---- models -----------------------------------------------------------------------------------


async def list_models(ctx: Context, req: Any) -> dict:
    models = await ctx.backend.registry.models(prefix=f"{req.CatalogName}.{req.SchemaName}.", workspace=ctx.workspace)
    return _model_page(models, req)


async def get_model(ctx: Context, req: Any) -> dict:
    model = await ctx.backend.registry.model(_names(req), ctx.workspace)
    if model is None:
        raise ResourceNotFound("model", _names(req)[0])
    return {"Data": {"Model": _model_info(model)}}


async def search_models(ctx: Context, req: Any) -> dict:
    """Models whose name contains `Filter`, within the catalog (and schema) if given."""
    if req.SchemaName and not req.CatalogName:
        raise InvalidParameterValue("SchemaName", "needs CatalogName")
    prefix = ".".join(p for p in (req.CatalogName, req.SchemaName) if p)
    models = await ctx.backend.registry.models(
        prefix=f"{prefix}." if prefix else "", contains=req.Filter or "", workspace=ctx.workspace
    )
    return _model_page(models, req)


def _model_page(models: list[dict], req: Any) -> dict:
    page, following = _page(models, req.MaxResults, req.PageToken)
    return {
        "Data": {
            "Items": [_model_info(m) for m in page],
            "NextPageToken": following,
            "TotalCount": str(len(models)),
        }
    }


# ---- shapes -----------------------------------------------------------------------------------


def _names(req: Any) -> list[str]:
    return [f"{req.CatalogName}.{req.SchemaName}.{req.ModelName}", req.ModelName]


def _split(name: str) -> tuple[str, str, str]:
    """(catalog, schema, model) of a registered name; a bare name has neither catalog nor schema."""
    parts = name.split(".")
    return (parts[0], parts[1], ".".join(parts[2:])) if len(parts) >= 3 else ("", "", name)


def _version_info(req: Any, version: dict) -> dict:
    catalog, schema, model = _split(version["Name"])
    uri = f"models:/{version['Name']}/{version['Version']}"
    return {
        # A bare name was found for the catalog and schema the request named: shown under them.
        "CatalogName": catalog or req.CatalogName,
        "SchemaName": schema or req.SchemaName,
        "ModelName": model,
        "Version": version["Version"],
        "Uri": uri,
        "Comment": version["Description"],
        "Aliases": version["Aliases"],
        "Audit": _audit(version),
        "Properties": [
            {"Key": "tclake.mlflow.model_id", "Value": version["ModelId"]},
            {"Key": "tclake.mlflow.artifact_path", "Value": uri},
            {"Key": "tclake.mlflow.run_id", "Value": version["RunId"]},
            {"Key": "tclake.mlflow.source", "Value": version["Source"]},
            {"Key": "tclake.mlflow.status", "Value": version["Status"]},
            *_pairs(version["Tags"]),
        ],
    }


def _model_info(model: dict) -> dict:
    catalog, schema, name = _split(model["Name"])
    return {
        "Id": model["Name"],
        "Name": name,
        "CatalogName": catalog,
        "SchemaName": schema,
        "Comment": model["Description"],
        "LatestVersion": model["LatestVersion"],
        "Properties": _pairs(model["Tags"]),
        "Audit": _audit(model),
    }


def _audit(record: dict) -> dict:
    user = record.get("UserId", "")
    return {
        "Creator": user,
        "CreatorName": user,
        "CreatedAt": record["CreateTime"],
        "LastModifier": user,
        "LastModifierName": user,
        "LastModifiedAt": record["UpdateTime"],
    }


def _pairs(tags: dict[str, str]) -> list[dict]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


# ---- paging -----------------------------------------------------------------------------------


def _page(items: list, max_results: int | str | None, token: str | None) -> tuple[list, str]:
    """One page from the offset `token` holds, and the token of the next ("" after the last)."""
    size = DEFAULT_PAGE if max_results in (None, "") else int(max_results)
    if not 1 <= size <= MAX_PAGE:
        raise InvalidParameterValue("MaxResults", f"must be between 1 and {MAX_PAGE}")
    start = _offset(token)
    following = start + size
    return items[start:following], _token(following) if following < len(items) else ""


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{offset}".encode()).decode().rstrip("=")


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if text.startswith(_TOKEN_PREFIX) and text[len(_TOKEN_PREFIX) :].isdigit():
            return int(text[len(_TOKEN_PREFIX) :])
    except ValueError:
        pass
    raise InvalidParameterValue("PageToken", "is not a NextPageToken from a previous reply")
