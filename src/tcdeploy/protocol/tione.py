"""The tione 2021-11-11 requests this server answers, as the TI-ONE SDK's models name them."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from .apis import NAME_PATTERN
from .schema import WireModel as Model
from .times import IsoTime


class Filter(Model):
    Name: str
    Values: list[str] = Field(default_factory=list, max_length=100)
    Negative: bool = False
    Fuzzy: bool = False


class TioneRequest(Model):
    TiProjectId: str = Field("default", min_length=1, max_length=64)


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


MODELS: dict[str, type[Model]] = {
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
}
