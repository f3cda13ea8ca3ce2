"""`make run`: the demo upstream on :8081 and Envoy with envoy/demo.yaml in the foreground.

Envoy's output (including one redacted JSON access-log line per request, with the breaker's and
the fallback's decisions) goes to the terminal; Ctrl-C stops both.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.harness.envoy import REPO_ROOT, envoy_binary, interrupt_on_signals
from tests.harness.upstream import Upstream

HELP = """
breakwater demo is running: Envoy on :10000 (admin :9901), demo upstream on :8081.

  curl -i localhost:10000/recommendations/top                       # through the fallback and the breaker
  curl 'localhost:8081/__upstream/mode?mode=status&code=503'        # make the upstream fail
  curl 'localhost:8081/__upstream/mode?mode=delay&ms=1500'          # ... or slow (slow_call is 1s)
  curl 'localhost:8081/__upstream/mode?mode=ok'                     # heal it
  for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code} ' localhost:10000/recommendations; done
  curl -s localhost:9901/stats | grep breakwater                    # breaker state: 0 closed, 1 open, 2 half-open
  curl -s localhost:9901/stats/prometheus | grep breakwater
  curl -s 'localhost:10000/recommendations?email=ola%40example.no&fnr=01010012356' -H 'x-tenant-id: 4111 1111 1111 1111'
                                                                    # then read its access-log line: nothing personal in it

Ctrl-C stops Envoy and the upstream.
"""


def main() -> int:
    interrupt_on_signals()
    with Upstream(port=8081, log=lambda line: print(f"[upstream] {line}", flush=True)):
        command = [envoy_binary(), "-c", "envoy/demo.yaml", "--concurrency", "2", "--use-dynamic-base-id",
                   "-l", "warning"]  # fmt: skip
        envoy = subprocess.Popen(command, cwd=REPO_ROOT)
        print(HELP, flush=True)
        try:
            return envoy.wait()
        except KeyboardInterrupt:
            envoy.send_signal(signal.SIGTERM)
            envoy.wait(timeout=10)
            return 0
        finally:
            if envoy.poll() is None:
                envoy.kill()


if __name__ == "__main__":
    sys.exit(main())
