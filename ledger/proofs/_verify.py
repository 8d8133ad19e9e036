"""Standalone verification of a proof of liabilities: what a customer runs, without the log.

Written apart from the builder on purpose (only ``hashlib`` and the layout in
``docs/proofs.md``), so that the tests of one check the other. :func:`verify_inclusion` takes the
parsed JSON of an inclusion proof and the root the venue published (64 hex digits, or the
parsed liabilities statement) and returns what was proven, or raises :class:`ProofInvalid`
naming what is wrong.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ledger.errors import ProofInvalid

FORMAT = "ftx-ledger proof of liabilities v1"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMOUNT = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?")
_EMPTY_HASH = bytes(32)


@attrs.frozen
class Verified:
    """What a verified inclusion proof shows.

    Attributes:
        account: the customer account whose leaf it is.
        venue, ledger_id, seq, head_hash: the point the root was taken at.
        balances: the leaf's amounts, minor units per asset.
        totals: the root's sums, minor units per asset (what the venue says it owes in all).
        assets: ``(code, scale)`` in order.
        root: the root the proof was checked against (hex).
    """

    account: str
    venue: str
    ledger_id: str
    seq: int
    head_hash: str
    balances: dict[str, int]
    totals: dict[str, int]
    assets: tuple[tuple[str, int], ...]
    root: str


def _bad(message: str, kind: str = "malformed") -> ProofInvalid:
    return ProofInvalid(message, kind=kind)


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in data:
        raise _bad(f"{key}: missing from the {what}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _bad(f"{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _hex(data: Mapping[str, Any], key: str, what: str) -> bytes:
    value = _field(data, key, str, what)
    if not _HEX64.fullmatch(value):
        raise _bad(f"{key}: must be 64 hex digits, got {value!r}")
    return bytes.fromhex(value)


def parse_amount(text: Any, scale: int, where: str) -> int:
    """Minor units of a decimal string with at most ``scale`` decimals (exact, never rounded)."""
    if not isinstance(text, str) or not (m := _AMOUNT.fullmatch(text)):
        raise _bad(f"{where}: expected a decimal string such as '12.50', got {text!r}")
    sign, whole, fraction = m.group(1), m.group(2), m.group(3) or ""
    if len(fraction) > scale:
        raise _bad(f"{where}: {text} has {len(fraction)} decimals; the asset has {scale}")
    minor = int(whole + fraction.ljust(scale, "0"))
    return -minor if sign else minor


def format_amount(minor: int, scale: int) -> str:
    """The inverse of :func:`parse_amount`: every decimal of the scale written."""
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(scale + 1, "0")
    return sign + (digits[:-scale] + "." + digits[-scale:] if scale else digits)


def _amounts(data: Any, assets: tuple[tuple[str, int], ...], where: str) -> list[int]:
    if not isinstance(data, dict) or set(data) != {code for code, _ in assets}:
        raise _bad(
            f"{where}: expected one amount per asset ({', '.join(c for c, _ in assets)}), got {data!r}"
        )
    return [parse_amount(data[code], scale, f"{where}.{code}") for code, scale in assets]


_MAX_SUM = 2**127 - 1


def _pack(values: list[int]) -> int:
    """The amounts side by side, 128 bits each (their 16-byte encodings, concatenated)."""
    packed = 0
    for v in values:
        if not 0 <= v <= _MAX_SUM:
            if v < 0:
                return -1  # negative: the caller has already refused it
            raise _bad(f"an amount of {v} minor units does not fit 16 bytes (at most 2^127 - 1)")
        packed = (packed << 128) | v
    return packed


def _enc(values: list[int], where: str) -> bytes:
    try:
        return b"".join(v.to_bytes(16, "big", signed=True) for v in values)
    except OverflowError:
        raise _bad(
            f"{where}: an amount does not fit 16 bytes (at most 2^127 - 1 minor units)"
        ) from None


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def _header(
    data: Mapping[str, Any], what: str
) -> tuple[str, str, int, bytes, tuple[tuple[str, int], ...], int]:
    if data.get("format") != FORMAT:
        raise _bad(
            f"format: expected {FORMAT!r}, got {data.get('format')!r}: not a proof of liabilities"
        )
    ledger_id = _field(data, "ledger_id", str, what)
    venue = _field(data, "venue", str, what)
    seq = _field(data, "seq", int, what)
    head_hash = _hex(data, "head_hash", what)
    leaf_count = _field(data, "leaf_count", int, what)
    if seq < 0 or leaf_count < 0:
        raise _bad("seq and leaf_count must be >= 0")
    raw_assets = _field(data, "assets", list, what)
    assets = []
    for n, item in enumerate(raw_assets):
        if not isinstance(item, dict):
            raise _bad(f"assets[{n}]: expected {{'asset': code, 'scale': n}}, got {item!r}")
        code, scale = _field(item, "asset", str, what), _field(item, "scale", int, what)
        if not 0 <= scale <= 18:
            raise _bad(f"assets[{n}].scale: must be 0..18, got {scale}")
        assets.append((code, scale))
    return ledger_id, venue, seq, head_hash, tuple(assets), leaf_count


def _root(
    header: tuple[str, str, int, bytes, tuple[tuple[str, int], ...], int], top: bytes
) -> bytes:
    ledger_id, venue, seq, head_hash, assets, leaf_count = header
    parts = [b"\x02", _text(ledger_id), _text(venue), seq.to_bytes(8, "big"), head_hash]
    parts += [leaf_count.to_bytes(8, "big"), len(assets).to_bytes(2, "big")]
    for code, scale in assets:
        parts += [_text(code), scale.to_bytes(1, "big")]
    return hashlib.sha256(b"".join(parts) + top).digest()


def _negative(values: list[int], assets: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(
        f"{format_amount(v, scale)} {code}"
        for v, (code, scale) in zip(values, assets, strict=True)
        if v < 0
    )


def verify_statement(statement: Mapping[str, Any]) -> bytes:
    """Check a liabilities statement on its own: its totals are non-negative and its header,
    top hash and totals hash to its root. Returns the root; raises :class:`ProofInvalid`."""
    header = _header(statement, "liabilities statement")
    assets = header[4]
    totals = _amounts(statement.get("totals"), assets, "totals")
    if any(t < 0 for t in totals):
        raise _bad(
            f"totals: negative ({_negative(totals, assets)}): liabilities cannot be negative",
            "negative-sum",
        )
    top = _hex(statement, "top_hash", "liabilities statement") + _enc(totals, "totals")
    root = _root(header, top)
    if root != _hex(statement, "root", "liabilities statement"):
        raise _bad(
            f"the statement's header, top hash and totals hash to {root.hex()}, not to the root it "
            f"states ({statement['root']}): it was changed",
            "changed",
        )
    return root


def verify_inclusion(
    proof: Mapping[str, Any], root: str | Mapping[str, Any], *, seq: int | None = None
) -> Verified:
    """Verify a customer's inclusion proof against a published root (see the module doc).

    ``root`` is 64 hex digits, or a liabilities statement (its own consistency is checked
    first, and its ledger, venue, seq and head are compared with the proof's). ``seq``, if
    given, is the seq the root was published for. Raises :class:`ProofInvalid`.
    """
    if not isinstance(proof, Mapping):
        raise _bad("a proof is a JSON object")
    if proof.get("kind") != "inclusion":
        raise _bad(f"kind: expected 'inclusion', got {proof.get('kind')!r}")
    header = _header(proof, "inclusion proof")
    ledger_id, venue, proof_seq, head_hash, assets, leaf_count = header
    account = _field(proof, "account", str, "inclusion proof")
    index = _field(proof, "index", int, "inclusion proof")
    if not 0 <= index < leaf_count:
        raise _bad(f"index: {index} is outside a tree of {leaf_count} leaves", "path-shape")
    salt = _hex(proof, "salt", "inclusion proof")
    balances = _amounts(proof.get("balances"), assets, "balances")
    if any(b < 0 for b in balances):
        raise _bad(
            f"balances: {account} has a negative leaf ({_negative(balances, assets)}): a negative "
            "leaf lowers the total owed (the dummy-user attack) and is never valid",
            "negative-balance",
        )
    path = _field(proof, "path", list, "inclusion proof")
    sizes = [leaf_count]
    while sizes[-1] > 1:
        sizes.append((sizes[-1] + 1) // 2)
    if len(path) != len(sizes) - 1:
        raise _bad(
            f"path: {len(path)} siblings, but a tree of {leaf_count} leaves needs {len(sizes) - 1}",
            "path-shape",
        )
    name = account.encode("utf-8")
    nbytes = 16 * len(assets)
    node = hashlib.sha256(
        b"\x00" + salt + len(name).to_bytes(2, "big") + name + _enc(balances, "balances")
    ).digest()
    # Each step is a sibling's record in hex: its hash, then its sums (16 bytes an asset). The
    # sums are added as one integer of the record's bytes: every sum's first bit must be 0
    # (non-negative) and stay 0 (below 2^127), so no asset's sum ever carries into the next.
    size = 32 + nbytes
    signs = sum(1 << (128 * k + 127) for k in range(len(assets)))
    empty = bytes(size)
    packed = _pack(balances)
    position = index
    for level, step in enumerate(path):
        if type(step) is not str or len(step) != 2 * size:
            raise _bad(
                f"path[{level}]: expected a sibling's record, {2 * size} hex digits (hash, then "
                f"16 bytes a sum for {len(assets)} assets), got {str(step)[:80]!r}",
                "path-shape",
            )
        try:
            record = bytes.fromhex(step)
        except ValueError:
            raise _bad(f"path[{level}]: not hex: {step[:80]!r}") from None
        sibling_packed = int.from_bytes(record[32:], "big")
        if sibling_packed & signs:
            sibling_sums = [
                int.from_bytes(record[i : i + 16], "big", signed=True) for i in range(32, size, 16)
            ]
            raise _bad(
                f"path[{level}]: the sibling's sums are negative ({_negative(sibling_sums, assets)}); "
                "every sum in a Merkle-sum tree must be >= 0, or the venue could hide what it owes "
                "behind a negative node (Hu, Zhang and Guo 2018)",
                "negative-sum",
            )
        is_left = position % 2 == 0
        if is_left and position + 1 >= sizes[level] and record != empty:
            raise _bad(
                f"path[{level}]: the node is the last of its level in a tree of {leaf_count} leaves, "
                "so its sibling must be the empty node (zero hash, zero sums)",
                "path-shape",
            )
        mine = node + packed.to_bytes(nbytes, "big")
        node = hashlib.sha256(b"\x01" + (mine + record if is_left else record + mine)).digest()
        packed += sibling_packed
        if packed & signs:
            raise _bad("the path's sums pass 2^127 - 1 minor units: not a valid proof", "malformed")
        position //= 2
    mask = (1 << 128) - 1
    sums = [(packed >> (128 * (len(assets) - 1 - k))) & mask for k in range(len(assets))]
    computed = _root(header, node + _enc(sums, "totals"))
    where = f"ledger {ledger_id}, venue {venue}, seq {proof_seq}"
    if "root" in proof and computed != _hex(proof, "root", "inclusion proof"):
        raise _bad(
            f"the leaf and path hash to root {computed.hex()}, not to the root the proof states "
            f"({proof['root']}): an amount, salt, hash or sum in it was changed",
            "changed",
        )
    if "totals" in proof:
        stated = _amounts(proof["totals"], assets, "totals")
        if stated != sums:
            raise _bad(
                "totals: the proof states "
                + ", ".join(
                    f"{format_amount(v, s)} {c}" for v, (c, s) in zip(stated, assets, strict=True)
                )
                + " but its path adds up to "
                + ", ".join(
                    f"{format_amount(v, s)} {c}" for v, (c, s) in zip(sums, assets, strict=True)
                ),
                "totals",
            )
    if isinstance(root, Mapping):
        expected = verify_statement(root)
        other = _header(root, "liabilities statement")
        if (other[0], other[1]) != (ledger_id, venue):
            raise _bad(
                f"the proof is of venue {venue} in ledger {ledger_id}; the root is of venue "
                f"{other[1]} in ledger {other[0]}",
                "other-point",
            )
        if (other[2], other[3]) != (proof_seq, head_hash):
            raise _bad(
                f"the proof is from seq {proof_seq} (head {head_hash.hex()[:16]}); the root is from "
                f"seq {other[2]} (head {other[3].hex()[:16]}): a proof only verifies against the root "
                "of the point it was taken at",
                "other-point",
            )
    else:
        if not isinstance(root, str) or not _HEX64.fullmatch(root.lower()):
            raise _bad(f"root: expected 64 hex digits, got {root!r}")
        expected = bytes.fromhex(root.lower())
    if seq is not None and seq != proof_seq:
        raise _bad(
            f"the proof is from seq {proof_seq}; the root was published for seq {seq}: a proof only "
            "verifies against the root of the point it was taken at",
            "other-point",
        )
    if computed != expected:
        raise _bad(
            f"the proof hashes to root {computed.hex()} ({where}), not to {expected.hex()}: the root "
            "is of another point, venue or ledger, or the proof was changed",
            "wrong-root",
        )
    return Verified(
        account=account,
        venue=venue,
        ledger_id=ledger_id,
        seq=proof_seq,
        head_hash=head_hash.hex(),
        balances={code: b for (code, _), b in zip(assets, balances, strict=True)},
        totals={code: t for (code, _), t in zip(assets, sums, strict=True)},
        assets=assets,
        root=computed.hex(),
    )
