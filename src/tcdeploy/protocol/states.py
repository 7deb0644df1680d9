"""The state words of services, groups and pods, with the service's transitions in one place.

Shared by the server's backend and gateway and by the plugin, so a status is spelled once. The
enums are `str` enums: they compare equal to, and serialise as, the words on the wire.
"""

from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    def __str__(self) -> str:  # f-strings and messages show the wire word, not the member name
        return self.value


class ServiceStatus(_Word):
    """A service (an MLflow deployment, a version in a group)."""

    CREATING = "Creating"
    CREATE_FAILED = "CreateFailed"
    RUNNING = "Running"
    UPDATING = "Updating"
    ABNORMAL = "Abnormal"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    DELETING = "Deleting"

    @property
    def serves(self) -> bool:
        """Takes traffic. Abnormal still serves: some replicas may crash-loop while others answer."""
        return self in _SERVING

    @property
    def recovering(self) -> bool:
        """A version with no ready replica in this state is about to get one back (a replica
        restarting after a crash, replicas starting after a server restart), so a request may wait
        for it. Not Abnormal: a crash loop may last."""
        return self in _RECOVERING

    @property
    def settled(self) -> bool:
        """No apply work pending: health (Abnormal ↔ Running) may move it."""
        return self in _SETTLED

    @property
    def failed(self) -> bool:
        """What a waiting client gives up on."""
        return self in _FAILED

    def can_become(self, new: ServiceStatus) -> bool:
        return new is self or new in TRANSITIONS[self]


S = ServiceStatus
_SERVING = frozenset({S.RUNNING, S.UPDATING, S.ABNORMAL})
_RECOVERING = frozenset({S.RUNNING, S.UPDATING})
_SETTLED = frozenset({S.RUNNING, S.ABNORMAL})
_FAILED = frozenset({S.CREATE_FAILED, S.ABNORMAL})

# Which status may follow which. A server restart re-enters Creating or Updating from anything but
# CreateFailed and the stopped states; Deleting is the end from every state.
TRANSITIONS: dict[ServiceStatus, frozenset[ServiceStatus]] = {
    S.CREATING: frozenset(
        {
            S.RUNNING,
            S.UPDATING,
            S.ABNORMAL,
            S.CREATE_FAILED,
            S.STOPPING,
            S.STOPPED,
            S.DELETING,
        }
    ),
    S.CREATE_FAILED: frozenset({S.CREATING, S.DELETING}),
    S.RUNNING: frozenset({S.UPDATING, S.ABNORMAL, S.STOPPING, S.STOPPED, S.DELETING}),
    S.UPDATING: frozenset({S.RUNNING, S.ABNORMAL, S.STOPPING, S.STOPPED, S.DELETING}),
    S.ABNORMAL: frozenset({S.RUNNING, S.UPDATING, S.STOPPING, S.STOPPED, S.DELETING}),
    S.STOPPING: frozenset({S.STOPPED, S.UPDATING, S.DELETING}),
    S.STOPPED: frozenset({S.UPDATING, S.STOPPING, S.DELETING}),
    S.DELETING: frozenset(),
}
del S


class GroupStatus(_Word):
    """A service group, summed up from its services."""

    NORMAL = "Normal"
    CREATING = "Creating"
    UPDATING = "Updating"
    ABNORMAL = "Abnormal"
    STOPPED = "Stopped"

    @classmethod
    def of(cls, services: list[ServiceStatus]) -> GroupStatus | ServiceStatus:
        """The most pressing of the services' states: a change under way, then trouble, then
        Normal when one runs; an empty group is Stopped; otherwise the (shared) state itself."""
        if not services:
            return cls.STOPPED
        present = set(services)
        for status, word in _GROUP_PRECEDENCE:
            if status in present:
                return word
        return next(iter(present))


_GROUP_PRECEDENCE = (
    (ServiceStatus.CREATING, GroupStatus.CREATING),
    (ServiceStatus.UPDATING, GroupStatus.UPDATING),
    (ServiceStatus.ABNORMAL, GroupStatus.ABNORMAL),
    (ServiceStatus.RUNNING, GroupStatus.NORMAL),
)


class PodPhase(_Word):
    """A replica, as the wire shows it. Stopped is the runtime's own last word on a pod it is about
    to forget; the wire never lists a stopped pod."""

    PENDING = "Pending"
    RUNNING = "Running"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    STOPPED = "Stopped"


class EventType(_Word):
    NORMAL = "Normal"
    WARNING = "Warning"


# ---- the words each API uses ------------------------------------------------------------------
# TI-ONE's are its SDK's (`Service.Status`: CREATING, CREATE_FAILED, Normal, Abnormal, Waiting,
# Pending, Stopping, Stopped). WeData's published replies show NEW (just created) and RUNNING; where
# the reference is silent, wedata says TI-ONE's word in its own upper case (docs/wire.md).

_S = ServiceStatus
TIONE_WORDS: dict[ServiceStatus, str] = {
    _S.CREATING: "CREATING",
    _S.CREATE_FAILED: "CREATE_FAILED",
    _S.RUNNING: "Normal",
    _S.UPDATING: "Waiting",
    _S.ABNORMAL: "Abnormal",
    _S.STOPPING: "Stopping",
    _S.STOPPED: "Stopped",
    _S.DELETING: "Stopping",
}
WEDATA_WORDS: dict[ServiceStatus, str] = {
    _S.CREATING: "NEW",
    _S.CREATE_FAILED: "CREATE_FAILED",
    _S.RUNNING: "RUNNING",
    _S.UPDATING: "UPDATING",
    _S.ABNORMAL: "ABNORMAL",
    _S.STOPPING: "STOPPING",
    _S.STOPPED: "STOPPED",
    _S.DELETING: "DELETING",
}
_GROUP_AS_SERVICE = {
    GroupStatus.NORMAL: _S.RUNNING,
    GroupStatus.CREATING: _S.CREATING,
    GroupStatus.UPDATING: _S.UPDATING,
    GroupStatus.ABNORMAL: _S.ABNORMAL,
    GroupStatus.STOPPED: _S.STOPPED,
}
del _S


def tione_word(status: ServiceStatus | GroupStatus) -> str:
    """A service's or a group's status as TI-ONE says it (groups use the services' words)."""
    return TIONE_WORDS[_as_service(status)]


def wedata_word(status: ServiceStatus | GroupStatus) -> str:
    """A service's or a group's status as wedata says it."""
    return WEDATA_WORDS[_as_service(status)]


def _as_service(status: ServiceStatus | GroupStatus) -> ServiceStatus:
    return _GROUP_AS_SERVICE[status] if isinstance(status, GroupStatus) else ServiceStatus(status)
