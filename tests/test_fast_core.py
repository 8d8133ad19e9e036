"""The fast core (ledger/core) against the reference (ledger/books.py + ledger/invariants.py).

The reference stays the oracle: on generated histories with every event type and every
standard invariant, the core must open and close the same violations at the same steps (every
field: invariant, subject, seq, event, observed, threshold, detail, contributing ids, source),
and a whole replay must give the same summary and digest. Where a history leaves what the core
covers, the core stops (Unsupported) and the replay hands over to the reference: the test
compares the core on the prefix it covers, and the whole replay's result either way.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events as ev
import replays
from ledger import core
from ledger.invariants import standard_invariants
from ledger.policy import DEFAULT_RISK_WEIGHTS, Policy
from ledger.replay import Replay, _fast_violation
from ledger.report import Heard
from ledger.store import Log
from ledger.synthetic import workload
from ledger.testing import strategies as hs

BUNDLED = ("ftx-2022", "small-example", "first-republic-2023", "voyager-2022")


def _reference(source: Any, policy: Policy | None = None) -> Replay:
    run = Replay(source, policy)
    run._fast = False  # the reference path throughout
    return run


def _key(v: Any) -> tuple[str, str]:
    return (v.invariant, v.subject)


def compare_stepwise(history: list[ev.Event], policy: Policy | None = None) -> int:
    """Feed ``history`` to the reference and to the core, one event at a time; assert that
    each step opens and closes the same violations. Returns how many events the core covered
    (it stops at the first it does not cover)."""
    policy = policy or Policy()
    ref = _reference(history, policy)
    names = [inv.name for inv in standard_invariants(policy)]
    try:
        machine = core.Machine(policy, names, _fast_violation)
    except core.Unsupported:
        return 0
    for seq, event in enumerate(history, start=1):
        step = ref.step(seq, event)
        before = dict(machine.open)
        try:
            machine.step(ev.to_dict(event), seq)
        except core.Unsupported:
            return seq - 1
        opened = sorted((v for k, v in machine.open.items() if k not in before), key=_key)
        closed = sorted((v for k, v in before.items() if k not in machine.open), key=_key)
        assert [v.to_dict() for v in opened] == [
            v.to_dict() for v in sorted(step.opened, key=_key)
        ], (seq, event)
        assert [v.to_dict() for v in closed] == [
            v.to_dict() for v in sorted(step.closed, key=_key)
        ], (seq, event)
    return len(history)


def assert_same_run(source: Any, policy: Policy | None = None) -> Replay:
    """The replay's summary (fast core, or the reference after a hand-over) equals the
    reference's, field for field; returns the replay."""
    fast = Replay(source, policy)
    got = fast.run().to_dict()
    want = _reference(source, policy).run().to_dict()
    assert got == want
    return fast


def assert_same_heard(source: Any, policy: Policy | None = None) -> Replay:
    """What a text summary gathers of the steps (the notices, the subjects each invariant
    broke for), from ``run(heard=...)``, equals the reference's from its steps."""
    heard = Heard()
    fast = Replay(source, policy)
    fast.run(heard=heard)
    want = Heard()
    for step in _reference(source, policy):
        want.add(step)
    assert (heard.subjects, heard.notices, heard.notice_count) == (
        want.subjects,
        want.notices,
        want.notice_count,
    )
    return fast


def test_the_core_keeps_as_many_notices_as_a_text_summary_shows():
    assert core.machine.NOTICES_KEPT == Heard.KEPT


# -- generated histories ----------------------------------------------------------------------
@given(hs.histories(max_events=60))
def test_the_core_agrees_with_the_reference_at_every_step(history):
    covered = compare_stepwise(history)
    assert covered == len(history)  # the standard histories are all within the core
    assert_same_run(history)
    assert assert_same_heard(history)._ran_fast


@given(hs.histories(max_events=40), hs.policies())
def test_the_core_agrees_under_any_policy(history, policy):
    compare_stepwise(history, policy)
    assert_same_run(history, policy)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(hs.histories(max_events=60, general=True), st.booleans())
def test_general_histories_agree_on_the_covered_prefix_and_as_a_whole(history, default_policy):
    # Every event type and kind appears across examples: the core compares on the prefix it
    # covers, and the whole replay (handed over to the reference) must equal the reference.
    compare_stepwise(history)
    assert_same_run(history)


