"""The action catalogue: every action each API service answers, with its typed request model.

Field names are the wire's (PascalCase). Models refuse unknown fields so a typo is an error, not a
silently ignored setting. See docs/wire.md for what each action does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from . import errors
from .apis import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_WAIT_MS, NAME_PATTERN, TIONE, WEDATA


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _iso_time(value: str) -> str:
    """An ISO-8601 time the server can turn into epoch seconds (naive: the server's local time)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
        if parsed is not None:
            (parsed if parsed.tzinfo else parsed.astimezone()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise PydanticCustomError("value_error", "is not an ISO-8601 time like 2026-01-10T12:15:03+08:00") from None
    return value


IsoTime = Annotated[str, AfterValidator(_iso_time)]


# ---- shared pieces -------------------------------------------------------------------------------


class ServiceLimitSpec(Model):
    EnableInstanceRpsLimit: bool = False
    InstanceRpsLimit: int = Field(0, ge=0, le=100_000)
    EnableInstanceReqLimit: bool = False
    InstanceReqLimit: int = Field(0, ge=0, le=100_000)


class ScheduledActionSpec(Model):
    ScheduleStop: bool = False
    ScheduleStopTime: Optional[str] = None


class LogConfigSpec(Model):
    LogsetId: Optional[str] = None
    TopicId: Optional[str] = None


class MlModelInfoSpec(Model):
    Id: Optional[str] = None
    Name: Optional[str] = None
    Version: Optional[str] = None
    ModelPath: Optional[str] = Field(None, max_length=4096)

    @field_validator("Version", mode="before")
    @classmethod
    def _version_as_text(cls, value):
        return str(value) if isinstance(value, int) else value


class BatchConfigSpec(Model):
    MaxBatchSize: int = Field(DEFAULT_MAX_BATCH_ROWS, ge=1, le=8192)
    MaxBatchWaitMs: float = Field(DEFAULT_MAX_BATCH_WAIT_MS, ge=0, le=1000)


class Filter(Model):
    Name: str
    Values: list[str] = Field(default_factory=list, max_length=100)
    Negative: bool = False
    Fuzzy: bool = False


class WedataRequest(Model):
    WorkspaceId: str = Field("default", min_length=1, max_length=64)


class TioneRequest(Model):
    TiProjectId: str = Field("default", min_length=1, max_length=64)


# ---- wedata 2025-10-10 ---------------------------------------------------------------------------


class ServiceSpec(Model):
    InstanceType: str = Field(min_length=1, max_length=64)
    Replicas: int = Field(1, ge=0, le=16)
    ChargeType: str = "POSTPAID_BY_HOUR"
    ScaleMode: Literal["MANUAL", "AUTO"] = "MANUAL"
    ServiceLimit: Optional[ServiceLimitSpec] = None
    ScheduledAction: Optional[ScheduledActionSpec] = None
    CatalogName: Optional[str] = None
    SchemaName: Optional[str] = None
    MlModelInfo: MlModelInfoSpec
    BatchConfig: Optional[BatchConfigSpec] = None


class CreateMLModelServices(WedataRequest):
    ServiceName: str = Field(pattern=NAME_PATTERN)
    ServiceGroupId: Optional[str] = None
    Services: list[ServiceSpec] = Field(min_length=1, max_length=1)
    AuthorizationEnable: bool = False
    LogEnable: bool = False
    LogConfig: Optional[LogConfigSpec] = None
    ServiceDescription: Optional[str] = Field(None, max_length=1024)
    ModelSource: str = "MODEL"
    Status: str = "NEW"
    ServiceAction: str = "START"
    InferenceTablePushEnable: bool = False
    CatalogPath: Optional[str] = None
    SchemaPath: Optional[str] = None
    PayloadPath: Optional[str] = None


class UpdateMLModelService(WedataRequest):
    ServiceId: str
    ServiceAction: Optional[Literal["STOP", "RESUME", "SCALE"]] = None
    InstanceType: Optional[str] = Field(None, min_length=1, max_length=64)
    Replicas: Optional[int] = Field(None, ge=0, le=16)
    ChargeType: Optional[str] = None
    ScaleMode: Optional[Literal["MANUAL", "AUTO"]] = None
    ServiceLimit: Optional[ServiceLimitSpec] = None
    ScheduledAction: Optional[ScheduledActionSpec] = None
    MlModelInfo: Optional[MlModelInfoSpec] = None
    CatalogName: Optional[str] = None
    SchemaName: Optional[str] = None
    BatchConfig: Optional[BatchConfigSpec] = None
    LogEnable: Optional[bool] = None
    LogConfig: Optional[LogConfigSpec] = None
    AuthorizationEnable: Optional[bool] = None
    InferenceTablePushEnable: Optional[bool] = None
    ServiceDescription: Optional[str] = Field(None, max_length=1024)
    ModelSource: Optional[str] = None
    Status: Optional[str] = None
    ServicePort: Optional[int] = Field(None, ge=1, le=65535)


class ServiceRef(WedataRequest):
    ServiceId: str


class DeleteMLModelService(ServiceRef):
    pass


class GetMLModelService(ServiceRef):
    pass


class ListMLModelServiceGroups(WedataRequest):
    Filters: list[Filter] = Field(default_factory=list, max_length=20)
    Offset: int = Field(0, ge=0)
    Limit: int = Field(20, ge=1, le=100)
    ServiceGroupId: Optional[str] = None  # the seed plugin sends this instead of a filter


class ModelServiceInterfaceCallTest(WedataRequest):
    ServiceGroupId: str
    ServiceId: Optional[str] = None
    CurlData: str = Field(max_length=10 * 2**20)
    RelativeUrl: str = "/predict"
    AuthTokenValue: Optional[str] = None


class PodRef(ServiceRef):
    PodName: str = Field(min_length=1, max_length=128)


class CreateModelServicePodUrl(PodRef):
    pass


class RebuildModelServicePod(PodRef):
    pass


class ListMLServiceLogs(WedataRequest):
    Service: Literal["INFER"] = "INFER"
    ServiceId: str
    PodName: Optional[str] = Field(None, max_length=128)
    StartTime: Optional[IsoTime] = None
    EndTime: Optional[IsoTime] = None
    Limit: int = Field(100, ge=1, le=1000)
    Context: Optional[str] = Field(None, max_length=512)


class ListModelVersions(WedataRequest):
    CatalogName: str = "default"
    SchemaName: str = "default"
    ModelName: str = Field(min_length=1, max_length=256)
    MaxResults: int = Field(100, ge=1, le=1000)
    PageToken: Optional[str] = Field(None, pattern=r"^[0-9]{0,12}$")  # a NextPageToken we gave


# ---- tione 2021-11-11 ----------------------------------------------------------------------------


class DescribeInferenceSpecs(TioneRequest):
    SpecType: Optional[Literal["CPU", "GPU"]] = None


class GroupRef(TioneRequest):
    ServiceGroupId: str


class CreateModelServiceGroup(TioneRequest):
    ServiceGroupName: str = Field(pattern=NAME_PATTERN)
    AuthorizationEnable: bool = False


class DescribeModelServiceGroup(GroupRef):
    pass


class DescribeModelServiceGroups(TioneRequest):
    Offset: int = Field(0, ge=0)
    Limit: int = Field(20, ge=1, le=100)
    Order: Literal["ASC", "DESC"] = "ASC"
    OrderField: Literal["CreateTime", "UpdateTime"] = "CreateTime"
    Filters: list[Filter] = Field(default_factory=list, max_length=20)
    TagFilters: list[dict] = Field(default_factory=list, max_length=20)


class WeightEntry(Model):
    ServiceId: str
    Weight: int = Field(ge=0, le=100)


class ModifyServiceGroupWeights(GroupRef):
    Weights: list[WeightEntry] = Field(min_length=1, max_length=2)


class DeleteModelServiceGroup(GroupRef):
    pass


class DescribeModelServiceCallInfo(GroupRef):
    pass


class CreateModelServiceAuthToken(GroupRef):
    Name: str = Field("default", min_length=1, max_length=60)
    Description: Optional[str] = Field(None, max_length=1024)


class DeleteModelServiceAuthToken(GroupRef):
    AuthTokenValue: str = Field(min_length=1, max_length=256)


class ModifyModelServiceAuthorization(GroupRef):
    AuthorizationEnable: bool


class DescribeModelServiceMonitoring(GroupRef):
    StartTime: Optional[IsoTime] = None
    EndTime: Optional[IsoTime] = None
    Step: int = Field(60, ge=1, le=3600)


CATALOGUE: dict[str, dict[str, type[Model]]] = {
    WEDATA: {
        m.__name__: m
        for m in (
            CreateMLModelServices,
            UpdateMLModelService,
            DeleteMLModelService,
            GetMLModelService,
            ListMLModelServiceGroups,
            ModelServiceInterfaceCallTest,
            CreateModelServicePodUrl,
            RebuildModelServicePod,
            ListMLServiceLogs,
            ListModelVersions,
        )
    },
    TIONE: {
        m.__name__: m
        for m in (
            DescribeInferenceSpecs,
            CreateModelServiceGroup,
            DescribeModelServiceGroup,
            DescribeModelServiceGroups,
            ModifyServiceGroupWeights,
            DeleteModelServiceGroup,
            DescribeModelServiceCallInfo,
            CreateModelServiceAuthToken,
            DeleteModelServiceAuthToken,
            ModifyModelServiceAuthorization,
            DescribeModelServiceMonitoring,
        )
    },
}


_CODE_FOR_ERROR_TYPE = {
    "missing": errors.MISSING_PARAMETER,
    "extra_forbidden": errors.UNKNOWN_PARAMETER,
}
_VALUE_ERROR_TYPES = {
    "string_pattern_mismatch",
    "greater_than_equal",
    "less_than_equal",
    "greater_than",
    "less_than",
    "too_short",
    "too_long",
    "string_too_short",
    "string_too_long",
    "literal_error",
    "value_error",
}


def parse_request(model: type[Model], payload: object) -> Model:
    """Validate a request body against its model; refuse it with the field's name and the problem."""
    from pydantic import ValidationError

    from .errors import ApiError, InvalidParameter

    if not isinstance(payload, dict):
        raise InvalidParameter("the request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        first = problems[0]
        if first["type"] in _CODE_FOR_ERROR_TYPE:
            code = _CODE_FOR_ERROR_TYPE[first["type"]]
        elif first["type"] in _VALUE_ERROR_TYPES:
            code = errors.INVALID_PARAMETER_VALUE
        else:
            code = errors.INVALID_PARAMETER
        message = "; ".join(f"{_field_path(e['loc'])}: {_describe(e)}" for e in problems[:5])
        raise ApiError(message, code=code) from None


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _describe(error: dict) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return "is not a parameter of this action"
    return error["msg"]
