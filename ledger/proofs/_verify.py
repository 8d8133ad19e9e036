"""Standalone verification of a proof of liabilities: what a customer runs, without the log.

Written apart from the builder on purpose (only ``hashlib`` and the layout in
``docs/proofs.md``), so that the tests of one check the other. :func:`verify_inclusion` takes the
parsed JSON of an inclusion proof and the root the venue published (64 hex digits, or the
parsed liabilities statement) and returns what was proven, or raises :class:`ProofInvalid`
naming what is wrong.

Format v2 (see ``docs/proofs.md``): four children a node, a path step is the records of the
node's three siblings. Every sum of the path is checked in 0 .. 2^120 - 1 at once, with one byte
slice an asset (the first byte of each 16-byte sum, one every record, must be 0); within that
bound the sums of a path are added as one integer a node without a carry between assets, so a
level costs three reads of a sum, one addition, one concatenation and one SHA-256. Where a
check fails, the path is read sibling by sibling to name the first one at fault.
"""

from __future__ import annotations

import functools
import hashlib
import re
import struct
from binascii import unhexlify
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

import attrs

from ledger.errors import ProofInvalid

FORMAT = "ftx-ledger proof of liabilities v2"
_FAMILY = "ftx-ledger proof of liabilities "
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMOUNT = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?")
_EMPTY_HASH = bytes(32)
_MAX_SUM = 2**120 - 1  # the first byte of every 16-byte amount is 0
_sha256 = hashlib.sha256


@attrs.define
class Verified:
    """What a verified inclusion proof shows (a plain record: attrs' frozen classes cost a
    call an attribute to build, a fifth of a verification).

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


def _hex_quick(value: Any) -> bytes | None:
    """64 hex digits as 32 bytes, or None (then :func:`_hex` names what is wrong)."""
    if type(value) is str and len(value) == 64:
        try:
            return unhexlify(value)
        except ValueError:
            return None
    return None


def _hex(data: Mapping[str, Any], key: str, what: str) -> bytes:
    value = _field(data, key, str, what)
    if not _HEX64.fullmatch(value):
        raise _bad(f"{key}: must be 64 hex digits, got {value!r}")
    return bytes.fromhex(value)


_TENS = [10**k for k in range(19)]


def _parse(text: Any, scale: int, where: str, code: str) -> int:
    """:func:`parse_amount` of ``where.code`` (the label is only made for an error)."""
    if type(text) is str:  # the usual case first, with str methods: digits, a dot, digits
        if scale and len(text) > scale + 1 and text[-scale - 1] == ".":
            # As proofs write them, every decimal of the scale: the digits are the minor units.
            digits = text[: -scale - 1] + text[-scale:]
            if digits.isdigit() and digits.isascii() and (text[0] != "0" or text[1] == "."):
                return int(digits)
        whole, dot, fraction = text.partition(".")
        if whole.isdigit() and whole.isascii() and (whole[0] != "0" or len(whole) == 1):
            if not dot:
                return int(whole) * _TENS[scale]
            if 0 < len(fraction) <= scale and fraction.isdigit() and fraction.isascii():
                return int(whole + fraction) * _TENS[scale - len(fraction)]
    if type(text) is str and (m := _AMOUNT.fullmatch(text)):
        sign, whole, fraction = m.groups()
        if fraction is None:
            minor = int(whole) * 10**scale
        elif len(fraction) > scale:
            label = f"{where}.{code}" if code else where
            raise _bad(f"{label}: {text} has {len(fraction)} decimals; the asset has {scale}")
        else:
            minor = int(whole + fraction.ljust(scale, "0"))
        return -minor if sign else minor
    label = f"{where}.{code}" if code else where
    raise _bad(f"{label}: expected a decimal string such as '12.50', got {text!r}")


def parse_amount(text: Any, scale: int, where: str) -> int:
    """Minor units of a decimal string with at most ``scale`` decimals (exact, never rounded)."""
    return _parse(text, scale, where, "")


def format_amount(minor: int, scale: int) -> str:
    """The inverse of :func:`parse_amount`: every decimal of the scale written."""
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(scale + 1, "0")
    return sign + (digits[:-scale] + "." + digits[-scale:] if scale else digits)


def _amounts(data: Any, assets: tuple[tuple[str, int], ...], where: str) -> list[int]:
    if isinstance(data, dict) and len(data) == len(assets):
        try:
            return [_parse(data[code], scale, where, code) for code, scale in assets]
        except KeyError:
            pass
    raise _bad(
        f"{where}: expected one amount per asset ({', '.join(c for c, _ in assets)}), got {data!r}"
    )


def _stated_totals(data: Any, assets: tuple[tuple[str, int], ...]) -> tuple[int, ...]:
    """:func:`_amounts` of a proof's totals, which every proof of a tree shares: read once."""
    if type(data) is dict:
        try:
            return _cached_totals(tuple(data.items()), assets)
        except TypeError:  # an unhashable value: read (and refused) below
            pass
    return tuple(_amounts(data, assets, "totals"))


