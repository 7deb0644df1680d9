"""A service's type, `MACHINE_LEARNING` or `LLM` (WeData's 机器学习服务 and 大模型服务): as asked, or
read from its model; an LLM service must hold a model that can chat, and a group holds one type."""

from __future__ import annotations

from tcdeploy.protocol.chat import LLM, MACHINE_LEARNING, SERVICE_TYPES, why_not_chat
from tcdeploy.protocol.errors import InvalidParameterValue

from .registry import ModelRegistry


async def settle_service_type(
    registry: ModelRegistry, model_uri: str, requested: str | None, group_type: str | None, group_id: str | None
) -> str:
    """The type a service with `model_uri` gets: `requested` if given, else its group's, else
    LLM when the model can chat. Refused naming `ServiceType`: an unknown word, LLM for a model
    that cannot chat, a type other than the group's."""
    wanted = _word(requested) if requested else group_type
    mlmodel = await registry.mlmodel(model_uri)
    why = "its MLmodel file cannot be read" if mlmodel is None else why_not_chat(mlmodel)
    settled = wanted or (LLM if why is None else MACHINE_LEARNING)
    if settled == LLM and why is not None:
        raise InvalidParameterValue("ServiceType", f"an LLM service needs a model that can chat; {model_uri}: {why}")
    if group_type and settled != group_type:
        raise InvalidParameterValue(
            "ServiceType",
            f"service group {group_id} holds {group_type} services; a {settled} service needs a group of its own",
        )
    return settled


def _word(requested: str) -> str:
    word = SERVICE_TYPES.get(requested.upper())
    if word is None:
        raise InvalidParameterValue(
            "ServiceType", f"must be {MACHINE_LEARNING} (or ML) or {LLM}, got {requested!r:.40}"
        )
    return word


def group_type(specs: list[dict]) -> str | None:
    """The type of a group's services (the first one's: they all share it), None when empty."""
    return specs[0].get("ServiceType", MACHINE_LEARNING) if specs else None
