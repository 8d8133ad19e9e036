"""The stored form of a snapshot of the books: full states, and deltas against them.

A snapshot is a cache of :class:`ledger.books.Books` at one seq (``ledger.forensics``). This
module turns books into *tables* (:func:`tables_of`: the books' own dicts, keyed as the books
key them), tables into bytes and back, and tables into books (:func:`books_from_tables`).

Two kinds of record, both zlib-compressed JSON (never pickle: a forensic tool opens files
it did not write, and reading one must not run code):

- a **full** record holds every table;
- a **delta** holds, against one full record (its ``base``), the rows that changed (``put``),
  the keys that went (``gone``) and the small parts that changed (``small``), so that snapshots
  can be dense (a short tail of events to replay) without storing the whole books each time.

Layout, chosen so that a record loads in a few C-level dict and list builds: the registry's
accounts and loans as columns (their keys as indexes into one list of ``names`` per record,
each distinct entry once: thousands of settled loans share one), pledges and collateral as
columns, balances too (a column per part of the key, one of minor amounts); the rest (prices,
aggregates, kinds, ...) exactly as :meth:`Books.small_state` gives it. Minor amounts are JSON integers
within 64 bits and decimal strings beyond, as in the books' state.

A record that does not decode raises ``ValueError`` (or ``KeyError``/``TypeError``/
``IndexError`` for a wrong shape), naming the table where it can; callers treat the snapshot
as unreadable and skip it.
"""

from __future__ import annotations

import gc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from ledger.books import Books, _int_in, _int_out, check_state_version, registry_values
from ledger.policy import Policy
from ledger.registry import AccountInfo, LoanInfo, Registry

#: The snapshot record format. 4: full records and deltas, columns for the large tables. A
#: record of an earlier version (the books' JSON state, version 3 and before) is stale: readers
#: skip it and ``bankrun verify`` says to rebuild.
SNAPSHOT_VERSION = 4

#: The registry kinds kept whole in the small part; accounts, loans and pledges are tables.
_SMALL_KINDS = ("entity", "asset", "pool", "state")
TABLES = ("balances", "limits", "collateral", "book_value", "accounts", "loans", "pledges")
_ACCOUNT_FIELDS = ("entity", "purpose", "holder", "basis", "liability_class", "depositors")
_LOAN_FIELDS = ("lender", "borrower", "asset", "outstanding", "defaulted", "threshold", "pool", "impaired")

Tables = dict[str, Any]  # "small" -> dict, and one dict per name in TABLES


def tables_of(books: Books, *, copy: bool = True) -> Tables:
    """The books as tables: copies of their large dicts (so later events do not move them) and
    the small part. Values are the books' own (ints, :class:`AccountInfo`, :class:`LoanInfo`),
    except book values, kept as their decimal text so that equal tables mean equal digits.
    ``copy=False`` hands out the books' own balances, limits, accounts, loans and pledges: for
    reading at once (a delta's diff, verify's comparison), before the next event moves them."""
    registry = books.registry
    same = (lambda table: table) if not copy else dict
    collateral: dict[tuple[str, str | None], int] = {}
    for target, held in books.collateral.items():
        if not held:
            collateral[(target, None)] = 0  # a target with no asset left: kept, as the books keep it
        for asset, minor in held.items():
            collateral[(target, asset)] = minor
    return {
        "small": books.small_state(_SMALL_KINDS),
        "balances": same(books.balances),
        "limits": same(books.limits),
        "collateral": collateral,
        "book_value": {key: str(value) for key, value in books.book_value.items()},
        "accounts": same(registry.accounts),
        "loans": same(registry.loans),
        "pledges": same(registry.pledges),
    }


def books_from_tables(tables: Tables, policy: Policy | None = None) -> Books:
    """Books continued from ``tables`` (which they take over). Raises ``ValueError`` for a
    small part of another books state version or a malformed amount."""
    small = tables["small"]
    check_state_version(small)
    registry = Registry()
    registry.load_values(registry_values(small["registry"]))
    registry.accounts = tables["accounts"]
    registry.loans = tables["loans"]
    registry.pledges = tables["pledges"]
    collateral: dict[str, dict[str, int]] = {}
    for (target, asset), minor in tables["collateral"].items():
        held = collateral.setdefault(target, {})
        if asset is not None:
            held[asset] = minor
    try:
        book_value = {key: Decimal(text) for key, text in tables["book_value"].items()}
    except InvalidOperation:
        raise ValueError("snapshot: book_value: a value is not a decimal number") from None
    return Books.continued(
        small,
        policy,
        registry=registry,
        balances=tables["balances"],
        limits=tables["limits"],
        collateral=collateral,
        book_value=book_value,
    )


# -- records ---------------------------------------------------------------------------------------
def encode_full(tables: Tables) -> bytes:
    """A full record of ``tables``."""
    names = _Names()
    record = {
        "version": SNAPSHOT_VERSION,
        "kind": "full",
        "last_seq": tables["small"]["last_seq"],
        "small": tables["small"],
        "put": {name: _encode_rows(name, tables[name], names) for name in TABLES},
    }
    record["names"] = names.names
    return zlib.compress(orjson.dumps(record), 6)


