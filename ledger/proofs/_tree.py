"""The Merkle-sum tree: byte layout, build, inclusion paths, O(log N) updates and appends.

The layout (``docs/proofs.md`` states it for a customer who reimplements the check; format v2):

- an amount is an integer of minor units, 16 bytes, big-endian, two's complement; every valid
  amount or sum lies in ``0 .. 2^120 - 1`` (``MAX_SUM``), so its first byte is 0 (a verifier
  checks every sum of a path with one byte slice an asset, and no sum of a path's amounts
  can carry from one field into the next);
- a node's *record* is its 32-byte hash followed by its sums, one amount per asset in the
  order of the statement's asset list;
- leaf hash = SHA-256(0x00 || salt (32) || u16 length of the account id || account id
  (UTF-8) || amounts); salt = HMAC-SHA256(venue secret, account id);
- the tree has four children a node (radix 4): node hash = SHA-256(0x01 || record(c0) ||
  record(c1) || record(c2) || record(c3)), that is H(h_0 || v_0 || ... || h_3 || v_3), each
  child's hash and each child's sums separately as Hu, Zhang and Guo (2018) require, with a
  leading tag so that a leaf and a node can never be taken for each other; the node's sums are
  its children's added;
- the last node of a level whose size is not a multiple of 4 is grouped with up to three
  *empty nodes*: 32 zero bytes and zero sums;
- root = SHA-256(0x02 || header || record(top)), where the header names the ledger, venue,
  seq, head hash, leaf count and assets (see :meth:`Header.encode`): a root commits to the
  point it was taken at, not only to the balances.

Each level is one ``bytearray`` of records, so a group of four siblings is one slice (its
parent's preimage after the tag) and a path step is that slice without the node's own record.
A tree of N leaves and m assets holds about (4/3)N x (32 + 16m) bytes of records, plus the
account ids and their index.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from ledger.errors import NegativeBalanceError, ProofError

HASH_BYTES = 32
AMOUNT_BYTES = 16
#: Children a node: four, so a path of a 1,000,000-leaf tree has 10 steps of 3 siblings.
ARITY = 4
#: The largest amount or sum a proof can carry, 2^120 - 1 minor units (about 1.3 x 10^36): the
#: first of its 16 bytes is 0. The tree refuses leaves whose total passes it.
MAX_SUM = 2**120 - 1
LEAF_TAG, NODE_TAG, ROOT_TAG = b"\x00", b"\x01", b"\x02"
EMPTY_HASH = bytes(HASH_BYTES)
_FIELD_BITS = 8 * AMOUNT_BYTES
_sha256 = hashlib.sha256
#: ``len(name).to_bytes(2, "big")`` for the usual lengths of an account id.
_U16 = [n.to_bytes(2, "big") for n in range(256)]


def _plain_sha256() -> Callable[..., Any]:
    """CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before), else hashlib's.

    The same function as OpenSSL's, but a copy of its state is a plain memory copy where
    OpenSSL's goes through its provider layer: for the salts, two copies and one block each,
    it is the faster of the two (measured in docs/proofs.md); OpenSSL's stays faster where a
    hash has more blocks to compress (its SHA extensions)."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
    return _sha256  # pragma: no cover (a Python without CPython's modules)


_salt_sha256 = _plain_sha256()


def salt_for(secret: bytes, account: str) -> bytes:
    """The per-account salt: HMAC-SHA256(secret, account id in UTF-8)."""
    return hmac.digest(secret, account.encode("utf-8"), "sha256")


def _hmac_pads(secret: bytes) -> tuple[Any, Any]:
    """SHA-256 states after HMAC's inner and outer padded keys (RFC 2104): computed once, then
    copied for every salt."""
    key = secret if len(secret) <= 64 else _sha256(secret).digest()
    key = key.ljust(64, b"\x00")
    return _salt_sha256(bytes(b ^ 0x36 for b in key)), _salt_sha256(bytes(b ^ 0x5C for b in key))