# -- the general events the core covers, on top of a standard history ------------------------------
_ASSERTED = [  # (measure, extra fields): every measure the core answers, on the standard cast
    ("balance", {"account": "ex:aff", "asset": "USD"}),
    ("balance", {"account": "aff:bank", "asset": "TOK"}),
    ("holdings_value", {"asset": "TOK", "quote": "USD"}),
    ("total_assets", {"quote": "USD"}),
    ("total_liabilities", {"quote": "USD"}),
    ("equity", {"quote": "USD"}),
    ("equity_book", {"quote": "USD"}),
    ("total_assets_book", {"quote": "USD"}),
    ("customer_liabilities", {"quote": "USD"}),
    ("customer_shortfall", {"quote": "USD"}),
    ("customer_shortfall", {"quote": "TOK"}),  # restated in another quote (or unpriced)
    ("insured_deposits", {"quote": "USD"}),
    ("uninsured_deposits", {"quote": "USD"}),
    ("oci", {"quote": "USD"}),
    ("unrealised_loss", {"quote": "USD"}),
    ("leverage_ratio", {}),
    ("capital_ratio", {}),
    ("liquidity_coverage", {}),
    ("ltv", {"loan": "tail-loan"}),
    ("loan_health", {"loan": "tail-loan"}),
    ("ltv", {"loan": "tail-p2"}),  # a pooled loan: its pool's figures
]


