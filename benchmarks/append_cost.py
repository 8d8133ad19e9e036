"""Append cost for instruction counts: one case per run, to read under callgrind.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.append_cost CASE N         # then read "Collected" (instructions)

Instructions per event of a case = (count(CASE, N2) - count(CASE, N1) - (count(GEN, N2) -
count(GEN, N1))) / (N2 - N1): start-up and generating the workload cancel out. Cases:

- ``gen``: generate W(N) over 1,000 accounts in chunks of 20,000 (nothing else);
- ``raw``: + encode each chunk (``events.log_record``) and ``executemany`` it into the raw
  table, one transaction a chunk (``benchmarks.cases``' raw baseline);
- ``ours``: + ``Log.append`` of each chunk;
- ``single-gen``: generate W(N) over 100 accounts;
- ``single-raw``: + one encode, ``INSERT`` and ``COMMIT`` per event;
- ``single-ours``: + ``Log.append([event])`` per event.
"""

from __future__ import annotations

import os
import sys
import tempfile
from itertools import islice

from benchmarks.cases import _raw_connection, _rows, raw_commit_each, raw_insert_chunk
from ledger.store import Log
from ledger.synthetic import workload


def main(argv: list[str]) -> None:
    case, n = argv[0], int(argv[1])
    with tempfile.TemporaryDirectory(prefix="ledger-append-cost-") as tmp:
        db = os.path.join(tmp, "log.db")
        if case.startswith("single-"):
            batch = list(workload(n, accounts=100))
            if case == "single-raw":
                conn = _raw_connection(db)
                raw_commit_each(conn, batch)
                conn.close()
            elif case == "single-ours":
                with Log.open(db, create=True) as log:
                    for event in batch:
                        log.append([event])
            elif case != "single-gen":
                raise SystemExit(f"unknown case {case}")
            return
        stream = workload(n, accounts=1000)
        chunks = []
        while chunk := list(islice(stream, 20_000)):
            chunks.append(chunk)
        if case == "raw":
            conn, seq = _raw_connection(db), 1
            for chunk in chunks:
                rows = _rows(chunk, seq)
                seq += len(rows)
                raw_insert_chunk(conn, rows)
            conn.close()
        elif case == "ours":
            with Log.open(db, create=True) as log:
                for chunk in chunks:
                    log.append(chunk)
        elif case != "gen":
            raise SystemExit(f"unknown case {case}")


if __name__ == "__main__":
    main(sys.argv[1:])