@functools.lru_cache(maxsize=256)
def _cached_totals(items: tuple[Any, ...], assets: tuple[tuple[str, int], ...]) -> tuple[int, ...]:
    return tuple(_amounts(dict(items), assets, "totals"))


def _pack(values: list[int]) -> int:
    """The amounts side by side, 128 bits each (their 16-byte encodings, concatenated)."""
    packed = 0
    for v in values:
        if not 0 <= v <= _MAX_SUM:
            if v < 0:
                return -1  # negative: the caller has already refused it
            raise _bad(
                f"an amount of {v} minor units is more than a proof's amounts may be "
                f"(2^120 - 1 = {_MAX_SUM})"
            )
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


def _check_format(data: Mapping[str, Any]) -> None:
    found = data.get("format")
    if found == FORMAT:
        return
    if isinstance(found, str) and found.startswith(_FAMILY):
        raise _bad(
            f"format: {found!r} is a version this verifier does not read; it reads {FORMAT!r} "
            "only (v2 changed the layout of a node and of a path step, see docs/proofs.md): "
            "take the proof again with this version",
        )
    raise _bad(f"format: expected {FORMAT!r}, got {found!r}: not a proof of liabilities")


def _header(
    data: Mapping[str, Any], what: str
) -> tuple[str, str, int, bytes, tuple[tuple[str, int], ...], int]:
    _check_format(data)
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
    return _sha256(_root_prefix(*header) + top).digest()


@functools.lru_cache(maxsize=256)
def _root_prefix(
    ledger_id: str,
    venue: str,
    seq: int,
    head_hash: bytes,
    assets: tuple[tuple[str, int], ...],
    leaf_count: int,
) -> bytes:
    """The root's preimage before the top's record: 0x02 and the header (the same for every
    proof of a tree, so made once)."""
    lid, ven = ledger_id.encode("utf-8"), venue.encode("utf-8")
    parts = [
        b"\x02",
        len(lid).to_bytes(2, "big"),
        lid,
        len(ven).to_bytes(2, "big"),
        ven,
        seq.to_bytes(8, "big"),
        head_hash,
        leaf_count.to_bytes(8, "big"),
        len(assets).to_bytes(2, "big"),
    ]
    for code, scale in assets:
        data = code.encode("utf-8")
        parts += (len(data).to_bytes(2, "big"), data, bytes((scale,)))
    return b"".join(parts)