@st.composite
def covered_general_histories(draw: st.DrawFn, kind: str = "lender") -> list[ev.Event]:
    """A standard history, then a tail with each general event type the core covers, every
    example (not a lucky draw): a mint, a pledge against a customer account and its release,
    a withdrawal paid into the holder's own account, a deposit from one, a loan default, and
    assertions of every covered measure with drawn figures and bounds; TOK repriced between
    them. Amounts are drawn, so coverage and balances break now and then.

    ``kind`` is the kind the cast's deposit-taker ``bank`` is registered with: ``"bank"``
    makes it a bank (risk weights, capital-ratio) for every event of the tail, with a claim
    on the exchange (a customer account there) and a capital injection of drawn size."""
    history = draw(hs.histories(max_events=30))
    history = [
        attrs.evolve(e, kind=kind) if e.type == "entity_registered" and e.entity == "bank" else e
        for e in history
    ]
    at = history[-1].at
    out = list(history)

    def amount(top: int, scale: int = 0) -> Decimal:
        return Decimal(draw(st.integers(1, top * 10**scale))).scaleb(-scale)

    def emit(cls: type[ev.Event], **fields: Any) -> None:
        nonlocal at
        at = at + timedelta(minutes=draw(st.integers(0, 2)))
        out.append(cls(id=f"tail-{len(out)}", at=at, source=("T",), **fields))

    def threshold(always: bool = False) -> dict[str, Decimal]:
        # A liquidation threshold (loan-health), drawn in (0, 1]: on the tail's loan always,
        # on a pooled loan most of the time.
        if not always and draw(st.integers(0, 3)) == 0:
            return {}
        return {"liquidation_threshold": Decimal(draw(st.integers(1, 100))).scaleb(-2)}

    def reprice() -> None:
        if draw(st.booleans()):
            emit(ev.PriceUpdated, asset="TOK", quote="USD", price=amount(20, 2))

    def asserted(measure: str, extra: dict[str, Any], entity: str | None = None) -> None:
        entity = entity or draw(st.sampled_from(["ex", "aff", "bank"]))
        if measure in ev.RATIO_MEASURES:
            expected, tolerance = (
                Decimal(draw(st.integers(-200, 200))).scaleb(-2),
                Decimal(draw(st.integers(0, 30))).scaleb(-2),
            )
        else:
            expected = Decimal(draw(st.integers(-(10**6), 10**6)))
            tolerance = Decimal(draw(st.integers(0, 1000)))
        bound = draw(st.sampled_from([None, "equal", "at_least", "at_most"]))
        fields = {"bound": bound} if bound is not None else {}
        emit(
            ev.BalanceAsserted,
            entity=entity,
            measure=measure,
            expected=expected,
            tolerance=tolerance,
            **extra,
            **fields,
        )

    # The deposit-taker's claim on the exchange (a bank weighs it as a ``claim``) and capital
    # from its affiliate-free parent (world: outside the books), so its capital ratio is
    # sometimes above the minimum, sometimes below.
    emit(ev.AccountOpened, account="ex:bk", purpose="customer", holder="bank")
    emit(
        ev.Transfer,
        from_account="world:market",
        to_account="bank:vault",
        asset="USD",
        amount=amount(3000, 2),
    )
    emit(
        ev.Deposit,
        account="ex:bk",
        asset="USD",
        amount=amount(200, 2),
        landed="ex:custody",
        from_account="bank:vault",
    )
    asserted("capital_ratio", {}, "bank")
    minted = amount(5000, 4)
    emit(ev.TokensMinted, asset="TOK", amount=minted, to_account="ex:treasury")
    emit(ev.Transfer, from_account="ex:treasury", to_account="aff:bank", asset="TOK", amount=minted)
    reprice()
    pledged = amount(int(minted) + 1, 4)
    emit(
        ev.CollateralPledged, account="ex:aff", asset="TOK", amount=pledged, from_account="aff:bank"
    )
    reprice()
    emit(
        ev.Withdrawal,
        account="ex:aff",
        asset="USD",
        amount=amount(500, 2),
        paid_from="ex:custody",
        to="aff:bank",
    )
    reprice()
    emit(
        ev.Deposit,
        account="ex:aff",
        asset="USD",
        amount=amount(500, 2),
        landed="ex:custody",
        from_account="aff:bank",
    )
    emit(
        ev.LoanOpened,
        loan="tail-loan",
        lender="bank",
        borrower="aff",
        asset="USD",
        principal=(principal := amount(1000, 2)),
        disbursed_from="bank:vault",
        disbursed_to="aff:bank",
        **threshold(always=True),
    )
    emit(
        ev.CollateralPledged,
        loan="tail-loan",
        asset="TOK",
        amount=(loan_tok := amount(100, 4)),
        from_account="aff:bank",
    )
    emit(ev.LoanDefaulted, loan="tail-loan")
    # Deposits at a lender (bank: kind lender): a pooled account of a liability class, insured
    # before or after the money arrives, paid out, the cover changed or ended.
    opened: dict[str, Any] = {}
    liability = draw(st.sampled_from([None, "retail", "wholesale", "unknown-class"]))
    if liability is not None:
        opened["liability_class"] = liability
    if draw(st.booleans()):
        opened["depositors"] = draw(st.integers(1, 5))
    emit(ev.AccountOpened, account="bank:dep", purpose="customer", holder="cust", **opened)
    insured_first = draw(st.booleans())
    if insured_first:
        emit(ev.DepositInsurance, insurer="world", venue="bank", asset="USD", limit=amount(300, 2))
    emit(ev.Deposit, account="bank:dep", asset="USD", amount=amount(2000, 2), landed="bank:vault")
    emit(ev.Deposit, account="bank:dep", asset="BTC", amount=amount(2, 8), landed="bank:vault")
    if not insured_first:
        emit(ev.DepositInsurance, insurer="world", venue="bank", asset="USD", limit=amount(300, 2))
    emit(
        ev.Withdrawal,
        account="bank:dep",
        asset="USD",
        amount=amount(800, 2),
        paid_from="bank:vault",
    )
    emit(ev.PriceUpdated, asset="BTC", quote="USD", price=amount(90000, 2))
    # An insurer (aff) pays the depositor part of its deposit out of the model (cust has no
    # account to receive it), the claim passing to the insurer.
    emit(
        ev.InsurerPayout,
        insurer="aff",
        account="bank:dep",
        asset="USD",
        amount=amount(300, 2),
        paid_from="aff:bank",
    )
    limit = Decimal(draw(st.integers(0, 30000))).scaleb(-2)
    emit(ev.DepositInsurance, insurer="world", venue="bank", asset="USD", limit=limit)
    # A loss allowance; seizures: part of the loan's collateral (settling part of it, which
    # may release allowance), part of the account's; then a repayment (releasing more).
    cents = int(principal * 100)
    emit(ev.LoanImpaired, loan="tail-loan", amount=Decimal(draw(st.integers(1, cents))).scaleb(-2))
    credited = draw(st.integers(0, cents))
    emit(
        ev.CollateralSeized,
        loan="tail-loan",
        asset="TOK",
        amount=Decimal(draw(st.integers(1, int(loan_tok * 10**4)))).scaleb(-4),
        to_account="bank:vault",
        credited=Decimal(credited).scaleb(-2),
    )
    if credited < cents:
        emit(
            ev.LoanRepaid,
            loan="tail-loan",
            amount=Decimal(draw(st.integers(1, cents - credited))).scaleb(-2),
            paid_from="aff:bank",
            paid_to="bank:vault",
        )
    pledged_minor = int(pledged * 10**4)
    seized = draw(st.integers(0, pledged_minor // 2))
    if seized:
        credit = draw(st.integers(0, 10**5))
        extra = {"credited": Decimal(credit).scaleb(-2), "credited_asset": "USD"} if credit else {}
        emit(
            ev.CollateralSeized,
            account="ex:aff",
            asset="TOK",
            amount=Decimal(seized).scaleb(-4),
            to_account="ex:treasury",
            **extra,
        )
    # A trade between two entities' holdings at fair value (the payment stated, or amount x price).
    paid = {"paid": amount(5000, 2)} if draw(st.booleans()) else {}
    emit(
        ev.Trade,
        asset="TOK",
        amount=amount(50),
        price=amount(30, 2),
        pay_asset="USD",
        seller_from="aff:bank",
        seller_to="aff:bank",
        buyer_from="bank:vault",
        buyer_to="bank:vault",
        **paid,
    )
    call: dict[str, Any] = {}
    if draw(st.booleans()):
        call["amount"] = amount(1000, 2)
    if draw(st.booleans()):
        call["due"] = at + timedelta(days=3)
    emit(ev.MarginCall, loan="tail-loan", **call)
    # Prices in another quote: TOK in BTC (a chain to USD), BTC repriced under it, now and then
    # a cycle (BTC in TOK: both unpriced, with notices) that a price in USD ends.
    emit(ev.PriceUpdated, asset="TOK", quote="BTC", price=amount(100, 6))
    emit(ev.PriceUpdated, asset="BTC", quote="USD", price=amount(90000, 2))
    if draw(st.booleans()):
        emit(ev.PriceUpdated, asset="BTC", quote="TOK", price=amount(1000, 2))
        asserted("total_assets", {"quote": "USD"})
    emit(ev.PriceUpdated, asset="BTC", quote="USD", price=amount(90000, 2))
    # A collateral pool: two loans in two assets, collateral pledged to the pool, a call on it,
    # one loan repaid, part of the pool's collateral seized, the rest partly released.
    for name, asset, principal_p in (
        ("tail-p1", "USD", amount(500, 2)),
        ("tail-p2", "BTC", amount(1, 8)),
    ):
        emit(
            ev.LoanOpened,
            loan=name,
            lender="bank",
            borrower="aff",
            asset=asset,
            principal=principal_p,
            disbursed_from="bank:vault",
            disbursed_to="aff:bank",
            pool="P",
            **threshold(),
        )
        if name == "tail-p1":
            p1 = principal_p
    pool_minor = draw(st.integers(2, 10**7))
    emit(
        ev.CollateralPledged,
        pool="P",
        asset="TOK",
        amount=Decimal(pool_minor).scaleb(-4),
        from_account="aff:bank",
    )
    emit(ev.MarginCall, pool="P")
    emit(
        ev.LoanRepaid,
        loan="tail-p1",
        amount=Decimal(draw(st.integers(1, int(p1 * 100)))).scaleb(-2),
        paid_from="aff:bank",
        paid_to="bank:vault",
    )
    seized_p = draw(st.integers(1, pool_minor // 2))
    emit(
        ev.CollateralSeized,
        pool="P",
        asset="TOK",
        amount=Decimal(seized_p).scaleb(-4),
        to_account="bank:vault",
    )
    emit(
        ev.CollateralReleased,
        pool="P",
        asset="TOK",
        amount=Decimal(draw(st.integers(1, pool_minor - seized_p))).scaleb(-4),
        to_account="aff:bank",
    )
    order = draw(st.permutations(range(len(_ASSERTED))))
    for index in order[: len(order) // 2]:
        asserted(*_ASSERTED[index])
    reprice()
    emit(
        ev.CollateralReleased,
        account="ex:aff",
        asset="TOK",
        amount=Decimal(draw(st.integers(1, pledged_minor - seized))).scaleb(-4),
        to_account="aff:bank",
    )
    reprice()
    for index in order[len(order) // 2 :]:
        asserted(*_ASSERTED[index])
    # Holdings at cost, every example: the deposit-taker's held-to-maturity (amortized cost)
    # and available-for-sale accounts; a bond it issues minted into one before any price
    # (its book value starts at 0, with the notice), TOK bought into the other (the payment is
    # its book value), BTC moved in at market and partly out (at average book value), each
    # written down or up, part of the TOK sold (a realised gain or loss, with the notice),
    # the bond priced; the book measures asserted on it.
    htm, afs = draw(st.permutations(["amortized_cost", "available_for_sale"]))
    emit(ev.AssetListed, asset="BND", name="Bond", scale=2, kind="bond", issuer="bank")
    emit(ev.AccountOpened, account="bank:htm", purpose="corporate", basis=htm)
    emit(ev.AccountOpened, account="bank:afs", purpose="customer-custody", basis=afs)
    emit(ev.TokensMinted, asset="BND", amount=amount(1000, 2), to_account="bank:htm")
    bought = amount(40)
    emit(
        ev.Trade,
        asset="TOK",
        amount=bought,
        price=amount(30, 2),
        pay_asset="USD",
        seller_from="aff:bank",
        seller_to="aff:bank",
        buyer_from="bank:vault",
        buyer_to="bank:afs",
    )
    emit(
        ev.Transfer,
        from_account="bank:vault",
        to_account="bank:htm",
        asset="BTC",
        amount=amount(1, 8),
    )
    emit(ev.PriceUpdated, asset="BND", quote="USD", price=amount(120, 2))
    reprice()
    emit(
        ev.Transfer,
        from_account="bank:htm",
        to_account="bank:vault",
        asset="BTC",
        amount=amount(1, 8),
    )
    for account, asset in (("bank:htm", "BND"), ("bank:afs", "TOK"), ("bank:htm", "BTC")):
        emit(ev.HoldingImpaired, account=account, asset=asset, book_price=amount(200, 2))
    emit(
        ev.Trade,
        asset="TOK",
        amount=Decimal(draw(st.integers(1, int(bought)))),
        price=amount(30, 2),
        pay_asset="USD",
        seller_from="bank:afs",
        seller_to="bank:vault",
        buyer_from="aff:bank",
        buyer_to="aff:bank",
    )
    emit(ev.PriceUpdated, asset="BND", quote="USD", price=amount(120, 2))
    for measure in (
        "capital_ratio",
        "leverage_ratio",
        "equity_book",
        "total_assets_book",
        "oci",
        "unrealised_loss",
    ):
        asserted(measure, {"quote": "USD"} if "ratio" not in measure else {}, "bank")
    # A resolution, every example: the deposit-taker's deposits, vault and holdings at cost
    # move to an acquirer (a bank or a lender, insured or not before), which then takes a
    # deposit, pays a withdrawal and sells some of the TOK it took over at its book value;
    # now and then the affiliate is put into receivership too (no acquirer, nothing moves).
    emit(
        ev.EntityRegistered,
        entity="acq",
        name="Acquirer",
        kind=draw(st.sampled_from(["bank", "lender"])),
    )
    if draw(st.booleans()):
        emit(ev.DepositInsurance, insurer="world", venue="acq", asset="USD", limit=amount(100, 2))
    moved = ["bank:dep", "bank:vault", "bank:afs"] + (["bank:htm"] if draw(st.booleans()) else [])
    emit(
        ev.Resolution,
        entity="bank",
        authority="world",
        method=draw(st.sampled_from(["bridge_bank", "purchase_and_assumption"])),
        to_entity="acq",
        accounts=tuple(draw(st.permutations(moved))),
    )
    emit(ev.Deposit, account="acq:dep", asset="USD", amount=amount(500, 2), landed="acq:vault")
    emit(
        ev.Withdrawal, account="acq:dep", asset="USD", amount=amount(500, 2), paid_from="acq:vault"
    )
    emit(
        ev.Trade,
        asset="TOK",
        amount=Decimal(draw(st.integers(1, 10))),
        price=amount(30, 2),
        pay_asset="USD",
        seller_from="acq:afs",
        seller_to="acq:vault",
        buyer_from="aff:bank",
        buyer_to="aff:bank",
    )
    if draw(st.booleans()):
        emit(ev.Resolution, entity="aff", authority="world", method="receivership")
    reprice()
    for measure in ("capital_ratio", "equity_book", "liquidity_coverage", "insured_deposits"):
        asserted(
            measure,
            {"quote": "USD"} if "ratio" not in measure and "coverage" not in measure else {},
            "acq",
        )
    return out


_BANK_POLICY = st.builds(  # policies that move a bank's capital ratio and its risk weights
    lambda minimum, basis, weights: Policy(
        min_capital_ratio=minimum,
        capital_basis=basis,
        risk_weights=dict(DEFAULT_RISK_WEIGHTS) | weights,
        min_collateral_coverage=Decimal("1.5"),
    ),
    st.integers(0, 40).map(lambda p: Decimal(p).scaleb(-2)),
    st.sampled_from(["risk_weighted", "leverage"]),
    st.dictionaries(
        st.sampled_from(["fiat", "crypto", "exchange_token", "loan_receivable", "claim"]),
        st.integers(0, 300).map(lambda p: Decimal(p).scaleb(-2)),
    ),
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(covered_general_histories(kind="bank"), _BANK_POLICY)
def test_a_bank_runs_on_the_core_and_agrees(history, policy):
    # The cast's deposit-taker is a bank in every example: its loans, allowance, collateral,
    # deposits, claim and holdings are weighed for risk, the capital-ratio invariant checks it
    # on every event that touches it (either basis), and its capital ratio, leverage ratio and
    # book figures are asserted; the summary shows its capital ratio when it is the venue.
    assert any(e.type == "entity_registered" and e.kind == "bank" for e in history)
    assert compare_stepwise(history) == len(history)
    assert compare_stepwise(history, policy) == len(history)
    run = assert_same_run(history, policy)
    assert run._ran_fast
    assert [a for a in run.summary.assertions if a["subject"].startswith("bank")]
    assert assert_same_heard(history, policy)._ran_fast


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(covered_general_histories(), st.booleans())
def test_covered_general_events_run_on_the_core_and_agree(history, default_policy):
    types = {e.type for e in history}
    assert {
        "tokens_minted",
        "collateral_pledged",
        "collateral_released",
        "collateral_seized",
        "loan_defaulted",
        "margin_call",
        "trade",
        "deposit_insurance",
        "loan_impaired",
        "insurer_payout",
        "holding_impaired",
        "resolution",
        "balance_asserted",
    } <= types
    assert compare_stepwise(history) == len(history)  # the core covered every event
    policy = (
        Policy()
        if default_policy
        else Policy(
            min_collateral_coverage=Decimal("1.5"),
            min_liquidity_coverage=Decimal("3"),
            run_off={
                "insured": Decimal("0.02"),
                "uninsured": Decimal("0.5"),
                "retail": Decimal("0.125"),
            },
        )
    )
    assert compare_stepwise(history, policy) == len(history)
    run = assert_same_run(history, policy)
    assert (
        run._ran_fast
    )  # the summary (the assertions with it) is the core's, equal to the reference's
    assert len(run.summary.assertions) >= len(_ASSERTED)
    assert any(e.type == "loan_opened" and e.liquidation_threshold for e in history)
    assert {e.basis for e in history if e.type == "account_opened"} >= {
        "amortized_cost",
        "available_for_sale",
    }
    assert assert_same_heard(history, policy)._ran_fast


@given(
    hs.histories(max_events=40),
    st.sampled_from(
        [
            "segregation",
            "reserve-ratio",
            "solvency",
            "own-token-concentration",
            "collateral-coverage",
        ]
    ),
)
def test_disabled_invariants_are_left_out_alike(history, disabled):
    policy = Policy(disabled=frozenset({disabled}))
    compare_stepwise(history, policy)
    assert_same_run(history, policy)


# -- breaches of each covered invariant, built by hand -------------------------------------------
def _cast() -> list[ev.Event]:
    return hs.cast_events()


def _e(cls: type[ev.Event], n: int, **fields: Any) -> ev.Event:
    return cls(id=f"x{n}", at=hs.START, source=("X",), **fields)


def test_each_covered_invariant_opens_and_closes_like_the_reference():
    usd = "USD"
    history = _cast() + [
        _e(ev.Deposit, 1, account="ex:cust", asset=usd, amount=Decimal("100"), landed="ex:custody"),
        # segregation and reserve-ratio: custody leaves for the treasury
        _e(
            ev.Transfer,
            2,
            from_account="ex:custody",
            to_account="ex:treasury",
            asset=usd,
            amount=Decimal("60"),
        ),
        # no-unauthorised-negative: the customer moves more than it has
        _e(
            ev.Transfer,
            3,
            from_account="ex:cust",
            to_account="ex:aff",
            asset=usd,
            amount=Decimal("150"),
        ),
        _e(ev.CreditLineGranted, 4, account="ex:cust", asset=usd, limit=Decimal("60")),
        # withdrawals-honoured: custody cannot pay
        _e(
            ev.Withdrawal,
            5,
            account="ex:aff",
            asset=usd,
            amount=Decimal("140"),
            paid_from="ex:custody",
        ),
        _e(
            ev.Transfer,
            6,
            from_account="ex:treasury",
            to_account="ex:custody",
            asset=usd,
            amount=Decimal("60"),
        ),
        _e(
            ev.Withdrawal,
            7,
            account="ex:aff",
            asset=usd,
            amount=Decimal("10"),
            paid_from="ex:custody",
        ),
        # own-token-concentration and collateral-coverage: the affiliate's TOK pledged for a loan
        _e(
            ev.Transfer,
            8,
            from_account="world:market",
            to_account="aff:bank",
            asset="TOK",
            amount=Decimal("1000"),
        ),
        _e(
            ev.Transfer,
            9,
            from_account="world:market",
            to_account="bank:vault",
            asset=usd,
            amount=Decimal("1000"),
        ),
        _e(ev.PriceUpdated, 10, asset="TOK", quote=usd, price=Decimal("2")),
        _e(
            ev.LoanOpened,
            11,
            loan="L",
            lender="bank",
            borrower="aff",
            asset=usd,
            principal=Decimal("500"),
            disbursed_from="bank:vault",
            disbursed_to="aff:bank",
        ),
        _e(
            ev.CollateralPledged,
            12,
            loan="L",
            asset="TOK",
            amount=Decimal("800"),
            from_account="aff:bank",
        ),
        _e(ev.PriceUpdated, 13, asset="TOK", quote=usd, price=Decimal("0.5")),
        _e(ev.PriceUpdated, 14, asset="TOK", quote=usd, price=Decimal("3")),
        _e(
            ev.LoanRepaid,
            15,
            loan="L",
            amount=Decimal("500"),
            paid_from="aff:bank",
            paid_to="bank:vault",
        ),
        _e(
            ev.CollateralReleased,
            16,
            loan="L",
            asset="TOK",
            amount=Decimal("800"),
            to_account="aff:bank",
        ),
        # solvency: the affiliate gives its money away
        _e(
            ev.Transfer,
            17,
            from_account="aff:bank",
            to_account="world:market",
            asset="TOK",
            amount=Decimal("1000"),
        ),
        _e(ev.WithdrawalsHalted, 18, venue="ex"),
        _e(
            ev.Withdrawal,
            19,
            account="ex:aff",
            asset=usd,
            amount=Decimal("1"),
            paid_from="ex:custody",
        ),
        _e(ev.WithdrawalsResumed, 20, venue="ex"),
        _e(
            ev.Deposit,
            21,
            account="ex:cust",
            asset=usd,
            amount=Decimal("5"),
            landed="aff:bank",
            owed_by="ex:aff",
        ),
        _e(
            ev.Deposit, 22, account="ex:cust", asset="BTC", amount=Decimal("0.5"), landed="aff:bank"
        ),
    ]
    assert compare_stepwise(history) == len(history)
    summary = assert_same_run(history).summary
    broke = set(summary.broke())
    assert {
        "segregation",
        "reserve-ratio",
        "no-unauthorised-negative",
        "withdrawals-honoured",
        "collateral-coverage",
        "own-token-concentration",
    } <= broke


# -- the synthetic workload, hand-overs, sources -----------------------------------------------
def test_the_workload_runs_on_the_core_and_matches(tmp_path):
    history = list(workload(3_000, accounts=30))
    run = assert_same_run(history)
    assert run._books_stale  # the core computed it: no reference books were built
    path = tmp_path / "w.db"
    with Log.open(path, create=True) as log:
        log.append(history)
    with Log.open(path, readonly=True) as log:
        run = assert_same_run(log)
        assert run._books_stale
        # The books are still there for whoever reads them (rebuilt from the source).
        ref = _reference(log)
        ref.run()
        assert run.books.balances == ref.books.balances


def test_books_are_rebuilt_when_read_after_a_fast_run():
    history = list(workload(500, accounts=10))
    run = Replay(history)
    run.run()
    ref = _reference(history)
    ref.run()
    assert run.books.balances == ref.books.balances
    assert run.focus_venue() == ref.focus_venue()


def test_an_uncovered_event_hands_over_to_the_reference():
    history = list(workload(800, accounts=10))
    at = history[-1].at
    history += [  # a customer account with a credit line moved by a resolution: the reference's
        ev.CreditLineGranted(
            id="line", at=at, source=("W",), account="ex:c000001", asset="USD", limit=Decimal(5)
        ),
        ev.Resolution(
            id="resolved",
            at=at,
            source=("W",),
            entity="ex",
            authority="world",
            method="purchase_and_assumption",
            to_entity="mm",
            accounts=("ex:c000001",),
        ),
    ]
    history.append(
        ev.BalanceAsserted(
            id="check",
            at=history[-1].at,
            source=("W",),
            entity="ex",
            measure="customer_liabilities",
            quote="USD",
            expected=Decimal("1"),
            tolerance=Decimal("0"),
        )
    )
    run = assert_same_run(history)
    assert not run._books_stale and not run._ran_fast  # handed over: the reference's books
    assert run.summary.assertions


def _core_after(history: list[ev.Event]) -> core.Machine:
    names = [inv.name for inv in standard_invariants()]
    machine = core.Machine(Policy(), names, _fast_violation)
    for seq, event in enumerate(history, start=1):
        machine.step(ev.to_dict(event), seq)
    return machine


def test_settled_loans_shrink_so_memory_follows_the_live_ones():
    # W(N) keeps at most 200 loans open at once but opens a new one every few dozen events:
    # the core must hold the live ones, not every loan ever made (issue 20's memory target).
    history = list(workload(20_000, accounts=50))
    opened = {e.loan for e in history if isinstance(e, ev.LoanOpened)}
    machine = _core_after(history)
    assert len(opened) > 400
    assert len(machine.loans) <= 200
    assert set(machine.retired) | set(machine.loans) == opened
    assert not set(machine.retired) & set(machine.loans)
    for loan in machine.retired:  # only what was settled and emptied shrinks
        repaid = sum(e.amount for e in history if isinstance(e, ev.LoanRepaid) and e.loan == loan)
        opening = next(e for e in history if isinstance(e, ev.LoanOpened) and e.loan == loan)
        assert repaid == opening.principal
    assert_same_run(history)


def test_a_settled_loan_named_again_is_the_same_loan():
    history = list(workload(3_000, accounts=30))
    settled = sorted(_core_after(history).retired)[0]
    at = history[-1].at
    opening = next(e for e in history if isinstance(e, ev.LoanOpened) and e.loan == settled)
    again = [  # collateral pledged against it again, priced, called, asserted on, released
        ev.CollateralPledged(
            id="again", at=at, source=("W",), loan=settled, asset="TOK", amount=Decimal(7), from_account="mm:bank"
        ),
        ev.PriceUpdated(id="tok", at=at, source=("W",), asset="TOK", quote="USD", price=Decimal("0.01")),
        ev.MarginCall(id="call", at=at, source=("W",), loan=settled),
        ev.BalanceAsserted(
            id="ltv", at=at, source=("W",), entity=opening.lender, measure="ltv", loan=settled,
            expected=Decimal(0), tolerance=Decimal(0),
        ),
        ev.CollateralReleased(
            id="back", at=at, source=("W",), loan=settled, asset="TOK", amount=Decimal(7), to_account="mm:bank"
        ),
    ]
    assert compare_stepwise([*history, *again]) == len(history) + len(again)
    run = assert_same_run([*history, *again])
    assert run._ran_fast
    # A second loan under a settled id is refused, in the reference's words.
    reopened = attrs.evolve(opening, id="reopened", at=at)
    from ledger.errors import InputError

    with pytest.raises(InputError) as fast:
        Replay([*history, reopened]).run()
    with pytest.raises(InputError) as ref:
        _reference([*history, reopened]).run()
    assert str(fast.value) == str(ref.value)


def test_an_impossible_event_is_the_reference_s_error():
    history = list(workload(200, accounts=5))
    history.append(
        ev.Withdrawal(
            id="bad",
            at=history[-1].at,
            source=("W",),
            account="ex:nobody",
            asset="USD",
            amount=Decimal("1"),
            paid_from="ex:custody",
        )
    )
    from ledger.errors import InputError

    with pytest.raises(InputError) as fast:
        Replay(history).run()
    with pytest.raises(InputError) as ref:
        _reference(history).run()
    assert str(fast.value) == str(ref.value)


#: The bundled timelines whose every event the core covers (the others hand over): all four.
FAST = {"ftx-2022", "small-example", "voyager-2022", "first-republic-2023"}


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_timelines_give_identical_steps_breaches_and_digests(name):
    timeline = replays.load_timeline(name)
    covered = compare_stepwise(list(timeline.events))
    assert (covered == len(timeline.events)) == (name in FAST)
    run = assert_same_run(timeline)
    assert run._ran_fast == (name in FAST)
    assert assert_same_heard(timeline)._ran_fast == (name in FAST)
    ref = _reference(timeline)
    steps = [s.to_dict() for s in ref]
    assert [s.to_dict() for s in Replay(timeline)] == steps
    assert run.summary.digest == ref.summary.digest
    assert run.summary.first_breaches == ref.summary.first_breaches
