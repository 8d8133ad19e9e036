"""State a history in a few lines of TOML inside a test (in the spirit of Beancount's tests).

``timeline(tmp_path, text)`` prepends a standard header (schema_version, ``[timeline]``,
``[sources]`` with the key ``T``) and a standard cast, writes the file and loads it::

    tl = timeline(tmp_path, '''
        [[events]]
        id = "d1"
        type = "deposit"
        account = "ex:cust"
        asset = "USD"
        amount = "100.00"
        landed = "ex:custody"
    ''')
    steps, summary = run(tl)

Conveniences, so that a test states only what matters:

- a table (``[[events]]``, or an extra ``[[entities]]``/``[[assets]]``/``[[accounts]]``) without
  ``source`` gets ``source = ["T"]``;
- a declaration without ``at`` gets :data:`CAST_AT`; an event without ``at`` gets the previous
  event's ``at`` (the first one :data:`EVENTS_AT`), so events stay in time order.

The standard cast (declared at :data:`CAST_AT`, in this order, seq 1..15):

- entities: ``ex`` (exchange, group ``g``), ``aff`` (trading_firm, group ``g``), ``cust``
  (customer_pool), ``bank`` (lender), ``world`` (other);
- assets: ``USD`` (scale 2, fiat), ``BTC`` (scale 8, crypto), ``TOK`` (scale 4,
  exchange_token, issuer ``ex``);
- accounts: ``ex:custody`` (customer-custody), ``ex:treasury`` (corporate), ``ex:cust``
  (customer, holder ``cust``), ``ex:aff`` (customer, holder ``aff``), ``aff:bank`` (corporate),
  ``bank:vault`` (corporate), ``world:market`` (external).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import events as ev
import replays
from ledger.policy import Policy
from ledger.replay import Replay, Step, Summary

CAST_AT = "2022-01-01T00:00:00Z"
EVENTS_AT = "2022-01-02T00:00:00Z"
START = datetime(2022, 1, 1, tzinfo=UTC)

ENTITIES = (
    ("ex", "Exchange", "exchange", "g"),
    ("aff", "Affiliate trading firm", "trading_firm", "g"),
    ("cust", "Customers", "customer_pool", None),
    ("bank", "A bank", "lender", None),
    ("world", "The world outside", "other", None),
)
ASSETS = (
    ("USD", "US dollar", 2, "fiat", None),
    ("BTC", "Bitcoin", 8, "crypto", None),
    ("TOK", "Exchange token", 4, "exchange_token", "ex"),
)
ACCOUNTS = (
    ("ex:custody", "customer-custody", None),
    ("ex:treasury", "corporate", None),
    ("ex:cust", "customer", "cust"),
    ("ex:aff", "customer", "aff"),
    ("aff:bank", "corporate", None),
    ("bank:vault", "corporate", None),
    ("world:market", "external", None),
)
#: How many events the standard cast declares; the first event of a scenario is seq CAST_SIZE + 1.
CAST_SIZE = len(ENTITIES) + len(ASSETS) + len(ACCOUNTS)
FIRST_SEQ = CAST_SIZE + 1


def _header(name: str) -> str:
    out = [
        "schema_version = 1",
        "",
        "[timeline]",
        f'name = "{name}"',
        'title = "test scenario"',
        'quote = "USD"',
        "",
        "[sources]",
        'T = "Written by the test"',
        "",
    ]
    for entity, label, kind, group in ENTITIES:
        out += ["[[entities]]", f'entity = "{entity}"', f'name = "{label}"', f'kind = "{kind}"']
        if group:
            out.append(f'group = "{group}"')
        out += [f"at = {CAST_AT}", 'source = ["T"]', ""]
    for asset, label, scale, kind, issuer in ASSETS:
        out += ["[[assets]]", f'asset = "{asset}"', f'name = "{label}"', f"scale = {scale}", f'kind = "{kind}"']
        if issuer:
            out.append(f'issuer = "{issuer}"')
        out += [f"at = {CAST_AT}", 'source = ["T"]', ""]
    for account, purpose, holder in ACCOUNTS:
        out += ["[[accounts]]", f'account = "{account}"', f'purpose = "{purpose}"']
        if holder:
            out.append(f'holder = "{holder}"')
        out += [f"at = {CAST_AT}", 'source = ["T"]', ""]
    return "\n".join(out) + "\n"


_TABLE = re.compile(r"^\s*\[\[\s*(?P<name>[A-Za-z_]+)\s*\]\]\s*$")
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_\-]+)\s*=\s*(?P<value>.*)$")


def _fill_defaults(body: str) -> str:
    """Add ``source`` and ``at`` to the tables of ``body`` that lack them (see module doc)."""
    lines = textwrap.dedent(body).strip("\n").splitlines()
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in lines:
        match = _TABLE.match(line)
        if match:
            blocks.append((match["name"], [line]))
        else:
            blocks[-1][1].append(line)
    out: list[str] = []
    last_at = EVENTS_AT
    for name, block in blocks:
        if name is None:
            out += block
            continue
        keys = {}
        for line in block[1:]:
            match = _KEY.match(line)
            if match:
                keys[match["key"]] = match["value"].strip()
        extra = []
        if "source" not in keys:
            extra.append('source = ["T"]')
        if name == "events":
            if "at" in keys:
                last_at = keys["at"]
            else:
                extra.append(f"at = {last_at}")
        elif "at" not in keys:
            extra.append(f"at = {CAST_AT}")
        out += [block[0], *extra, *block[1:]]
    return "\n".join(out) + "\n"


def timeline_text(body: str = "", *, name: str = "t") -> str:
    """The full TOML text of a scenario: header, cast, then ``body`` with defaults filled."""
    return _header(name) + "\n" + (_fill_defaults(body) if body.strip() else "")


def timeline(tmp_path: Path, body: str = "", *, name: str = "t", filename: str | None = None) -> replays.Timeline:
    """Write the scenario to ``tmp_path`` and load it (raises ``InputError`` like the loader)."""
    path = Path(tmp_path) / (filename or f"{name}.toml")
    path.write_text(timeline_text(body, name=name), encoding="utf-8")
    return replays.load_timeline(path)


def write(tmp_path: Path, body: str = "", *, name: str = "t", filename: str | None = None) -> Path:
    """Like :func:`timeline` but return the path (for CLI tests)."""
    path = Path(tmp_path) / (filename or f"{name}.toml")
    path.write_text(timeline_text(body, name=name), encoding="utf-8")
    return path


def run(source: Any, policy: Policy | None = None, **kwargs: Any) -> tuple[list[Step], Summary]:
    """Replay ``source`` to the end; return every step and the summary."""
    replay_ = Replay(source, policy, **kwargs)
    steps = list(replay_)
    return steps, replay_.summary


# -- reading the outcome -------------------------------------------------------------------------
def seq_of(tl: replays.Timeline, event_id: str) -> int:
    """The seq an event gets when the timeline is replayed (1-based position)."""
    for index, event in enumerate(tl.events, start=1):
        if event.id == event_id:
            return index
    raise KeyError(event_id)


def opened(steps: Iterable[Step], invariant: str) -> list[tuple[int, str, str]]:
    """``(seq, event_id, subject)`` of every violation of ``invariant`` opened, in order."""
    return [(v.seq, v.event_id, v.subject) for s in steps for v in s.opened if v.invariant == invariant]


def closed(steps: Iterable[Step], invariant: str) -> list[tuple[int, str, str]]:
    """``(seq of the closing step, closing event id, subject)`` per violation of ``invariant`` closed."""
    return [(s.seq, s.event.id, v.subject) for s in steps for v in s.closed if v.invariant == invariant]


def step_of(steps: Iterable[Step], event_id: str) -> Step:
    for s in steps:
        if s.event.id == event_id:
            return s
    raise KeyError(event_id)


def cast_events() -> list[ev.Event]:
    """The standard cast as events (for histories built in Python rather than TOML)."""
    out: list[ev.Event] = []
    for entity, label, kind, group in ENTITIES:
        out.append(ev.EntityRegistered(id=f"entity:{entity}", at=START, source=("T",), entity=entity, name=label, kind=kind, group=group))
    for asset, label, scale, kind, issuer in ASSETS:
        out.append(ev.AssetListed(id=f"asset:{asset}", at=START, source=("T",), asset=asset, name=label, scale=scale, kind=kind, issuer=issuer))
    for account, purpose, holder in ACCOUNTS:
        out.append(ev.AccountOpened(id=f"account:{account}", at=START, source=("T",), account=account, purpose=purpose, holder=holder))
    return out