def _negative(values: list[int], assets: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(
        f"{format_amount(v, scale)} {code}"
        for v, (code, scale) in zip(values, assets, strict=True)
        if v < 0
    )


def _shown(values: Sequence[int], assets: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{format_amount(v, s)} {c}" for v, (c, s) in zip(values, assets, strict=True))


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
    if any(t > _MAX_SUM for t in totals):
        raise _bad(f"totals: more than a proof's amounts may be (2^120 - 1 = {_MAX_SUM})")
    top = _hex(statement, "top_hash", "liabilities statement") + _enc(totals, "totals")
    root = _root(header, top)
    if root != _hex(statement, "root", "liabilities statement"):
        raise _bad(
            f"the statement's header, top hash and totals hash to {root.hex()}, not to the root it "
            f"states ({statement['root']}): it was changed",
            "changed",
        )
    return root


@attrs.frozen
class _Shape:
    """Paths of ``levels`` steps over ``m`` assets: a record of ``size`` = 32 + w bytes (w = 16m
    of sums), a step of three records (the siblings); ``split`` cuts a path into its steps;
    ``firsts`` are the offsets of each asset's first sum byte in the path's first record (one
    every ``size`` bytes from there), which must all be 0; ``zeros`` as many zero bytes as a
    path has records; ``tops`` the first byte of each 16-byte field of w bytes as an integer."""

    w: int
    size: int
    levels: int
    firsts: tuple[int, ...]
    zeros: bytes
    tops: int
    split: struct.Struct
    sums: struct.Struct


@functools.lru_cache(maxsize=64)
def _shape(m: int, levels: int) -> _Shape:
    w = 16 * m
    size = 32 + w
    return _Shape(
        w=w,
        size=size,
        levels=levels,
        firsts=tuple(32 + 16 * k for k in range(m)),
        zeros=bytes(3 * levels),
        tops=int.from_bytes((b"\xff" + bytes(15)) * m, "big"),
        split=struct.Struct(f"{3 * size}s" * levels),
        sums=struct.Struct(f"32x{w}s" * (3 * levels)),
    )


def levels_of(leaf_count: int) -> int:
    """Steps of a path in a tree of ``leaf_count`` leaves, four children a node: a level of
    k nodes has ceil(k / 4) above it, up to one node."""
    return ((leaf_count - 1).bit_length() + 1) // 2 if leaf_count > 1 else 0


def _read_path(path: list[Any], shape: _Shape, assets: tuple[tuple[str, int], ...]) -> bytes:
    """The path's bytes, or ProofInvalid naming the first step that is not a step."""
    digits = 6 * shape.size
    try:
        text = "".join(path)
        if len(text) == digits * shape.levels and len(set(map(len, path))) == 1:
            return unhexlify(text)
    except (TypeError, ValueError):
        pass
    for level, step in enumerate(path):
        if type(step) is not str or len(step) != digits:
            raise _bad(
                f"path[{level}]: expected the records of three siblings, {digits} hex digits (each "
                f"a 32-byte hash and 16 bytes a sum for {len(assets)} assets), got "
                f"{str(step)[:80]!r}",
                "path-shape",
            )
        try:
            unhexlify(step)
        except ValueError:
            raise _bad(f"path[{level}]: not hex: {step[:80]!r}") from None
    raise _bad("path: not a path")  # pragma: no cover (every way to fail is named above)


def _decode(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 16], "big", signed=True) for i in range(0, len(data), 16)]


@functools.lru_cache(maxsize=256)
def _top_sums(data: bytes) -> tuple[int, ...]:
    return tuple(_decode(data))


