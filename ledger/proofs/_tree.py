"""The Merkle-sum tree: byte layout, build, inclusion paths, O(log N) updates and appends.

The layout (``docs/proofs.md`` states it for a customer who reimplements the check):

- an amount is an integer of minor units, 16 bytes, big-endian, two's complement; every valid
  amount or sum lies in ``0 .. 2^127 - 1``, so its first bit is 0;
- a node's *record* is its 32-byte hash followed by its sums, one amount per asset in the
  order of the statement's asset list;
- leaf hash = SHA-256(0x00 || salt (32) || u16 length of the account id || account id
  (UTF-8) || amounts); salt = HMAC-SHA256(venue secret, account id);
- node hash = SHA-256(0x01 || record(left) || record(right)), that is
  H(h_L || v_L || h_R || v_R) of Hu, Zhang and Guo (2018), with a leading tag so that a leaf
  and a node can never be taken for each other; the node's sums are the children's sums added;
- a node without a right sibling (the last of a level of odd size) is paired with the *empty
  node*: 32 zero bytes and zero sums;
- root = SHA-256(0x02 || header || record(top)), where the header names the ledger, venue,
  seq, head hash, leaf count and assets (see :meth:`Header.encode`): a root commits to the
  point it was taken at, not only to the balances.

Leaves are kept in one ``bytearray`` of records per level, so a tree of N leaves and m assets
holds about 2N x (32 + 16m) bytes of records, plus the account ids and their index.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

import attrs

from ledger.errors import NegativeBalanceError, ProofError

HASH_BYTES = 32
AMOUNT_BYTES = 16
#: The largest amount or sum a proof can carry: a signed 128-bit integer's largest value.
MAX_SUM = 2**127 - 1
LEAF_TAG, NODE_TAG, ROOT_TAG = b"\x00", b"\x01", b"\x02"
EMPTY_HASH = bytes(HASH_BYTES)
_FIELD_BITS = 8 * AMOUNT_BYTES
_sha256 = hashlib.sha256


def salt_for(secret: bytes, account: str) -> bytes:
    """The per-account salt: HMAC-SHA256(secret, account id in UTF-8)."""
    return hmac.digest(secret, account.encode("utf-8"), "sha256")


def _salter(secret: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 with the key's inner and outer states computed once (RFC 2104)."""
    key = secret if len(secret) <= 64 else _sha256(secret).digest()
    key = key.ljust(64, b"\x00")
    inner = _sha256(bytes(b ^ 0x36 for b in key))
    outer = _sha256(bytes(b ^ 0x5C for b in key))

    def salt(account_bytes: bytes) -> bytes:
        i = inner.copy()
        i.update(account_bytes)
        o = outer.copy()
        o.update(i.digest())
        return o.digest()

    return salt


