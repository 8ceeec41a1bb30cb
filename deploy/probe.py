"""Probe a Mishards router the way a client would: connect with pymilvus and list collections.

    python deploy/probe.py [HOST:PORT]     (default 127.0.0.1:19530)

With AUTHORIZATION_ENABLED on the router (the chart's default), give a credential in
MILVUS_TOKEN, e.g. `MILVUS_TOKEN=root:<auth.rootPassword>`.

Prints `Pass ==> Pass: Connected` and exits 0, as the original Mishards probe did, or
`Error ==> Error: Fail connecting to server on HOST:PORT. <why>` and exits 1.
"""

from __future__ import annotations

import os
import sys


def probe(address: str, timeout: float = 10.0) -> tuple[bool, str]:
    """(connected, what the original probe said: `Pass: Connected` or `Error: ...`)."""
    from pymilvus import MilvusClient

    try:
        client = MilvusClient(uri=f"http://{address}", token=os.environ.get("MILVUS_TOKEN", ""), timeout=timeout)
        try:
            client.list_collections(timeout=timeout)
        finally:
            client.close()
    except Exception as exc:  # any failure is the probe's answer, not a crash
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return False, f"Error: Fail connecting to server on {address}. {reason}"
    return True, "Pass: Connected"


def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:19530"
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    ok, message = probe(address, timeout)
    print(f"{'Pass' if ok else 'Error'} ==> {message}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
