"""The model registry on the wire: `ListModelVersions`."""

from __future__ import annotations

from typing import Any

from tcdeploy.protocol.errors import ResourceNotFound

from .context import Context


async def list_model_versions(ctx: Context, req: Any) -> dict:
    names = [f"{req.CatalogName}.{req.SchemaName}.{req.ModelName}", req.ModelName]
    limit = min(max(int(req.MaxResults or 100), 1), 1000)
    versions = await ctx.backend.registry.versions(names)
    if versions is None:
        raise ResourceNotFound("model", names[0])
    start = int(req.PageToken) if (req.PageToken or "").isdigit() else 0
    page = versions[start : start + limit]
    following = start + limit
    return {
        "Data": {
            "Items": [_item(v) for v in page],
            "NextPageToken": str(following) if following < len(versions) else "",
            "TotalCount": str(len(versions)),
        }
    }


def _item(version: dict) -> dict:
    return {
        "Name": version["Name"],
        "Version": version["Version"],
        "Status": version["Status"],
        "CreateTime": version["CreateTime"],
        "Description": version["Description"],
        "Properties": [
            {"Key": "tclake.mlflow.model_id", "Value": version["ModelId"]},
            {"Key": "tclake.mlflow.artifact_path", "Value": f"models:/{version['Name']}/{version['Version']}"},
            {"Key": "tclake.mlflow.source", "Value": version["Source"]},
        ],
    }