def encode_amounts(amounts: Sequence[int]) -> bytes:
    """The amounts, 16 bytes each, big-endian, signed (raises ProofError beyond 128 bits)."""
    try:
        return b"".join(a.to_bytes(AMOUNT_BYTES, "big", signed=True) for a in amounts)
    except OverflowError:
        raise ProofError(
            f"an amount of {max(amounts, key=abs)} minor units does not fit the proof's 16-byte "
            f"amounts (at most {MAX_SUM})",
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
        sizes.append((sizes[-1] + 1) // 2)
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
        self.record_size = HASH_BYTES + AMOUNT_BYTES * width
        self._empty = bytes(self.record_size)
        self._salt = _salter(secret)
        self.accounts: list[str] = []
        self.index: dict[str, int] = {}
        self.totals = [0] * width
        packed: list[int] = []
        level = bytearray()
        negative: list[tuple[str, int, int]] = []
        shifts = [_FIELD_BITS * (width - 1 - k) for k in range(width)]
        nbytes = AMOUNT_BYTES * width
        salt = self._salt
        totals = self.totals
        for account, amounts in leaves:
            if len(amounts) != width:
                raise ProofError(
                    f"leaf {account!r}: {len(amounts)} amounts for {width} assets", kind="shape"
                )
            if account in self.index:
                raise ProofError(f"leaf {account!r} appears twice", kind="shape")
            p = 0
            for k, a in enumerate(amounts):
                if a < 0:
                    negative.append((account, k, a))
                totals[k] += a
                p |= a << shifts[k]
            self.index[account] = len(self.accounts)
            self.accounts.append(account)
            name = account.encode("utf-8")
            sums = p.to_bytes(nbytes, "big") if not negative else bytes(nbytes)
            level += _sha256(
                LEAF_TAG + salt(name) + len(name).to_bytes(2, "big") + name + sums
            ).digest()
            level += sums
            packed.append(p)
        if negative:
            raise NegativeBalanceError([(a, self.assets[k], str(v)) for a, k, v in negative])
        self._check_totals(totals)
        self.levels: list[bytearray] = [level]
        self._build(packed)

    def _check_totals(self, totals: Sequence[int]) -> None:
        # Every node's sum is at most the total of its asset, so a total within MAX_SUM means no
        # sum anywhere overflows its 16 bytes (and the packed additions below never carry).
        for k, total in enumerate(totals):
            if total > MAX_SUM:
                raise ProofError(
                    f"the leaves' total of {self.assets[k]} is {total} minor units, more than the "
                    f"proof's 16-byte amounts hold ({MAX_SUM})",
                    kind="too-large",
                )

    def _build(self, packed: list[int]) -> None:
        """Build every level above the leaves. ``packed`` holds each node's sums as one integer
        (the fields side by side, 128 bits each): a parent's is the children's added."""
        size, nbytes = self.record_size, AMOUNT_BYTES * self.width
        current = self.levels[0]
        sha, tag = _sha256, NODE_TAG
        while len(packed) > 1:
            view = memoryview(current)
            odd = len(packed) % 2
            pairs = len(packed) // 2
            parents = [
                a + b
                for a, b in zip(packed[0 : 2 * pairs : 2], packed[1 : 2 * pairs : 2], strict=True)
            ]
            out = bytearray()
            for i in range(pairs):
                out += sha(tag + view[2 * i * size : (2 * i + 2) * size]).digest()
                out += parents[i].to_bytes(nbytes, "big")
            if odd:
                parents.append(packed[-1])
                out += sha(tag + view[2 * pairs * size :] + self._empty).digest()
                out += packed[-1].to_bytes(nbytes, "big")
            view.release()
            self.levels.append(out)
            current, packed = out, parents

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.accounts)

    def record(self, level: int, i: int) -> bytes:
        """A node's record (hash and sums); the empty node past the end of a level."""
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

    def path(self, account: str) -> list[PathStep]:
        """The siblings from the account's leaf up to the top's children."""
        i = self.leaf(account)[0]
        steps = []
        for level in range(len(self.levels) - 1):
            sibling = self.record(level, i ^ 1)
            steps.append(PathStep(sibling[:HASH_BYTES], decode_amounts(sibling[HASH_BYTES:])))
            i >>= 1
        return steps

    def path_records(self, account: str) -> list[bytes]:
        """The siblings' records (hash, then sums) from the leaf up: what a proof carries."""
        i = self.index.get(account)
        if i is None:
            raise ProofError(f"{account!r} is not a leaf of this tree", kind="not-a-leaf")
        records = []
        size = self.record_size
        for nodes in self.levels[:-1]:
            start = (i ^ 1) * size
            records.append(
                bytes(nodes[start : start + size]) if start < len(nodes) else self._empty
            )
            i >>= 1
        return records

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
        name = account.encode("utf-8")
        sums = encode_amounts(amounts)
        record = (
            _sha256(
                LEAF_TAG + self._salt(name) + len(name).to_bytes(2, "big") + name + sums
            ).digest()
            + sums
        )
        size = self.record_size
        if i is None:
            i = len(self.accounts)
            self.index[account] = i
            self.accounts.append(account)
            self.levels[0] += record
            delta = int.from_bytes(sums, "big")
        else:
            delta = int.from_bytes(sums, "big") - int.from_bytes(
                self.levels[0][i * size + HASH_BYTES : (i + 1) * size], "big"
            )
            self.levels[0][i * size : (i + 1) * size] = record
        self._rehash(i, delta)

    def _rehash(self, i: int, delta: int) -> None:
        """Rehash the path above leaf ``i``, whose packed sums moved by ``delta``: every
        ancestor's packed sums move by the same integer (no field ever passes 2^127 - 1, so
        the fields never carry into one another)."""
        size, nbytes = self.record_size, AMOUNT_BYTES * self.width
        sha, tag, levels = _sha256, NODE_TAG, self.levels
        level = 0
        while len(levels[level]) > size:  # more than one node: there is a level above
            if level + 1 == len(levels):
                levels.append(bytearray())
            nodes = levels[level]
            start = (i & ~1) * size
            pair = nodes[start : start + 2 * size]
            if len(pair) < 2 * size:
                pair += self._empty
            i >>= 1
            above = levels[level + 1]
            at = i * size
            if at == len(above):  # a new node: its sums are its children's
                sums = int.from_bytes(pair[HASH_BYTES:size], "big") + int.from_bytes(
                    pair[size + HASH_BYTES :], "big"
                )
                above += sha(tag + pair).digest() + sums.to_bytes(nbytes, "big")
            else:
                sums = int.from_bytes(above[at + HASH_BYTES : at + size], "big") + delta
                above[at : at + size] = sha(tag + pair).digest() + sums.to_bytes(nbytes, "big")
            level += 1