@functools.lru_cache(maxsize=256)
def _codes(assets: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    return tuple(code for code, _ in assets)


def _diagnose(
    blob: bytes, shape: _Shape, balances: list[int], assets: tuple[tuple[str, int], ...]
) -> ProofInvalid:
    """The first level at fault, read sibling by sibling (once the quick check has failed)."""
    w, size = shape.w, shape.size
    sums = balances
    for level in range(shape.levels):
        for n in range(3):
            at = (3 * level + n) * size + 32
            sibling = _decode(blob[at : at + w])
            if any(v < 0 for v in sibling):
                return _bad(
                    f"path[{level}]: sibling {n}'s sums are negative "
                    f"({_negative(sibling, assets)}); every sum in a Merkle-sum tree must be >= 0, "
                    "or the venue could hide what it owes behind a negative node (Hu, Zhang and "
                    "Guo 2018)",
                    "negative-sum",
                )
            sums = [a + b for a, b in zip(sums, sibling, strict=True)]
            if any(v > _MAX_SUM for v in sibling):
                return _bad(
                    f"path[{level}]: sibling {n}'s sums pass 2^120 - 1 minor units (the first "
                    "byte of every amount must be 0): not a valid proof",
                    "path-shape",
                )
    if any(v > _MAX_SUM for v in sums):
        return _bad("the path's sums add up to more than 2^120 - 1 minor units: not a valid proof")
    return _bad("the path's sums do not add up")  # pragma: no cover (named above)


def _header_quick(
    data: Any,
) -> tuple[str, str, int, bytes, tuple[tuple[str, int], ...], int] | None:
    """:func:`_header` for a well-formed header (None otherwise: ``_header`` names the fault)."""
    try:
        if data["format"] != FORMAT:
            return None
        ledger_id, venue, seq = data["ledger_id"], data["venue"], data["seq"]
        head, leaf_count, raw = data["head_hash"], data["leaf_count"], data["assets"]
        if not (
            type(ledger_id) is str
            and type(venue) is str
            and type(seq) is int
            and type(leaf_count) is int
            and seq >= 0
            and leaf_count >= 0
            and type(head) is str
            and len(head) == 64
            and type(raw) is list
        ):
            return None
        assets = tuple([(item["asset"], item["scale"]) for item in raw])
        for code, scale in assets:
            if type(code) is not str or type(scale) is not int or not 0 <= scale <= 18:
                return None
        return ledger_id, venue, seq, unhexlify(head), assets, leaf_count
    except (KeyError, TypeError, ValueError):
        return None


def verify_inclusion(
    proof: Mapping[str, Any], root: str | Mapping[str, Any], *, seq: int | None = None
) -> Verified:
    """Verify a customer's inclusion proof against a published root (see the module doc).

    ``root`` is 64 hex digits, or a liabilities statement (its own consistency is checked
    first, and its ledger, venue, seq and head are compared with the proof's). ``seq``, if
    given, is the seq the root was published for. Raises :class:`ProofInvalid`.
    """
    if type(proof) is not dict and not isinstance(proof, Mapping):
        raise _bad("a proof is a JSON object")
    if proof.get("kind") != "inclusion":
        raise _bad(f"kind: expected 'inclusion', got {proof.get('kind')!r}")
    header = _header_quick(proof) or _header(proof, "inclusion proof")
    ledger_id, venue, proof_seq, head_hash, assets, leaf_count = header
    account, index, salt = proof.get("account"), proof.get("index"), proof.get("salt")
    if type(account) is not str:
        account = _field(proof, "account", str, "inclusion proof")
    if type(index) is not int:
        index = _field(proof, "index", int, "inclusion proof")
    if not 0 <= index < leaf_count:
        raise _bad(f"index: {index} is outside a tree of {leaf_count} leaves", "path-shape")
    salt = _hex_quick(salt) or _hex(proof, "salt", "inclusion proof")
    balances = _amounts(proof.get("balances"), assets, "balances")
    if min(balances, default=0) < 0:
        raise _bad(
            f"balances: {account} has a negative leaf ({_negative(balances, assets)}): a negative "
            "leaf lowers the total owed (the dummy-user attack) and is never valid",
            "negative-balance",
        )
    total = _pack(balances)
    path = proof.get("path")
    if type(path) is not list:
        path = _field(proof, "path", list, "inclusion proof")
    levels = levels_of(leaf_count)
    if len(path) != levels:
        raise _bad(
            f"path: {len(path)} steps, but a tree of {leaf_count} leaves needs {levels}",
            "path-shape",
        )
    w = 16 * len(assets)
    name = account.encode("utf-8")
    mine = total.to_bytes(w, "big")
    node = _sha256(b"\x00" + salt + len(name).to_bytes(2, "big") + name + mine).digest()
    if levels:
        shape = _shape(len(assets), levels)
        blob = _read_path(path, shape, assets)
        size = shape.size
        last = leaf_count - 1
        # Where the node's group of four is the last of its level, the slots past the level's
        # last node must hold empty nodes (zero hash, zero sums): the last records of the step.
        for level in range(max(0, ((index ^ last).bit_length() + 1) // 2 - 1), levels):
            missing = 3 - ((last >> (2 * level)) & 3)
            if missing and (index >> (2 * level + 2)) == (last >> (2 * level + 2)):
                end = 3 * size * (level + 1)
                if blob[end - missing * size : end] != bytes(missing * size):
                    raise _bad(
                        f"path[{level}]: the node's group is the last of its level in a tree of "
                        f"{leaf_count} leaves, so its last {missing} sibling(s) must be empty "
                        "nodes (zero hash, zero sums)",
                        "path-shape",
                    )
        # Every sibling's every sum is in 0 .. 2^120 - 1: its first byte is 0 (>= 0: the check
        # of Hu, Zhang and Guo; and small enough that the at most 3 x 32 + 1 amounts a path adds
        # stay below 2^127, so the packed additions below never carry from one field into the
        # next, and only the top's sums are left to check).
        zeros = shape.zeros
        for first in shape.firsts:
            if blob[first::size] != zeros:
                raise _diagnose(blob, shape, balances, assets)
        # Level by level: the siblings' sums are added to the node's (the leaf's balances, then
        # each parent's); the parent is H(0x01 || the four records in order), the node's own
        # record at its slot (the index's digit in base 4 at that level). The node's sums at
        # every level are read at once: the leaf's, then the running total of the siblings'
        # sums in path order (``shape.sums`` cuts them out of the path, one C call).
        running = list(accumulate(map(int.from_bytes, shape.sums.unpack(blob)), initial=total))
        sha, join, tag = _sha256, b"".join, b"\x01"
        position = index
        for step, above in zip(shape.split.unpack(blob), running[3::3]):
            cut = (position & 3) * size
            node = sha(join((tag, step[:cut], node, mine, step[cut:]))).digest()
            mine = above.to_bytes(w, "big")
            position >>= 2
        total = running[-1]
        if total & shape.tops:  # a top's sum past 2^120 - 1
            raise _diagnose(blob, shape, balances, assets)
    computed = _root(header, node + mine)
    if "root" in proof and computed != (
        _hex_quick(proof["root"]) or _hex(proof, "root", "inclusion proof")
    ):
        raise _bad(
            f"the leaf and path hash to root {computed.hex()}, not to the root the proof states "
            f"({proof['root']}): an amount, salt, hash or sum in it was changed",
            "changed",
        )
    sums = _top_sums(mine)  # the same top for every proof of a tree: decoded once
    if "totals" in proof:
        stated = _stated_totals(proof["totals"], assets)
        if stated != sums:
            raise _bad(
                f"totals: the proof states {_shown(stated, assets)} but its path adds up to "
                f"{_shown(sums, assets)}",
                "totals",
            )
    if type(root) is str and len(root) == 64:
        try:
            expected = unhexlify(root)
        except ValueError:
            raise _bad(f"root: expected 64 hex digits, got {root!r}") from None
    elif isinstance(root, Mapping):
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
        raise _bad(f"root: expected 64 hex digits, got {root!r}")
    if seq is not None and seq != proof_seq:
        raise _bad(
            f"the proof is from seq {proof_seq}; the root was published for seq {seq}: a proof only "
            "verifies against the root of the point it was taken at",
            "other-point",
        )
    if computed != expected:
        raise _bad(
            f"the proof hashes to root {computed.hex()} (ledger {ledger_id}, venue {venue}, seq "
            f"{proof_seq}), not to {expected.hex()}: the root is of another point, venue or "
            "ledger, or the proof was changed",
            "wrong-root",
        )
    return Verified(
        account=account,
        venue=venue,
        ledger_id=ledger_id,
        seq=proof_seq,
        head_hash=head_hash.hex(),
        balances=dict(zip(_codes(assets), balances)),
        totals=dict(zip(_codes(assets), sums)),
        assets=assets,
        root=computed.hex(),
    )
