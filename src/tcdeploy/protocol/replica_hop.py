"""The data hop to a replica on another machine, as the runtime, the gateway and the replica agree.

A replica on a Ray node listens on TCP beside its unix socket. Its runtime publishes the address
`tcp://HOST:PORT/POD`; the gateway sends every request there with the pod's token in
`TOKEN_HEADER`; the replica reads the token it expects from `TOKEN_ENV` and checks it in constant
time. The token is an HMAC of the server secret and the pod name (the server derives it; nothing
else needs the secret).
"""

from __future__ import annotations

TCP_PREFIX = "tcp://"
TOKEN_HEADER = "x-tcdeploy-replica-token"
TOKEN_ENV = "TCDEPLOY_REPLICA_TOKEN"


def tcp_address(host: str, port: int, pod_name: str) -> str:
    """The address of a replica that listens on TCP (what a runtime publishes for it)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{TCP_PREFIX}{shown}:{port}/{pod_name}"


def split_tcp_address(address: str) -> tuple[str, int, str]:
    """(host, port, pod name) of a `tcp://HOST:PORT/POD` address; ValueError if it is not one."""
    if not address.startswith(TCP_PREFIX):
        raise ValueError(f"not a TCP replica address: {address!r}")
    where, _, pod_name = address[len(TCP_PREFIX) :].partition("/")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit() or not pod_name:
        raise ValueError(f"not a TCP replica address: {address!r}")
    return host.strip("[]"), int(port), pod_name
