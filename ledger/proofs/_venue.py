"""Proofs of a venue's liabilities taken from the books at a point, and a root at every step.

A leaf per customer account of the venue (``account_opened`` with purpose ``customer``), in the
order the accounts were opened, with the *holder's* balance in every listed asset (a customer's
claim on the venue is the venue's liability: holder balance = -(venue's balance), see
``docs/model.md``). A negative holder balance (an account allowed to go negative, as Alameda's
was at FTX) is a debt *to* the venue, not a negative liability: it is left out of the leaf (its
amount there is 0) and reported by name as refused, so that the root's sums are exactly what the
venue owes its customers (the books' ``cust_liab``) and never lowered by a dummy user.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

import events as ev
from ledger.books import Books, Change
from ledger.errors import ProofError
from ledger.policy import Policy
from ledger.proofs._tree import Header, MerkleSumTree, root_hash
from ledger.proofs._verify import FORMAT, format_amount
from ledger.store import GENESIS_HASH, Log
from ledger.store.contract import EventLog


@attrs.frozen
class Refusal:
    """A negative customer balance kept out of the tree (it would lower the sums).

    Attributes:
        account: the customer account (``ftx:alameda``); holder: whose account it is.
        asset, minor, scale: the balance, in minor units at the asset's scale (< 0).
    """

    account: str
    holder: str | None
    asset: str
    minor: int
    scale: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "holder": self.holder,
            "asset": self.asset,
            "balance": format_amount(self.minor, self.scale),
        }


def opened_accounts(
    source: EventLog | Iterable[ev.Event], venue: str, *, seq: int | None = None
) -> list[str]:
    """The venue's customer accounts in the order they were opened (up to ``seq``): the leaf order.

    From a log, only its ``account_opened`` rows are read.
    """
    found: list[str] = []
    prefix = f"{venue}:"
    if isinstance(source, Log):
        rows = source.connection.execute(
            "SELECT payload FROM events WHERE type = 'account_opened' AND seq <= ? ORDER BY seq",
            (seq if seq is not None else source.head().seq,),
        )
        for (payload,) in rows:
            data = json.loads(payload)
            if data.get("purpose") == "customer" and data.get("account", "").startswith(prefix):
                found.append(data["account"])
        return found
    if isinstance(source, EventLog):  # another backend (PostgreSQL): the protocol's reads
        last = seq if seq is not None else source.head().seq
        for _, event, _ in source.iter_payloads(to_seq=last):
            if (
                isinstance(event, ev.AccountOpened)
                and event.purpose == "customer"
                and event.account.startswith(prefix)
            ):
                found.append(event.account)
        return found
    for n, event in enumerate(source, start=1):
        if seq is not None and n > seq:
            break
        if (
            isinstance(event, ev.AccountOpened)
            and event.purpose == "customer"
            and event.account.startswith(prefix)
        ):
            found.append(event.account)
    return found


def statement_assets(books: Books) -> tuple[tuple[str, int], ...]:
    """Every listed asset with its scale, by code: the order of each leaf's amounts."""
    return tuple((code, info.scale) for code, info in sorted(books.registry.assets.items()))


def _leaf_amounts(
    books: Books,
    venue: str,
    account: str,
    assets: Sequence[tuple[str, int]],
    refused: list[Refusal],
) -> list[int]:
    name = account.partition(":")[2]
    amounts = []
    for code, scale in assets:
        holder_minor = -books.balances.get((venue, name, code), 0)
        if holder_minor < 0:
            refused.append(
                Refusal(account, books.registry.accounts[account].holder, code, holder_minor, scale)
            )
            holder_minor = 0
        amounts.append(holder_minor)
    return amounts


def venue_leaves(
    books: Books, venue: str, accounts: Sequence[str]
) -> tuple[tuple[tuple[str, int], ...], list[tuple[str, list[int]]], list[Refusal]]:
    """``(assets, leaves, refused)`` for the venue's customer ``accounts`` (in leaf order)."""
    if venue not in books.registry.entities:
        raise ProofError(
            f"--venue: unknown entity {venue!r} (known: {', '.join(sorted(books.registry.entities))})",
            kind="unknown-venue",
        )
    assets = statement_assets(books)
    refused: list[Refusal] = []
    leaves = [
        (account, _leaf_amounts(books, venue, account, assets, refused)) for account in accounts
    ]
    return assets, leaves, refused


