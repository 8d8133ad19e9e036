"""A whole-process raw replay: start Python, read every payload of a log, ``json.loads`` it, add
integer minor units into a dict, print the count. The floor a CLI replay is compared with
(``benchmarks/cli_process.py``).

The loop (``raw_loop``) is written with the standard library alone, so that the floor process
does not pay our start-up; ``benchmarks.cases`` imports the same function for its in-process
raw replay.

    python benchmarks/raw_process.py LOG.db
"""

import json
import sqlite3
import sys


def raw_loop(conn: sqlite3.Connection) -> tuple[int, dict[tuple[str, str], int]]:
    """The raw replay: read each row, json.loads it, add integer minor units into a dict.

    The true floor of a replay: no validation, no invariant, no object per event. Amounts
    become integer minor units at the asset's scale (read from the asset_listed rows), as the
    books keep them (adding Decimals instead would make the floor slower and flatter us).
    ``benchmarks.cases`` times this same function inside its process."""
    balances: dict[tuple[str, str], int] = {}
    scales: dict[str, int] = {}
    count = 0
    for (payload,) in conn.execute("SELECT payload FROM events ORDER BY seq"):
        data = json.loads(payload)
        count += 1
        kind = data["type"]
        if kind == "deposit" or kind == "withdrawal" or kind == "transfer":
            asset = data["asset"]
            whole, _, frac = data["amount"].partition(".")
            units = int(whole + frac.ljust(scales[asset], "0"))
            if kind == "deposit":
                key = (data["account"], asset)
                balances[key] = balances.get(key, 0) + units
            elif kind == "withdrawal":
                key = (data["account"], asset)
                balances[key] = balances.get(key, 0) - units
            else:
                src = (data["from_account"], asset)
                dst = (data["to_account"], asset)
                balances[src] = balances.get(src, 0) - units
                balances[dst] = balances.get(dst, 0) + units
        elif kind == "asset_listed":
            scales[data["asset"]] = data["scale"]
    return count, balances


def main(path: str) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    count, balances = raw_loop(conn)
    print(json.dumps({"events": count, "balances": len(balances)}))


if __name__ == "__main__":
    main(sys.argv[1])
