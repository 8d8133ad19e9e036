"""Replay cost by layer, for instruction counts: one layer per run, over a stored log.

    python -m benchmarks.layers make DB N [ACCOUNTS]   # write W(N) to DB (untimed set-up)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.layers LAYER DB             # then read "Collected" (instructions)

Instructions per event of a layer = (count at N2 - count at N1) / (N2 - N1) for two logs of the
same accounts: start-up and the declarations cancel out. Layers, each including those above it:

- ``raw``: the raw loop (rows, json.loads, integer minor units into a dict of balances);
- ``ref-decode``: the reference's read + decode (``Log.iter_payloads``: an Event per row);
- ``ref-books``: + registry checks and the books (``books_at``: no invariant);
- ``ref-replay``: + every standard invariant and the engine (the reference ``Replay.run``);
- ``fast-read``: the fast core's read (rows, orjson.loads, the digest);
- ``fast-apply``: + the core's applies, no invariant enabled;
- ``fast-replay``: + every standard invariant (``Replay.run`` on the fast core).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from itertools import islice

import orjson

from ledger import core
from ledger.policy import Policy
from ledger.replay import Replay, _fast_violation, books_at
from ledger.store import Log
from ledger.synthetic import workload


def _raw(db: str) -> int:
    from benchmarks.cases import raw_loop

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    return raw_loop(conn)[0]


def main(argv: list[str]) -> None:
    layer, db = argv[0], argv[1]
    if layer == "make":
        n, accounts = int(argv[2]), int(argv[3]) if len(argv) > 3 else 1000
        with Log.open(db, create=True) as log:
            stream = workload(n, accounts=accounts)
            while chunk := list(islice(stream, 20_000)):
                log.append(chunk)
        return
    if layer == "raw":
        count = _raw(db)
    elif layer == "json":  # the raw loop's read + json.loads only
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        count = sum(1 for (p,) in conn.execute("SELECT payload FROM events ORDER BY seq") if json.loads(p))
    else:
        with Log.open(db, readonly=True) as log:
            if layer == "ref-decode":
                count = sum(1 for _ in log.iter_payloads())
            elif layer == "ref-books":
                count = books_at(log).last_seq
            elif layer == "ref-replay":
                run = Replay(log, metrics=False)
                run._fast = False
                count = run.run().events
            elif layer in ("fast-read", "fast-apply"):
                machine = core.Machine(Policy(), [], _fast_violation)
                digest = hashlib.sha256()
                apply = machine.step if layer == "fast-apply" else None
                count = 0
                for seq, payload in log.connection.execute("SELECT seq, payload FROM events ORDER BY seq"):
                    data = orjson.loads(payload)
                    if apply is not None:
                        apply(data, seq)
                    digest.update(payload.encode() + b"\n")
                    count += 1
            elif layer == "fast-replay":
                run = Replay(log, metrics=False)
                count = run.run().events
                assert run._books_stale, "the fast core did not cover this log"
            else:
                raise SystemExit(f"unknown layer {layer}")
    print(count)


if __name__ == "__main__":
    main(sys.argv[1:])