def _salter(pads: tuple[Any, Any]) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 under the key whose pads are ``pads`` (see :func:`_hmac_pads`)."""
    inner, outer = pads

    def salt(account_bytes: bytes) -> bytes:
        i = inner.copy()
        i.update(account_bytes)
        o = outer.copy()
        o.update(i.digest())
        return o.digest()

    return salt


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _packer(width: int) -> Callable[..., int]:
    """A function of one leaf's amounts to their packed sums (see ``MerkleSumTree``)."""
    if width == 3:
        return lambda a, b, c: (a << 256) | (b << 128) | c
    if width == 1:
        return lambda a: a

    def pack(*amounts: int) -> int:
        packed = 0
        for a in amounts:
            packed = (packed << _FIELD_BITS) | a
        return packed

    return pack


def _group_sums(values: list[int]) -> list[int]:
    """The sums of each four in order (the last of fewer): a level's sums from the one below."""
    full = len(values) - len(values) % ARITY
    sums = [
        a + b + c + d for a, b, c, d in zip(values[0::4], values[1::4], values[2::4], values[3::4])
    ]
    if full < len(values):
        sums.append(sum(values[full:]))
    return sums


def _pack_columns(columns: list[list[int]], count: int) -> list[int]:
    """Per-asset lists of sums packed node by node (the fields side by side, 128 bits each)."""
    if not columns:
        return [0] * ((count + ARITY - 1) // ARITY)
    packed = columns[0]
    for column in columns[1:]:
        packed = [(p << _FIELD_BITS) | a for p, a in zip(packed, column)]
    return packed


def encode_amounts(amounts: Sequence[int]) -> bytes:
    """The amounts, 16 bytes each, big-endian, signed (raises ProofError beyond 128 bits)."""
    try:
        return b"".join(a.to_bytes(AMOUNT_BYTES, "big", signed=True) for a in amounts)
    except OverflowError:
        raise ProofError(
            f"an amount of {max(amounts, key=abs)} minor units does not fit a proof's 16-byte "
            f"amounts (at most 2^120 - 1 = {MAX_SUM})",
            kind="too-large",
        ) from None


def decode_amounts(data: bytes) -> tuple[int, ...]:
    """The inverse of :func:`encode_amounts`."""
    return tuple(
        int.from_bytes(data[i : i + AMOUNT_BYTES], "big", signed=True)
        for i in range(0, len(data), AMOUNT_BYTES)
    )


def leaf_hash(salt: bytes, account: str, amounts: Sequence[int]) -> bytes:
    """SHA-256(0x00 || salt || u16 len(account) || account || amounts)."""
    name = account.encode("utf-8")
    return _sha256(
        LEAF_TAG + salt + len(name).to_bytes(2, "big") + name + encode_amounts(amounts)
    ).digest()


def level_sizes(leaf_count: int) -> list[int]:
    """Nodes per level, leaves first, up to the top (one node); ``[0]`` for an empty tree."""
    sizes = [leaf_count]
    while sizes[-1] > 1:
        sizes.append((sizes[-1] + ARITY - 1) // ARITY)
    return sizes


@attrs.frozen
class Header:
    """Where a tree was taken: committed to by its root.

    Attributes:
        ledger_id: the log's id.
        venue: the entity whose customers' accounts the leaves are.
        seq: the log position (the books after this event).
        head_hash: the hash of the event at ``seq`` (32 zero bytes at seq 0).
        assets: ``(code, scale)`` in the order of every leaf's and node's amounts.
    """

    ledger_id: str
    venue: str
    seq: int
    head_hash: bytes
    assets: tuple[tuple[str, int], ...]

    def encode(self, leaf_count: int) -> bytes:
        """u16-length-prefixed UTF-8 ledger_id and venue, u64 seq, head hash (32), u64 leaf
        count, u16 asset count, then per asset its u16-length-prefixed code and u8 scale."""
        parts = [
            _text(self.ledger_id),
            _text(self.venue),
            self.seq.to_bytes(8, "big"),
            self.head_hash,
        ]
        parts += [leaf_count.to_bytes(8, "big"), len(self.assets).to_bytes(2, "big")]
        for code, scale in self.assets:
            parts += [_text(code), scale.to_bytes(1, "big")]
        return b"".join(parts)


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def root_hash(header: Header, leaf_count: int, top_hash: bytes, top_sums: Sequence[int]) -> bytes:
    """SHA-256(0x02 || header || top hash || top sums)."""
    return _sha256(
        ROOT_TAG + header.encode(leaf_count) + top_hash + encode_amounts(top_sums)
    ).digest()


@attrs.frozen
class PathStep:
    """One sibling on the way from a leaf to the top: its hash and sums."""

    hash: bytes
    sums: tuple[int, ...]


class MerkleSumTree:
    """A Merkle-sum tree over ``(account, amounts)`` leaves, in the order given.

    ``amounts`` are minor units, one per asset of ``assets`` (codes, in order), each >= 0: a negative
    amount is the "dummy user" attack (it lowers the sums) and is refused with
    :class:`NegativeBalanceError`, which names every such account. Raises :class:`ProofError`
    for a duplicate account, a wrong number of amounts, or a total beyond ``MAX_SUM``.
    """

    def __init__(
        self, leaves: Iterable[tuple[str, Sequence[int]]], *, secret: bytes, assets: Sequence[str]
    ) -> None:
        if not isinstance(secret, bytes) or not secret:
            raise ProofError("the venue secret must be non-empty bytes", kind="secret")
        self.assets = tuple(assets)
        width = self.width = len(self.assets)
        self.sums_size = AMOUNT_BYTES * width
        self.record_size = HASH_BYTES + self.sums_size
        self._empty = bytes(self.record_size)
        self._pads = _hmac_pads(secret)
        self._salt = _salter(self._pads)
        #: Incremented by every :meth:`update`: what a cache of the root is keyed on.
        self.version = 0
        #: :func:`ledger.proofs.inclusion_proof`'s parts common to every proof of this version.
        self._cache: Any = None
        pairs = leaves if isinstance(leaves, list) else list(leaves)
        accounts: list[str] = [a for a, _ in pairs]
        amounts_list = [v for _, v in pairs]
        self.accounts = accounts
        self.index: dict[str, int] = dict(zip(accounts, range(len(accounts))))
        if any(len(v) != width for v in amounts_list):
            bad = next(i for i, v in enumerate(amounts_list) if len(v) != width)
            raise ProofError(
                f"leaf {accounts[bad]!r}: {len(amounts_list[bad])} amounts for {width} assets",
                kind="shape",
            )
        if len(self.index) != len(accounts):
            seen: set[str] = set()
            twice = next(a for a in accounts if a in seen or seen.add(a))  # type: ignore[func-returns-value]
            raise ProofError(f"leaf {twice!r} appears twice", kind="shape")
        # One list an asset (``zip(*amounts_list)`` would unpack a million arguments: slow).
        columns = [[v[k] for v in amounts_list] for k in range(width)]
        if any(column and min(column) < 0 for column in columns):
            raise NegativeBalanceError(
                [
                    (account, self.assets[k], str(a))
                    for account, amounts in zip(accounts, amounts_list)
                    for k, a in enumerate(amounts)
                    if a < 0
                ]
            )
        self.totals = [sum(column) for column in columns]
        self._check_totals(self.totals)
        # Each leaf's sums as one integer, the fields side by side (128 bits each, the first
        # asset's highest: the integer of the sums' bytes), made one at a time as the leaves
        # are hashed; the sums of the level above are added up an asset at a time. No list of
        # every leaf's packed sums is held (about 70 MB at 1,000,000 leaves x 3 assets).
        count = len(accounts)
        leaf_sums = map(_packer(width), *columns) if width else itertools.repeat(0, count)
        self.levels: list[bytearray] = [self._leaf_level(accounts, leaf_sums)]
        del amounts_list, pairs
        if count > 1:
            self._build(_pack_columns([_group_sums(column) for column in columns], count))

    def _leaf_level(self, accounts: list[str], packed: Iterable[int]) -> bytearray:
        """The leaves' records: SHA-256(0x00 || salt || u16 length || id || sums), then the
        sums. The hashes are copies of states made once (the tagged leaf state, HMAC's inner
        and outer pads): copying a state is cheaper than making one, and each leaf is written
        straight into the level."""
        nbytes = self.sums_size
        inner, outer = self._pads
        inner_copy, outer_copy, leaf_copy = inner.copy, outer.copy, _sha256(LEAF_TAG).copy
        u16, join = _U16, b"".join
        level = bytearray()
        for account, sums in zip(accounts, packed):
            name = account.encode("utf-8")
            h = inner_copy()
            h.update(name)
            salt = outer_copy()
            salt.update(h.digest())
            h = leaf_copy()
            v = sums.to_bytes(nbytes, "big")
            size = len(name)
            h.update(join((salt.digest(), u16[size] if size < 256 else _u16(size), name, v)))
            level += h.digest()
            level += v
        return level

    def _check_totals(self, totals: Sequence[int]) -> None:
        # Every node's sum is at most the total of its asset, so a total within MAX_SUM means no
        # sum anywhere overflows its 16 bytes (and the packed additions below never carry).
        for k, total in enumerate(totals):
            if total > MAX_SUM:
                raise ProofError(
                    f"the leaves' total of {self.assets[k]} is {total} minor units, more than a "
                    f"proof's amounts may be (2^120 - 1 = {MAX_SUM})",
                    kind="too-large",
                )

    def _build(self, parents: list[int]) -> None:
        """Build every level above the leaves. ``parents`` holds the sums of the level above the
        leaves, each node's as one integer (the fields side by side, 128 bits each): a parent's
        is its children's added. A parent's hash reads its four children's records in place (a
        slice of a view of the level); the last group of a level is filled up with empty
        nodes."""
        size, nbytes, empty = self.record_size, self.sums_size, self._empty
        group = ARITY * size
        node_copy = _sha256(NODE_TAG).copy
        current = self.levels[0]
        while True:
            count = len(current) // size
            full = count // ARITY
            rest = count - ARITY * full
            above = bytearray()
            with memoryview(current) as view:
                for start, sums in zip(range(0, full * group, group), parents):
                    h = node_copy()
                    h.update(view[start : start + group])
                    above += h.digest()
                    above += sums.to_bytes(nbytes, "big")
                if rest:
                    h = node_copy()
                    h.update(bytes(view[full * group :]) + empty * (ARITY - rest))
                    above += h.digest()
                    above += parents[-1].to_bytes(nbytes, "big")
            self.levels.append(above)
            if len(parents) == 1:
                return
            current, parents = above, _group_sums(parents)

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.accounts)

    def record(self, level: int, i: int) -> bytes:
        """A node's record (hash, then sums); the empty node past the end of a level."""
        nodes = self.levels[level]
        start = i * self.record_size
        if start >= len(nodes):
            return self._empty
        return bytes(nodes[start : start + self.record_size])

    def top(self) -> tuple[bytes, tuple[int, ...]]:
        """The top node's hash and sums (the empty node for a tree without leaves)."""
        record = self.record(len(self.levels) - 1, 0) if self.accounts else self._empty
        return record[:HASH_BYTES], decode_amounts(record[HASH_BYTES:])

    def root(self, header: Header) -> bytes:
        """The published root: the top node under ``header`` (see the module docstring)."""
        top_hash, top_sums = self.top()
        return root_hash(header, len(self), top_hash, top_sums)

    def leaf(self, account: str) -> tuple[int, bytes, tuple[int, ...]]:
        """``(index, salt, amounts)`` of an account's leaf; ProofError if it is not a leaf."""
        i = self.index.get(account)
        if i is None:
            raise ProofError(f"{account!r} is not a leaf of this tree", kind="not-a-leaf")
        return (
            i,
            self._salt(account.encode("utf-8")),
            decode_amounts(self.record(0, i)[HASH_BYTES:]),
        )

    def path(self, account: str) -> list[list[PathStep]]:
        """The siblings (three a level, in order, the node itself left out) from the account's
        leaf up to the top's children."""
        i = self.leaf(account)[0]
        steps = []
        for level in range(len(self.levels) - 1):
            first = i - i % ARITY
            steps.append(
                [
                    PathStep(r[:HASH_BYTES], decode_amounts(r[HASH_BYTES:]))
                    for r in (self.record(level, k) for k in range(first, first + ARITY) if k != i)
                ]
            )
            i //= ARITY
        return steps

    def path_steps(self, account: str) -> list[bytes]:
        """What a proof's path carries, from the leaf level up: at each level the records of
        the node's three siblings in order (empty nodes where the level ends), that is its
        parent's preimage after the tag without the node's own record. Two slices a level."""
        i = self.index.get(account)
        if i is None:
            raise ProofError(f"{account!r} is not a leaf of this tree", kind="not-a-leaf")
        steps = []
        size = self.record_size
        full = (ARITY - 1) * size
        for nodes in self.levels[:-1]:
            first = (i - i % ARITY) * size
            at = i * size
            step = bytes(nodes[first:at] + nodes[at + size : first + ARITY * size])
            steps.append(step if len(step) == full else step + bytes(full - len(step)))
            i //= ARITY
        return steps

    # -- changing -------------------------------------------------------------------------------
    def update(self, account: str, amounts: Sequence[int]) -> None:
        """Set an account's amounts (appending it as a new leaf if it is not one yet), then
        rehash its path: O(log N) hashes. The same refusals as the constructor."""
        if len(amounts) != self.width:
            raise ProofError(
                f"leaf {account!r}: {len(amounts)} amounts for {self.width} assets", kind="shape"
            )
        negative = [(account, self.assets[k], str(a)) for k, a in enumerate(amounts) if a < 0]
        if negative:
            raise NegativeBalanceError(negative)
        i = self.index.get(account)
        old = decode_amounts(self.record(0, i)[HASH_BYTES:]) if i is not None else (0,) * self.width
        totals = [t - o + a for t, o, a in zip(self.totals, old, amounts, strict=True)]
        self._check_totals(totals)
        self.totals = totals
        self.version += 1
        name = account.encode("utf-8")
        sums = encode_amounts(amounts)
        digest = _sha256(
            LEAF_TAG + self._salt(name) + len(name).to_bytes(2, "big") + name + sums
        ).digest()
        size = self.record_size
        delta = int.from_bytes(sums, "big") - int.from_bytes(encode_amounts(old), "big")
        if i is None:
            i = len(self.accounts)
            self.index[account] = i
            self.accounts.append(account)
        self.levels[0][i * size : (i + 1) * size] = digest + sums
        self._rehash(i, delta)

    def _rehash(self, i: int, delta: int) -> None:
        """Rehash the path above leaf ``i``, whose packed sums moved by ``delta``: every
        ancestor's packed sums move by the same integer (no field ever passes 2^120 - 1, so
        the fields never carry into one another)."""
        size, nbytes = self.record_size, self.sums_size
        sha, tag, levels = _sha256, NODE_TAG, self.levels
        group = ARITY * size
        level = 0
        while len(levels[level]) > size:  # more than one node: there is a level above
            if level + 1 == len(levels):
                levels.append(bytearray())
            nodes = levels[level]
            start = (i - i % ARITY) * size
            children = bytes(nodes[start : start + group])
            if len(children) < group:
                children += self._empty * ((group - len(children)) // size)
            i //= ARITY
            above = levels[level + 1]
            at = i * size
            if at == len(above):  # a new node: its sums are its children's
                sums = sum(
                    int.from_bytes(children[k + HASH_BYTES : k + size], "big")
                    for k in range(0, group, size)
                )
            else:
                sums = int.from_bytes(above[at + HASH_BYTES : at + size], "big") + delta
            above[at : at + size] = sha(tag + children).digest() + sums.to_bytes(nbytes, "big")
            level += 1