class Liabilities:
    """A venue's proof of liabilities at one point: the tree, its header, what was refused.

    Build it with :func:`liabilities_at` (from a log) or :meth:`from_books`.
    """

    def __init__(
        self,
        header: Header,
        tree: MerkleSumTree,
        refused: list[Refusal],
        *,
        at: str | None,
        books: Books,
    ) -> None:
        self.header, self.tree, self.refused, self.at, self.books = header, tree, refused, at, books

    @classmethod
    def from_books(
        cls,
        books: Books,
        venue: str,
        *,
        secret: bytes,
        accounts: Sequence[str],
        ledger_id: str,
        head_hash: bytes,
    ) -> Liabilities:
        """The tree over ``accounts`` (the venue's customer accounts in opening order, see
        :func:`opened_accounts`) at the books' point."""
        assets, leaves, refused = venue_leaves(books, venue, accounts)
        tree = MerkleSumTree(leaves, secret=secret, assets=[code for code, _ in assets])
        header = Header(ledger_id, venue, books.last_seq, head_hash, assets)
        at = ev.format_instant(books.last_at) if books.last_at is not None else None
        return cls(header, tree, refused, at=at, books=books)

    @property
    def root(self) -> bytes:
        return self.tree.root(self.header)

    def totals(self) -> dict[str, int]:
        """What the venue owes its customers per asset, minor units (the top node's sums)."""
        return dict(zip((code for code, _ in self.header.assets), self.tree.top()[1], strict=True))

    def _common(self, kind: str) -> dict[str, Any]:
        h = self.header
        top_hash, top_sums = self.tree.top()
        return {
            "format": FORMAT,
            "kind": kind,
            "ledger_id": h.ledger_id,
            "venue": h.venue,
            "seq": h.seq,
            "head_hash": h.head_hash.hex(),
            "at": self.at,
            "assets": [{"asset": code, "scale": scale} for code, scale in h.assets],
            "leaf_count": len(self.tree),
            "root": self.root.hex(),
            "top_hash": top_hash.hex(),
            "totals": {
                code: format_amount(v, s) for (code, s), v in zip(h.assets, top_sums, strict=True)
            },
        }

    def statement(self) -> dict[str, Any]:
        """The public statement: root, totals, the point, and the refused negative balances."""
        data = self._common("liabilities")
        data["refused"] = [r.to_dict() for r in self.refused]
        return data

    def inclusion(self, account: str) -> dict[str, Any]:
        """One customer's inclusion proof (the JSON ``proof verify`` reads)."""
        if account not in self.tree.index:
            known = self.tree.accounts
            hint = f" (customer accounts of {self.header.venue}: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''})"
            raise ProofError(
                f"{account!r} is not a customer account of {self.header.venue} at seq {self.header.seq}{hint}",
                kind="not-a-leaf",
            )
        return inclusion_proof(
            self.tree,
            self.header,
            account,
            at=self.at,
            holder=self.books.registry.accounts[account].holder,
            refused=[r.to_dict() for r in self.refused if r.account == account],
        )


