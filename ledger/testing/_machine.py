"""``LedgerMachine``: a Hypothesis state machine over a real log file and the books.

It appends events to a real SQLite log, keeps a plain-Python reference model beside it, and
after every step checks that the log verifies (and still matches every checkpoint taken), that
seq is gapless, that the books folded from the log equal the books folded from the model's
events, that conservation holds per asset, and that every invariant in ``extra_invariants``
(yours) holds. Subclass it to add rules or invariants; or use it as is::

    from ledger.testing import LedgerMachine
    TestLedger = LedgerMachine.TestCase
"""

from __future__ import annotations

import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import events as ev
from ledger.books import Books
from ledger.errors import ConflictError, InputError
from ledger.replay import Replay
from ledger.store import Checkpoint, Log
from ledger.testing.strategies import GENERAL_CAST, GENERAL_SCALES, SCALES, START, cast_events


class LedgerMachine(RuleBasedStateMachine):
    """Model-based test of log + books against a reference model (see the module docstring).

    Attributes:
        extra_invariants: invariant objects (``name``, ``meaning``, ``check``) that must hold
            after every step; add yours in a subclass.
        policy: the policy those invariants run under.
        general: also declare the general model's cast (``strategies.GENERAL_CAST``, each
            drawn kind or field at its first choice) and run its rules: deposits and
            withdrawals at the bank ``bk``, deposit insurance, the bank buying bonds in a
            trade, prices in the quote and chained (stETH in ETH).
    """

    extra_invariants: ClassVar[tuple[Any, ...]] = ()
    policy: ClassVar[Any] = None
    general: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ledger-machine-"))
        self.path = self.tmp / "ledger.db"
        self.log = Log.open(self.path, create=True)
        self.model: list[ev.Event] = []
        self.held: dict[tuple[str, str], int] = {}
        self.owed: dict[tuple[str, str], int] = {}
        self.checkpoints: list[Checkpoint] = []
        self.serial = 0
        self.checker = Replay([], self.policy, invariants=list(self.extra_invariants), metrics=False)
        self._append(cast_events())
        if self.general:
            self._append([
                ev.EVENT_TYPES[type_name](
                    id=f"gcast-{i}", at=START, source=("T",),
                    **{k: v[0] if isinstance(v, tuple) else v for k, v in fields.items() if (v[0] if isinstance(v, tuple) else v) is not None},
                )
                for i, (type_name, fields) in enumerate(GENERAL_CAST)
            ])

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------------
    def _next(self, cls: type[ev.Event], **fields: Any) -> ev.Event:
        self.serial += 1
        at = START.replace(microsecond=0) + (self.serial * ev_minute())
        return cls(id=f"m{self.serial}", at=at, source=("T",), **fields)

    def _append(self, batch: list[ev.Event]) -> None:
        result = self.log.append(batch)
        assert len(result.appended) == len(batch), result
        for event in batch:
            self.model.append(event)
            step = self.checker.step(len(self.model), event)
            assert not step.opened, f"invariant broke: {[v.detail for v in step.opened]}"

    # -- rules -----------------------------------------------------------------------------------
    @rule(account=st.sampled_from(("ex:cust", "ex:aff")), asset=st.sampled_from(("USD", "BTC")), minor=st.integers(1, 10**9))
    def deposit(self, account: str, asset: str, minor: int) -> None:
        event = self._next(ev.Deposit, account=account, asset=asset, amount=ev.from_minor(minor, SCALES[asset]), landed="ex:custody")
        self._append([event])
        self.owed[(account, asset)] = self.owed.get((account, asset), 0) + minor
        self.held[("ex:custody", asset)] = self.held.get(("ex:custody", asset), 0) + minor

    @rule(account=st.sampled_from(("ex:cust", "ex:aff")), asset=st.sampled_from(("USD", "BTC")), share=st.integers(1, 100))
    def withdraw(self, account: str, asset: str, share: int) -> None:
        have = self.owed.get((account, asset), 0)
        minor = have * share // 100
        if minor <= 0:
            return
        self._append([self._next(ev.Withdrawal, account=account, asset=asset, amount=ev.from_minor(minor, SCALES[asset]), paid_from="ex:custody")])
        self.owed[(account, asset)] -= minor
        self.held[("ex:custody", asset)] -= minor

    @rule(asset=st.sampled_from(("USD", "BTC")), share=st.integers(1, 100))
    def transfer(self, asset: str, share: int) -> None:
        minor = self.owed.get(("ex:cust", asset), 0) * share // 100
        if minor <= 0:
            return
        self._append([self._next(ev.Transfer, from_account="ex:cust", to_account="ex:aff", asset=asset, amount=ev.from_minor(minor, SCALES[asset]))])
        self.owed[("ex:cust", asset)] -= minor
        self.owed[("ex:aff", asset)] = self.owed.get(("ex:aff", asset), 0) + minor

    @rule(asset=st.sampled_from(("BTC", "TOK")), cents=st.integers(1, 10**9))
    def price_update(self, asset: str, cents: int) -> None:
        self._append([self._next(ev.PriceUpdated, asset=asset, quote="USD", price=ev.from_minor(cents, 2))])

    # -- the general model's rules (only with ``general``) ------------------------------------------
    @precondition(lambda self: self.general)
    @rule(account=st.sampled_from(("bk:retail", "bk:corp", "bk:big")), minor=st.integers(1, 10**9))
    def bank_deposit(self, account: str, minor: int) -> None:
        self._append([self._next(ev.Deposit, account=account, asset="USD", amount=ev.from_minor(minor, 2), landed="bk:cash")])
        self.owed[(account, "USD")] = self.owed.get((account, "USD"), 0) + minor
        self.held[("bk:cash", "USD")] = self.held.get(("bk:cash", "USD"), 0) + minor

    @precondition(lambda self: self.general)
    @rule(account=st.sampled_from(("bk:retail", "bk:corp", "bk:big")), share=st.integers(1, 100))
    def bank_withdraw(self, account: str, share: int) -> None:
        minor = min(self.owed.get((account, "USD"), 0), self.held.get(("bk:cash", "USD"), 0)) * share // 100
        if minor <= 0:
            return
        self._append([self._next(ev.Withdrawal, account=account, asset="USD", amount=ev.from_minor(minor, 2), paid_from="bk:cash")])
        self.owed[(account, "USD")] -= minor
        self.held[("bk:cash", "USD")] -= minor

    @precondition(lambda self: self.general)
    @rule(limit=st.sampled_from(("0", "250000", "100")))
    def insure(self, limit: str) -> None:
        self._append([self._next(ev.DepositInsurance, insurer="ins", venue="bk", asset="USD", limit=limit)])

    @precondition(lambda self: self.general)
    @rule(to=st.sampled_from(("bk:htm", "bk:afs")), units=st.integers(1, 10**6), share=st.integers(1, 100))
    def bank_buys_bonds(self, to: str, units: int, share: int) -> None:
        paid = self.held.get(("bk:cash", "USD"), 0) * share // 100
        if paid <= 0:
            return
        self._append([self._next(ev.Trade, asset="TB", amount=ev.from_minor(units * 100, GENERAL_SCALES["TB"]), price=Decimal(1), pay_asset="USD", paid=ev.from_minor(paid, 2), seller_from="world:market", seller_to="world:market", buyer_from="bk:cash", buyer_to=to)])
        self.held[("bk:cash", "USD")] -= paid
        self.held[(to, "TB")] = self.held.get((to, "TB"), 0) + units * 100

    @precondition(lambda self: self.general)
    @rule(pair=st.sampled_from((("TB", "USD"), ("ETH", "USD"), ("STETH", "ETH"), ("ETH", "STETH"))), cents=st.integers(1, 10**6))
    def general_price(self, pair: tuple[str, str], cents: int) -> None:
        self._append([self._next(ev.PriceUpdated, asset=pair[0], quote=pair[1], price=ev.from_minor(cents, 2))])

    @precondition(lambda self: len(self.model) > len(cast_events()))
    @rule(data=st.data())
    def resubmit_existing(self, data: st.DataObject) -> None:
        event = data.draw(st.sampled_from(self.model))
        head = self.log.head()
        result = self.log.append([event])
        assert result.appended == [] and len(result.existing) == 1
        assert self.log.head() == head

    @precondition(lambda self: any(isinstance(e, ev.Deposit) for e in self.model))
    @rule(data=st.data())
    def resubmit_conflicting(self, data: st.DataObject) -> None:
        deposits = [e for e in self.model if isinstance(e, ev.Deposit)]
        event = data.draw(st.sampled_from(deposits))
        changed = ev.Deposit(id=event.id, at=event.at, source=event.source, account=event.account, asset=event.asset, amount=event.amount + 1, landed=event.landed)
        head = self.log.head()
        try:
            self.log.append([changed])
        except ConflictError as exc:
            assert exc.fields == ["amount"], exc.fields
        else:
            raise AssertionError("a conflicting resubmission was accepted")
        assert self.log.head() == head

    @rule(kind=st.sampled_from(("unknown-account", "too-precise", "unknown-asset")))
    def submit_invalid(self, kind: str) -> None:
        head = self.log.head()
        fields = {"account": "ex:cust", "asset": "USD", "amount": Decimal("1.00"), "landed": "ex:custody"}
        if kind == "unknown-account":
            fields["account"] = "ex:nobody"
        elif kind == "too-precise":
            fields["amount"] = Decimal("1.001")
        else:
            fields["asset"] = "XYZ"
        bad = self._next(ev.Deposit, **fields)
        good = self._next(ev.Deposit, account="ex:cust", asset="USD", amount=Decimal(1), landed="ex:custody")
        try:
            self.log.append([good, bad])  # all or nothing: the good one must not land either
        except InputError:
            pass
        else:
            raise AssertionError(f"invalid event ({kind}) was accepted")
        assert self.log.head() == head

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = Log.open(self.path)

    @rule()
    def checkpoint(self) -> None:
        self.checkpoints.append(self.log.checkpoint())

    # -- invariants --------------------------------------------------------------------------------
    @invariant()
    def log_verifies_and_matches_checkpoints(self) -> None:
        result = self.log.verify(self.checkpoints)
        assert result.events_checked == len(self.model)
        assert result.checkpoints_matched == len(self.checkpoints)

    @invariant()
    def books_equal_the_model(self) -> None:
        from_log = Books()
        for seq, record in enumerate(self.log.iter_records(), start=1):
            assert record.seq == seq, "seq is not gapless"
            from_log.apply(record.event)
        from_model = Books()
        for event in self.model:
            from_model.apply(event)
        assert from_log.balances == from_model.balances
        for (account, asset), minor in self.owed.items():
            assert from_log.balance(account, asset) == minor, (account, asset)
        for (account, asset), minor in self.held.items():
            assert from_log.balance(account, asset) == minor, (account, asset)
        totals: dict[tuple[str, str], int] = {}
        for (entity, _, asset), minor in from_log.balances.items():
            totals[(entity, asset)] = totals.get((entity, asset), 0) + minor
        assert all(v == 0 for v in totals.values()), "conservation: books do not sum to zero"


def ev_minute() -> Any:
    from datetime import timedelta

    return timedelta(minutes=1)
