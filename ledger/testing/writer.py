"""A writer process for crash tests: ``python -m ledger.testing.writer DB [options]``.

Appends batches of deposits to the log at DB (creating the standard cast first if the log is
empty) and prints ``ACK <seq> <first_id> <last_id>`` after each COMMIT, flushed, so that a
parent that kills it with SIGKILL knows exactly which batches were acknowledged.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from decimal import Decimal

import events as ev
from ledger.store import open_log
from ledger.testing.strategies import START, cast_events


def batch_events(start_serial: int, size: int, *, prefix: str = "w", same_time: bool = False) -> list[ev.Event]:
    """Deposits ``<prefix><serial>`` for ``size`` consecutive serials (deterministic content),
    one second apart, or all at one time (``same_time``: concurrent writers whose events must
    not go back in time whichever commits first)."""
    return [
        ev.Deposit(
            id=f"{prefix}{serial}",
            at=START + timedelta(seconds=1 if same_time else serial),
            source=("T",),
            account="ex:cust",
            asset="USD",
            amount=Decimal(serial % 997 + 1),
            landed="ex:custody",
        )
        for serial in range(start_serial, start_serial + size)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db")
    parser.add_argument("--batches", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--start", type=int, default=1, help="serial of the first event")
    parser.add_argument("--prefix", default="w", help="id prefix (distinct per concurrent writer)")
    parser.add_argument("--same-time", action="store_true", help="every event at one effective time")
    args = parser.parse_args(argv)
    log = open_log(args.db, create=True)
    if log.head().seq == 0:
        log.append(cast_events())
        print("READY", flush=True)
    serial = args.start
    for _ in range(args.batches):
        batch = batch_events(serial, args.batch_size, prefix=args.prefix, same_time=args.same_time)
        result = log.append(batch)
        print(f"ACK {result.head.seq} {batch[0].id} {batch[-1].id}", flush=True)
        serial += args.batch_size
    log.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