def inclusion_proof(
    tree: MerkleSumTree,
    header: Header,
    account: str,
    *,
    at: str | None = None,
    holder: str | None = None,
    refused: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One customer's inclusion proof as JSON (what ``proof verify`` reads): the header, root
    and totals (computed once per tree version and header, then reused for every customer),
    the leaf's index, salt and balances, and the path (:meth:`MerkleSumTree.path_steps`)."""
    cached = tree._cache
    if cached is None or cached[0] != tree.version or cached[1] != header:
        top_hash, top_sums = tree.top()
        common = {
            "format": FORMAT,
            "kind": "inclusion",
            "ledger_id": header.ledger_id,
            "venue": header.venue,
            "seq": header.seq,
            "head_hash": header.head_hash.hex(),
            "at": None,
            "assets": None,
            "leaf_count": len(tree),
            "root": root_hash(header, len(tree), top_hash, top_sums).hex(),
            "totals": None,
        }
        totals = {
            code: format_amount(v, s) for (code, s), v in zip(header.assets, top_sums, strict=True)
        }
        tree._cache = cached = (tree.version, header, common, totals)
    common, totals = cached[2], cached[3]
    index, salt, amounts = tree.leaf(account)
    data = dict(common)
    data["at"] = at
    data["assets"] = [{"asset": code, "scale": scale} for code, scale in header.assets]
    data["totals"] = dict(totals)
    data["account"] = account
    data["holder"] = holder
    data["index"] = index
    data["salt"] = salt.hex()
    data["balances"] = {
        code: format_amount(v, s) for (code, s), v in zip(header.assets, amounts, strict=True)
    }
    data["path"] = [chunk.hex() for chunk in tree.path_steps(account)]
    data["refused"] = list(refused)
    return data


def head_hash_at(log: EventLog, seq: int) -> bytes:
    """The hash of the event at ``seq`` (32 zero bytes at seq 0)."""
    if seq == 0:
        return GENESIS_HASH
    for record in log.iter_records(from_seq=seq, to_seq=seq):
        return record.hash
    raise ProofError(f"seq {seq} is not in the log", kind="seq")


def liabilities_at(log: EventLog, venue: str, *, secret: bytes, books: Books) -> Liabilities:
    """The venue's proof of liabilities at the books' point in ``log`` (books from
    :meth:`ledger.forensics.Investigation.as_of`, or :func:`ledger.replay.books_at`)."""
    seq = books.last_seq
    return Liabilities.from_books(
        books,
        venue,
        secret=secret,
        accounts=opened_accounts(log, venue, seq=seq),
        ledger_id=log.ledger_id,
        head_hash=head_hash_at(log, seq),
    )


class RootTracker:
    """The venue's tree kept current as events are applied: O(k log N) per event that touches
    k of its customer accounts (an opened account is appended, also O(log N)); a newly listed
    asset widens every leaf, so it rebuilds the tree once (O(N)).

    Call :meth:`observe` after each ``books.apply``; :meth:`root` then equals the root of
    :meth:`Liabilities.from_books` at that point (a test holds them equal).
    """

    def __init__(
        self, venue: str, *, secret: bytes, books: Books, accounts: Sequence[str] = ()
    ) -> None:
        self.venue, self.secret = venue, secret
        self.accounts: list[str] = list(accounts)
        self.refused: dict[tuple[str, str], Refusal] = {}
        self._rebuild(books)

    def _rebuild(self, books: Books) -> None:
        self.assets = statement_assets(books)
        self._slot = {code: k for k, (code, _) in enumerate(self.assets)}
        refused: list[Refusal] = []
        leaves = [
            (a, _leaf_amounts(books, self.venue, a, self.assets, refused)) for a in self.accounts
        ]
        self.refused = {(r.account, r.asset): r for r in refused}
        self.tree = MerkleSumTree(
            leaves, secret=self.secret, assets=[code for code, _ in self.assets]
        )

    def observe(self, books: Books, event: ev.Event, change: Change) -> None:
        """Bring the tree up to date with the event just applied to ``books``."""
        if isinstance(event, ev.AssetListed):
            self._rebuild(books)
            return
        if isinstance(event, ev.AccountOpened):
            if event.purpose == "customer" and event.account.partition(":")[0] == self.venue:
                self.accounts.append(event.account)
                self.tree.update(event.account, [0] * len(self.assets))
            return
        venue, index = self.venue, self.tree.index
        touched = {
            f"{venue}:{account}" for entity, account, _ in change.accounts if entity == venue
        }
        for ref in touched:
            if ref in index:
                refused: list[Refusal] = []
                amounts = _leaf_amounts(books, venue, ref, self.assets, refused)
                for code, _ in self.assets:
                    self.refused.pop((ref, code), None)
                self.refused.update(((r.account, r.asset), r) for r in refused)
                self.tree.update(ref, amounts)

    def root(self, ledger_id: str, seq: int, head_hash: bytes) -> bytes:
        return self.tree.root(Header(ledger_id, self.venue, seq, head_hash, self.assets))


def roots(
    log: Log, venue: str, *, secret: bytes, policy: Policy | None = None
) -> Iterator[tuple[int, bytes, dict[str, int]]]:
    """``(seq, root, totals)`` after every event of the log: the venue's root at every step."""
    books = Books(policy or Policy(quote=log.meta("quote") or "USD"))
    tracker = RootTracker(venue, secret=secret, books=books)
    ledger_id = log.ledger_id
    for record in log.iter_records():
        change = books.apply(record.event, seq=record.seq)
        tracker.observe(books, record.event, change)
        totals = dict(zip((c for c, _ in tracker.assets), tracker.tree.totals, strict=True))
        yield record.seq, tracker.root(ledger_id, record.seq, record.hash), totals
