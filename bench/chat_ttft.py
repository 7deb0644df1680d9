"""Time to first token of an LLM service: through the gateway, against the model's own first chunk.

Starts a `tcdeploy server`, deploys the tests' word-by-word chat model (it timestamps each word it
produces), and streams `--rounds` chat requests through the group's `/v1/chat/completions` with
one reused HTTP client. For each it takes the time from sending to the model producing its first
chunk, and to that chunk's event reaching the client; their difference is what the gateway and
the replica add to the first token. Prints medians and p90s (the first 5 rounds are warm-up).

    .venv/bin/python bench/chat_ttft.py --rounds 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.server.chat.chat_model import events, save_chat_model  # noqa: E402
from tests.support.cloudapi import common_client, create_service, wait_for_status  # noqa: E402
from tests.support.server import start_server  # noqa: E402

WARM_UP = 5


def first_event(http: httpx.Client, url: str, tag: str) -> tuple[float, float]:
    """(sent, first event received), epoch seconds, for one streamed request tagged `tag`."""
    body = {"stream": True, "messages": [{"role": "user", "content": f"{tag} a b c d"}]}
    first = None
    sent = time.time()
    with http.stream("POST", url, json=body) as reply:
        for line in reply.iter_lines():
            if line.startswith("data: ") and first is None:
                first = time.time()
    return sent, first or time.time()


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    return f"median {statistics.median(ordered):6.2f} ms   p90 {ordered[int(len(ordered) * 0.9) - 1]:6.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--delay", type=float, default=0.05, help="the model's pause between words, s")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="chat-ttft-"))
    server = start_server(root / "data")
    try:
        record = root / "record"
        (root / "model").mkdir()
        model = save_chat_model(root / "model", record, delay=args.delay)
        wedata = common_client(server, "wedata")
        created = create_service(
            wedata,
            {"WorkspaceId": "default", "ServiceName": "ttft",
             "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": str(model)}}]},
        )  # fmt: skip
        wait_for_status(wedata, created["ServiceId"], {"RUNNING"})
        url = f"{server.url}/groups/{created['ServiceGroupId']}/v1/chat/completions"
        through, own = [], []
        with httpx.Client(timeout=30) as http:
            for i in range(args.rounds + WARM_UP):
                sent, first = first_event(http, url, f"r{i}")
                produced = next(when for when, what in events(record) if what == f"produced r{i} 0")
                if i >= WARM_UP:
                    through.append((first - sent) * 1000)
                    own.append((produced - sent) * 1000)
        print(f"{args.rounds} streamed requests, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(f"client's first event through the gateway   {summary(through)}")
        print(f"the model's own first chunk (since sending) {summary(own)}")
        print(f"what gateway + replica add to the first token {summary([t - o for t, o in zip(through, own)])}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