def encode_delta(base: Tables, tables: Tables, base_seq: int) -> bytes:
    """A delta record: ``tables`` as the change from ``base`` (the tables of the full record
    at ``base_seq``)."""
    names = _Names()
    put: dict[str, Any] = {}
    gone: dict[str, Any] = {}
    for name in TABLES:
        old, new = base[name], tables[name]
        missing = object()
        changed = {key: value for key, value in new.items() if old.get(key, missing) != value}
        removed = [key for key in old if key not in new]
        if changed:
            put[name] = _encode_rows(name, changed, names)
        if removed:
            gone[name] = _encode_keys(name, removed, names)
    small = {key: value for key, value in tables["small"].items() if base["small"].get(key) != value}
    record = {
        "version": SNAPSHOT_VERSION,
        "kind": "delta",
        "base": base_seq,
        "last_seq": tables["small"]["last_seq"],
        "small": small,
        "put": put,
        "gone": gone,
        "names": names.names,
    }
    return zlib.compress(orjson.dumps(record), 6)


def read_record(blob: bytes) -> dict[str, Any]:
    """The JSON of a record (any version). Raises ``ValueError`` (zlib or JSON)."""
    try:
        record = orjson.loads(zlib.decompress(blob))
    except zlib.error as exc:
        raise ValueError(f"not a compressed snapshot ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError("a snapshot is a JSON object")
    return record


def check_version(record: dict[str, Any]) -> None:
    """Refuse (``ValueError``) a record of another format: an earlier one is stale."""
    version = record.get("version")
    if version != SNAPSHOT_VERSION:
        raise ValueError(
            f"unsupported books state version {version!r} (expected {SNAPSHOT_VERSION}; "
            "rebuild the snapshots with 'snapshot --rebuild')"
        )


def full_tables(record: dict[str, Any]) -> Tables:
    """The tables of a full record."""
    check_version(record)
    if record.get("kind") != "full":
        raise ValueError(f"expected a full snapshot, found kind {record.get('kind')!r}")
    names = _names_of(record)
    put = record["put"]
    tables: Tables = {"small": dict(record["small"])}
    for name in TABLES:
        tables[name] = _decode_rows(name, put[name], names)
    return tables


def apply_delta(base: Tables, record: dict[str, Any], *, keep_base: bool = True) -> Tables:
    """The tables of a delta record over ``base`` (the tables of its full record): new dicts,
    ``base`` left as it was; with ``keep_base=False`` ``base``'s own dicts, changed (a reader
    that needs the base no more saves copying it). Everything is decoded and checked before
    anything changes, so a record that raises leaves ``base`` as it was either way."""
    check_version(record)
    if record.get("kind") != "delta":
        raise ValueError(f"expected a delta snapshot, found kind {record.get('kind')!r}")
    names = _names_of(record)
    put, gone = record["put"], record["gone"]
    small = record["small"]
    if not isinstance(small, dict) or not isinstance(put, dict) or not isinstance(gone, dict):
        raise ValueError("snapshot delta: small, put and gone are JSON objects")
    unknown = (set(put) | set(gone)) - set(TABLES)
    if unknown:
        raise ValueError(f"snapshot delta: unknown table(s) {sorted(unknown)}")
    removed = {name: _decode_keys(name, keys, names) for name, keys in gone.items()}
    for name, keys in removed.items():
        table = base[name]
        missing = [key for key in keys if key not in table]
        if missing:
            raise ValueError(f"snapshot delta: {name}: takes out {missing[0]!r}, which its base does not hold")
    rows = {name: _decode_rows(name, data, names) for name, data in put.items()}
    tables: Tables = {"small": {**base["small"], **small}}
    for name in TABLES:
        table = dict(base[name]) if keep_base else base[name]
        for key in removed.get(name, ()):
            table.pop(key, None)  # (a key named twice: checked present above, gone once)
        if name in rows:
            table.update(rows[name])
        tables[name] = table
    return tables


@contextmanager
def no_collection() -> Iterator[None]:
    """Without the cyclic garbage collector for the block: a snapshot load allocates tens of
    thousands of containers, none of them garbage, and each collection would walk them all."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- table codecs ----------------------------------------------------------------------------------
class _Names:
    """Strings interned once per record: a column holds their indexes."""

    def __init__(self) -> None:
        self.names: list[Any] = []
        self._ids: dict[Any, int] = {}

    def ids(self, values: Any) -> list[int]:  # None too: see _names_of
        ids = self._ids
        out = []
        for value in values:
            found = ids.get(value)
            if found is None:
                found = ids[value] = len(self.names)
                self.names.append(value)
            out.append(found)
        return out


#: The parts of each table's key (a table of one part is keyed by the string itself).
_KEY_PARTS = {
    "balances": 3,
    "limits": 2,
    "collateral": 2,
    "book_value": 3,
    "accounts": 1,
    "loans": 1,
    "pledges": 1,
}


def _names_of(record: dict[str, Any]) -> list[Any]:
    names = record["names"]
    # None stands for "no asset" in a collateral key (a target with nothing left).
    if not isinstance(names, list) or not set(map(type, names)) <= {str, type(None)}:
        raise ValueError("snapshot: names: expected a list of strings")
    return names


def _strings(names: list[Any], ids: Any, table: str) -> list[Any]:
    # An index that is not an int, or beyond the list, raises in the lookup itself (TypeError,
    # IndexError); only a negative one would silently pick from the end.
    if not isinstance(ids, list) or (ids and min(ids) < 0):
        raise ValueError(f"snapshot: {table}: expected a list of name indexes")
    return list(map(names.__getitem__, ids))


def _minors(values: Any, table: str) -> list[int]:
    if not isinstance(values, list):
        raise ValueError(f"snapshot: {table}: expected a list of minor amounts")
    if set(map(type, values)) <= {int}:
        return values
    return [_int_in(value, table) for value in values]


def _encode_keys(name: str, keys: list[Any], names: _Names) -> list[list[int]]:
    """Key columns: one list of name indexes per part of the key."""
    if _KEY_PARTS[name] == 1:
        return [names.ids(keys)]
    return [names.ids(part) for part in zip(*keys, strict=True)] if keys else [[] for _ in range(_KEY_PARTS[name])]


def _decode_keys(name: str, data: Any, names: list[Any]) -> list[Any]:
    parts = _KEY_PARTS[name]
    if not isinstance(data, list) or len(data) != parts:
        raise ValueError(f"snapshot: {name}: expected {parts} key column(s)")
    columns = [_strings(names, column, name) for column in data]
    if len({len(column) for column in columns}) > 1:
        raise ValueError(f"snapshot: {name}: key columns of different lengths")
    if name != "collateral" and None in names and any(None in column for column in columns):
        raise ValueError(f"snapshot: {name}: a key part is missing")
    if parts == 1:
        return columns[0]
    return list(zip(*columns, strict=True))


def _encode_rows(name: str, rows: dict[Any, Any], names: _Names) -> dict[str, Any]:
    items = sorted(rows.items(), key=_sort_key) if name == "collateral" else sorted(rows.items())
    keys = _encode_keys(name, [key for key, _ in items], names)
    if name == "book_value":
        return {"keys": keys, "values": [value for _, value in items]}
    if name not in ("accounts", "loans"):
        return {"keys": keys, "values": [_int_out(value) for _, value in items]}
    # accounts, loans: each distinct entry once, the keys pointing at it
    fields = _ACCOUNT_FIELDS if name == "accounts" else _LOAN_FIELDS
    distinct: dict[Any, int] = {}
    index = []
    for _, value in items:
        found = distinct.get(value)
        if found is None:
            found = distinct[value] = len(distinct)
        index.append(found)
    entries = []
    for value in distinct:
        entry = [getattr(value, field) for field in fields]
        if name == "loans":
            entry[3], entry[7] = _int_out(entry[3]), _int_out(entry[7])
        entries.append(entry)
    return {"keys": keys, "values": index, "entries": entries}


def _sort_key(item: tuple[Any, Any]) -> Any:
    key = item[0]
    if isinstance(key, tuple):
        return tuple("" if part is None else part for part in key)
    return key


def _decode_rows(name: str, data: Any, names: list[Any]) -> dict[Any, Any]:
    keys = _decode_keys(name, data["keys"], names)
    values = data["values"]
    if not isinstance(values, list) or len(values) != len(keys):
        raise ValueError(f"snapshot: {name}: {len(keys)} keys but not as many values")
    if name == "book_value":
        if not set(map(type, values)) <= {str}:
            raise ValueError("snapshot: book_value: expected decimal text")
    elif name in ("accounts", "loans"):
        entries = [_entry(name, entry) for entry in data["entries"]]
        if values and min(values) < 0:
            raise ValueError(f"snapshot: {name}: an entry index is outside the record's entries")
        values = list(map(entries.__getitem__, values))
    else:
        values = _minors(values, name)
    return dict(zip(keys, values, strict=True))


def _entry(name: str, entry: Any) -> AccountInfo | LoanInfo:
    fields = _ACCOUNT_FIELDS if name == "accounts" else _LOAN_FIELDS
    if not isinstance(entry, list) or len(entry) != len(fields):
        raise ValueError(f"snapshot: {name}: an entry has {len(entry)} fields, not {len(fields)}")
    values = dict(zip(fields, entry, strict=True))
    if name == "accounts":
        return AccountInfo(**values)
    values["outstanding"] = _int_in(values["outstanding"], "loans")
    values["impaired"] = _int_in(values["impaired"], "loans")
    if type(values["defaulted"]) is not bool:
        raise ValueError("snapshot: loans: defaulted is true or false")
    return LoanInfo(**values)
