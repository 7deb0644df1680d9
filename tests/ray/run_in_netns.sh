#!/bin/sh
# The Ray tests, inside a network namespace that holds only loopback.
#
# Ray binds the machine's non-loopback address unless it has none, so its tests (and the
# `tcdeploy server` they talk to, which must share the namespace: loopback is per namespace) run
# in a fresh namespace with only `lo` up; every packet stays on 127.0.0.1. Without the rights to
# make one (not root, no unshare) the tests are skipped, saying why: never run on the host network.
# Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/../.."
if ! unshare --net true 2>/dev/null; then
  echo "tests/ray: SKIPPED: cannot create a network namespace here (needs root and unshare)"
  exit 0
fi
exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/ray "$@"
