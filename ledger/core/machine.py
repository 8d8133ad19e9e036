"""The fast core's state machine: one state layout, one apply per event type, the standard
invariants as transition-reporting checks. See the package docstring for what it covers.

Reading guide
-------------
*State* (all of it is declared in ``Machine.__init__``, ``Entity``, ``Account``, ``Line`` and
``Loan``; nothing else holds books state):

- ``Entity``: one per registered entity, with its running values in the quote
  (``assets_v``, ``liabs_v``, ``owed_v``, ``reserves_v``, ``related_v``; a deposit-taker's
  ``insured_v`` and ``runoff_v``; a bank's ``rwa_v``) as exact integers, its deposit covers
  per asset, its holdings at cost (``cost``).
- ``Account``: one per account, opened or implicit (``claim:``, ``loan:``, ``pledged:``,
  ``allowance:``, ``due-from:``/``due-to:``, ``equity``, ``external``): its class, its entity
  and counterparty, balances per asset; a customer account's credit lines, depositors and
  run-off rate, and the secured target against it, if any; a holding at cost's ``basis`` and
  ``book`` value per asset (Decimals, as the reference computes them).
- ``Line``: one per (entity, asset): the reference's aggregates ``pos``, ``neg``, ``custody``,
  ``owed`` (customer liabilities), ``held``, ``pledged``, ``related``, and a deposit-taker's
  ``insured`` and ``runoff``, a bank's ``rwa``, in minor units (``runoff`` and ``rwa`` at
  exponent ``H``).
- ``Loan``: a secured target (a loan, a customer account with collateral, or a pool of loans):
  outstanding principal, loss allowance, liquidation threshold, collateral per asset, the
  break price, whether its checks are open.

*Values.* A value in the quote is an integer at the fixed exponent ``E`` (value =
``v x 10^-E``): ``minor x unit`` where ``unit[asset] = price x 10^(E - scale)``. Haircut
"keeps" (1 - haircut) are integers at exponent ``H``; a value after haircuts is at ``E + H``.
Every sum is exact, so it equals the reference's exact Decimal sums; it is turned into a
Decimal (``_dec``) only to report a breach or the final metrics, with the reference's own
formatting, so the text is the same.

*Checks.* After an event, only the subjects it touched are looked at (the same subjects the
reference checks, so the "contributing" ids agree), each with integer comparisons. A subject
records whether it is open; a Violation is built only when that changes (ok -> broken), and a
close only looks up the open violation (broken -> ok).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import events as ev
from ledger import kinds as _kinds
from ledger.books import SUM_CONTEXT, VALUE_CONTEXT, ZERO
from ledger.policy import Policy

if TYPE_CHECKING:
    from ledger.books import Books

#: Contributing ids kept per subject (ledger.replay.CONTRIBUTORS_KEPT).
KEPT = 4
#: Notices kept for a text summary (ledger.report.Heard.KEPT); all are counted.
NOTICES_KEPT = 50
#: Exponent of values: ``E`` >= an asset's scale + its price's decimals (else: Unsupported).
E = 40
#: Exponent of haircut keeps and policy ratios (a policy fraction with more decimals: Unsupported).
H = 24

# Account classes, as small ints (compared with ``is``-cheap int equality on the hot path).
HOLDINGS, CUSTODY, CUSTOMER, EXTERNAL, EQUITY, CLAIM, LOAN, PLEDGED, DUE, ALLOWANCE = range(10)

_TIME_LEN = len("2020-01-01T00:00:00Z")  # the canonical instant without fractions
_ZEROS = ["0" * n for n in range(40)]
_WIDE = SUM_CONTEXT  # exact: 400 digits, traps on inexact


class Unsupported(Exception):
    """The history leaves what the core covers: the engine replays with the reference."""


def covers(policy: Policy) -> bool:
    """Whether the core can check this policy's invariants (else: the reference throughout)."""
    return not policy.enforce and not policy.proof_of_reserves


def _dec(value: int, exponent: int) -> Decimal:
    """The exact Decimal ``value x 10^-exponent``."""
    return Decimal(value).scaleb(-exponent, _WIDE)


def _fixed(value: Decimal, exponent: int) -> int:
    """``value x 10^exponent`` as an int; Unsupported if that is not whole (too many decimals)."""
    scaled = value.scaleb(exponent, _WIDE)
    if scaled != scaled.to_integral_value():
        raise Unsupported(f"{value} has more than {exponent} decimals")
    return int(scaled)


def _minor(text: Any, scale: int, zero: bool = False) -> int:
    """Minor units of a stored amount (canonical text: digits, an optional fraction, no sign).

    Anything else (an exponent, a sign, too many decimals, zero) is left to the reference,
    which gives the precise error or handles it."""
    if type(text) is not str:
        raise Unsupported("amount")
    whole, dot, frac = text.partition(".")
    if dot:
        if len(frac) > scale:
            raise Unsupported("amount finer than the scale")
        digits = whole + frac + _ZEROS[scale - len(frac)]
    else:
        digits = whole + _ZEROS[scale]
    if not whole or not digits.isdigit() or not digits.isascii() or len(digits) > 38:
        raise Unsupported("amount")
    minor = int(digits)
    if minor <= 0 and not (zero and minor == 0):
        raise Unsupported("amount")
    return minor


class Entity:
    """One entity: its kind's reach and running values (see the module docstring)."""

    __slots__ = (
        "assets_v",
        "bank",
        "cost",
        "cover",
        "custodial",
        "customers",
        "deposit_taker",
        "due",
        "equity",
        "external",
        "family",
        "group",
        "insured_v",
        "kind",
        "lcr",
        "liabs_v",
        "lines",
        "name",
        "open",
        "owed_v",
        "own",
        "related_v",
        "reserves_v",
        "rr_touch",
        "runoff_v",
        "rwa_v",
        "solvency",
        "touch",
        "venue",
        "wh_touch",
    )

    def __init__(self, name: str, kind: str, group: str | None) -> None:
        self.name = name
        self.kind = kind
        self.family = _kinds.family(kind)
        self.group = group
        self.solvency = _kinds.applies("solvency", kind)
        self.custodial = _kinds.applies("segregation", kind)  # segregation and reserve-ratio
        self.lcr = _kinds.applies("liquidity-coverage", kind)
        # A deposit-taker (a bank or a lender) keeps the insured part and the
        # run-off-weighted total of what depositors are owed, per asset, as postings move.
        self.deposit_taker = self.family in ("bank", "lender")
        # A bank weighs its assets for risk (capital-ratio): ``rwa_v`` = sum of rwa x unit.
        self.bank = _kinds.applies("capital-ratio", kind)
        self.rwa_v = 0  # risk-weighted assets at market   (E + H)
        # Holdings carried at cost that have a book value (the reference's ``cost_keys``):
        # the book measures and, for a bank, the capital ratio read them (Decimal, rare).
        self.cost: dict[tuple[Account, str], None] = {}
        self.cover: dict[str, int] = {}  # asset -> deposit insurance limit per depositor (minor)
        self.customers: list[Account] = []  # its customer accounts (a cover moves them all)
        self.insured_v = 0  # sum of insured x unit        (E)
        self.runoff_v = 0  # sum of runoff x unit          (E + H)
        self.venue = False  # has customer accounts (posted to): the reference's ``venues``
        self.lines: dict[str, Line] = {}  # asset -> Line, in the order first seen
        self.own: list[Line] = []  # lines in tokens it or an affiliate issued
        self.assets_v = 0  # sum of pos x unit            (exponent E)
        self.liabs_v = 0  # sum of neg x unit              (E)
        self.owed_v = 0  # customer liabilities at market  (E)
        self.reserves_v = 0  # held x unit x keep          (E + H)
        self.related_v = 0  # claims on affiliates         (E)
        self.due: dict[str, Account] = {}  # "due-from:X" / "due-to:X" -> Account
        self.external: Account | None = None
        self.equity: Account | None = None
        # Contributing ids: own-token, related-party and solvency check an entity after the
        # same events (every event that posts to it or reprices what it holds), so one list
        # serves the three; reserve-ratio only once it is a venue; withdrawals per venue.
        self.touch: deque[str] = deque(maxlen=KEPT)
        self.rr_touch: deque[str] = deque(maxlen=KEPT)
        self.wh_touch: deque[str] = deque(maxlen=KEPT)
        self.open: set[str] = set()  # invariants open for this entity as subject


class Line:
    """One (entity, asset): the reference's aggregates, in minor units."""

    __slots__ = (
        "asset",
        "custody",
        "entity",
        "held",
        "insured",
        "keep",
        "neg",
        "owed",
        "pledged",
        "pos",
        "related",
        "runoff",
        "rwa",
        "seg_open",
        "seg_touch",
    )

    def __init__(self, entity: Entity, asset: str) -> None:
        self.entity = entity
        self.asset = asset
        self.pos = self.neg = self.custody = self.owed = self.held = self.pledged = self.related = 0
        self.seg_touch: deque[str] = deque(maxlen=KEPT)
        self.seg_open = False
        self.keep = 0  # 1 - haircut for this owner (H), set by Machine._line
        self.insured = 0  # deposit-takers: the insured part of what depositors are owed (minor)
        self.runoff = 0  # deposit-takers: what they are owed x run-off rate (exponent H)
        self.rwa = 0  # banks: positive balances x risk weight (exponent H)


class Account:
    """One account. ``checked``: its class is held to no-unauthorised-negative."""

    __slots__ = (
        "bal",
        "basis",
        "book",
        "checked",
        "claim",
        "cls",
        "depositors",
        "entity",
        "holder",
        "limit",
        "name",
        "open",
        "rate",
        "ref",
        "related",
        "secured",
        "touch",
    )

    def __init__(self, entity: Entity, name: str, cls: int, related: bool = False) -> None:
        self.entity = entity
        self.name = name
        self.ref = f"{entity.name}:{name}"
        self.cls = cls
        self.related = related  # the counterparty is an affiliate (claims count as related)
        self.holder: Entity | None = None  # customer accounts
        self.claim: Account | None = None  # customer accounts: the holder's claim on it
        self.bal: dict[str, int] = {}
        self.touch: dict[str, deque[str]] = {}
        self.open: set[str] = set()  # assets open for no-unauthorised-negative
        self.limit: dict[str, int] | None = None  # customer accounts: credit line per asset
        self.checked = cls in (HOLDINGS, CUSTODY, CUSTOMER)
        self.secured: Loan | None = None  # customer accounts with collateral against them
        self.depositors = 1  # customer accounts: depositors a pooled account stands for
        self.rate = 0  # customer accounts at a deposit-taker: uninsured run-off rate (H)
        # Holdings at cost: "amortized_cost" or "available_for_sale" (None: at fair value), and
        # the book value per asset, a Decimal computed as the reference computes it (units
        # leave at their average book value, a 150-digit division: not an exact integer).
        self.basis: str | None = None
        self.book: dict[str, Decimal] = {}


class Loan:
    """A secured target: a loan (parties, outstanding principal), a customer account with
    collateral against it (``account`` set: its debt is what the holder owes the venue on it,
    in every asset), or a collateral pool (``members`` set: its debt is its loans'); the
    collateral pledged per asset; the break price."""

    __slots__ = (
        "account",
        "allowance",
        "asset",
        "borrower",
        "borrower_acct",
        "collateral",
        "complex",
        "cover",
        "health_open",
        "health_touch",
        "id",
        "impaired",
        "lender",
        "lender_acct",
        "members",
        "open",
        "outstanding",
        "pledged_acct",
        "pool",
        "thr",
        "threshold",
        "touch",
    )

    def __init__(
        self, loan: str, lender: Entity, borrower: Entity, asset: str, outstanding: int
    ) -> None:
        self.id = loan
        self.lender = lender
        self.borrower = borrower
        self.asset = asset
        self.outstanding = outstanding
        self.lender_acct: Account
        self.borrower_acct: Account
        self.account: Account | None = None  # a secured customer account (then no principal)
        self.impaired = 0  # the lender's loss allowance (minor units), <= outstanding
        self.pool: Loan | None = None  # a loan in a collateral pool: the pool's target
        self.members: list[Loan] | None = None  # a pool: the loans it secures
        # A liquidation threshold (loan-health): its text as the registry keeps it, and at H.
        self.threshold: str | None = None
        self.thr = 0
        self.health_open = False
        self.health_touch: deque[str] = deque(maxlen=KEPT)
        self.allowance: Account | None = None  # the lender's allowance account (contra-asset)
        self.pledged_acct: Account | None = None
        self.collateral: dict[str, int] | None = None  # None until the first pledge
        self.cover: tuple[str, Decimal] | None = None  # (asset, break price) when "simple"
        self.complex: tuple[str, ...] = ()
        self.touch: deque[str] = deque(maxlen=KEPT)
        self.open = False


#: The payload keys each covered event type may have (anything else: the reference).
_BASE = {"type", "v", "id", "at", "source", "note"}
_KEYS: dict[str, frozenset[str]] = {
    t: frozenset(_BASE | set(keys.split()))
    for t, keys in {
        "entity_registered": "entity name kind group",
        "asset_listed": "asset name scale kind issuer",
        "account_opened": "account purpose holder liability_class depositors basis",
        "deposit": "account asset amount landed owed_by from_account",
        "credit_line_granted": "account asset limit",
        "withdrawal": "account asset amount paid_from to",
        "transfer": "from_account to_account asset amount",
        "price_updated": "asset quote price",
        "loan_opened": (
            "loan lender borrower asset principal disbursed_from disbursed_to rate maturity pool "
            "liquidation_threshold"
        ),
        "loan_repaid": "loan amount paid_from paid_to",
        "collateral_pledged": "asset amount from_account loan account pool",
        "collateral_released": "asset amount to_account loan account pool",
        "collateral_seized": "asset amount to_account loan account pool credited credited_asset",
        "withdrawals_halted": "venue",
        "withdrawals_resumed": "venue",
        "margin_call": "loan pool amount due",
        "loan_impaired": "loan amount",
        "holding_impaired": "account asset book_price",
        "resolution": "entity authority method to_entity accounts",
        "deposit_insurance": "insurer venue asset limit",
        "insurer_payout": "insurer account asset amount paid_from to",
        "trade": "asset amount price pay_asset paid seller_from seller_to buyer_from buyer_to",
        "bankruptcy_filed": "entity court case",
        "disclosure": "entity title",
        "tokens_minted": "asset amount to_account",
        "loan_defaulted": "loan",
        "balance_asserted": "entity measure expected tolerance asset account quote bound loan",
    }.items()
}


class Machine:
    """Books and standard invariants for one replay; feed it payload dicts with :meth:`step`.

    ``violation(name, subject, data, seq, observed, threshold, detail, ids)`` builds the
    engine's violation record (``ledger.replay`` passes its own); ``enabled`` are the names of
    the standard invariants to check, in report order.
    """

    def __init__(self, policy: Policy, enabled: list[str], violation: Callable[..., Any]) -> None:
        self.policy = policy
        self.quote = policy.quote
        self._violation = violation
        self.rank = {name: i for i, name in enumerate(enabled)}
        on = set(enabled)
        self.on_neg = "no-unauthorised-negative" in on
        self.on_seg = "segregation" in on
        self.on_rr = "reserve-ratio" in on
        self.on_cc = "collateral-coverage" in on
        self.on_own = "own-token-concentration" in on
        self.on_rel = "related-party-exposure" in on
        self.on_wh = "withdrawals-honoured" in on
        self.on_solv = "solvency" in on
        self.on_assert = "assertions" in on
        self.on_lcr = "liquidity-coverage" in on
        self.on_health = "loan-health" in on
        self.on_cap = "capital-ratio" in on
        self.min_cap = _fixed(policy.min_capital_ratio, H)
        self.leverage = policy.capital_basis == "leverage"
        self.min_lcr = _fixed(policy.min_liquidity_coverage, H)
        self.rate_insured = _fixed(policy.run_off.get("insured", Decimal(0)), H)
        # Policy ratios as (int at exponent H): x >= y x r  <=>  x x 10^H >= y x r_H.
        self.min_rr = _fixed(policy.min_reserve_ratio, H)
        self.min_cc = _fixed(policy.min_collateral_coverage, H)
        self.max_own = _fixed(policy.max_own_token_share, H)
        self.max_rel = _fixed(policy.max_related_party_exposure, H)
        # -- the state ------------------------------------------------------------------------
        self.entities: dict[str, Entity] = {}
        self.assets: dict[str, tuple[int, str, str | None]] = {}  # asset -> (scale, kind, issuer)
        self.accounts: dict[str, Account] = {}  # "entity:name" -> Account (opened ones)
        self.loans: dict[str, Loan] = {}
        # Loans settled and emptied (nothing outstanding, no allowance, no collateral, no check
        # open), each as the few fields that make it again when an event names it (``_loan``),
        # so that the core's memory follows the live loans, not every loan ever made (W(10M)
        # opens ~250,000): (lender, borrower, asset, liquidation threshold, pledged to).
        self.retired: dict[str, tuple[Entity, Entity, str, str | None, bool]] = {}
        # Their entries, each kept once: most loans share parties, asset and terms, so a
        # retired loan costs its id and a dict slot (~100 bytes), not a tuple of its own.
        self._shapes: dict[tuple[Entity, Entity, str, str | None, bool], Any] = {}
        self.secured: dict[str, Loan] = {}  # "entity:account" / "pool:ID" -> its secured target
        self.pools: dict[str, Loan] = {}  # pool id -> its target (made by its first loan)
        # asset -> loans with a liquidation threshold whose debt or collateral is in it
        self.health_index: dict[str, set[Loan]] = {}
        self.unit: dict[str, int] = {}  # asset -> value of one minor unit (exponent E); 0 unpriced
        self.prices: dict[str, Decimal] = {}  # asset -> price in the quote (resolved)
        self.quotes: dict[str, tuple[str, Decimal]] = {}  # asset -> (quote, price): the latest
        self.dependents: dict[str, set[str]] = {}  # quote -> assets priced in it
        self.unpriced_why: dict[str, str] = {}  # asset -> why its chain does not resolve
        self.holders: dict[str, list[Entity]] = {}  # asset -> entities with a line in it
        self.cover_index: dict[str, list[tuple[Decimal, str]]] = {}  # asset -> sorted (k, loan)
        self.complex_loans: dict[str, set[str]] = {}  # asset -> loans rechecked on any move
        self._keeps: dict[tuple[str, str | None], int] = {}  # (asset, owner) -> keep (H)
        self._weights: dict[tuple[int, str], int] = {}  # (class, asset) -> risk weight (H)
        # A trade's buyer: the book value of the units about to arrive (the reference's).
        self._entry_cost: dict[tuple[Account, str], Decimal] = {}
        self._d: dict[str, Any] = {}  # the event being applied (a carry's notice names it)
        self._seq = 0
        self.halted: set[str] = set()
        self.failed: dict[str, str] = {}  # entity -> resolution method
        self.last_at: str | None = None
        self.last_seq = 0
        self.events = 0
        # -- the invariants' outcome (what the engine summarises) ------------------------------
        self.open: dict[tuple[str, str], Any] = {}
        self.first: dict[str, Any] = {}
        self.counts: dict[str, int] = dict.fromkeys(enabled, 0)
        self.assertions: list[dict[str, Any]] = []  # every balance_asserted comparison, in order
        self._assert_touch: dict[str, deque[str]] = {}  # assertion subject -> contributing ids
        # -- what a text summary gathers from the steps (ledger.report.Heard) ------------------
        self.subjects: dict[str, set[str]] = {}  # invariant -> subjects it opened for
        self.notices: list[tuple[int, str, str, str]] = []  # (seq, at, id, text): the first kept
        self.notice_count = 0
        self._credit: dict[tuple[Account, str], None] = {}  # credit-line accounts posted (_move)
        self._apply = {t: (getattr(self, "_apply_" + t), keys) for t, keys in _KEYS.items()}
        # Per event: what it touched (reset by step).
        self._opened: list[Any] = []
        self._born: Entity | None = None  # set by _move when an entity becomes a venue
        self._targets: dict[Loan, None] = {}  # secured accounts the event posted to (by _move)

    # -- the loop -----------------------------------------------------------------------------
    def step(self, data: dict[str, Any], seq: int) -> None:
        """Apply one event (its payload dict) and check what it touched."""
        entry = self._apply.get(data.get("type"))  # type: ignore[arg-type]
        if entry is None or not data.keys() <= entry[1] or data.get("v") != 1:
            raise Unsupported(f"event type {data.get('type')}")
        apply = entry[0]
        at = data["at"]
        self._d, self._seq = data, seq
        last = self.last_at
        if last is not None and at != last:
            if len(at) == _TIME_LEN == len(last):
                if at < last:  # the same fixed-width text: compares as the instants do
                    raise Unsupported("out of time order")
            elif ev.parse_instant(at) < ev.parse_instant(last):
                raise Unsupported("out of time order")
        apply(data, seq)
        self.last_at = at
        self.last_seq = seq
        self.events += 1
        if self._credit:
            self._credit_notices(data, seq)
        if self._opened:
            self._settle(seq)

    def _notice(self, d: dict[str, Any], seq: int, text: str) -> None:
        """A step's notice (what the books noted that is not a breach), as the engine words it."""
        self.notice_count += 1
        if len(self.notices) < NOTICES_KEPT:
            self.notices.append((seq, d["at"], d["id"], text))

    def _credit_notices(self, d: dict[str, Any], seq: int) -> None:
        """The engine's credit-line notices: each posted customer account drawing on its line
        (a negative holder balance in an asset with a line), sorted, after the event's others."""
        posted, self._credit = self._credit, {}
        found = []
        for acct, asset in posted:
            limit = acct.limit.get(asset, 0) if acct.limit else 0
            raw = acct.bal.get(asset, 0)
            if limit and raw > 0:  # the holder's balance is -raw
                found.append(
                    f"{acct.ref} is drawing on its credit line: {self._fmt(-raw, asset)} {asset} "
                    f"of -{self._fmt(limit, asset)} allowed"
                )
        for text in sorted(found):
            self._notice(d, seq, text)

    def _settle(self, seq: int) -> None:
        """Record the violations this event opened, in report order (invariant, subject)."""
        opened, self._opened = self._opened, []
        rank = self.rank
        opened.sort(key=lambda v: (rank[v.invariant], v.subject))
        for v in opened:
            self.open[(v.invariant, v.subject)] = v
            self.counts[v.invariant] += 1
            self.first.setdefault(v.invariant, v)
            self.subjects.setdefault(v.invariant, set()).add(v.subject)

    # -- helpers: records on first sight ------------------------------------------------------
    def _entity(self, name: Any) -> Entity:
        found = self.entities.get(name)
        if found is None:
            raise Unsupported(f"unknown entity {name!r}")
        return found

    def _account(self, ref: Any, *purposes: int) -> Account:
        found = self.accounts.get(ref)
        if found is None or found.cls not in purposes:
            raise Unsupported(f"account {ref!r}")
        return found

    def _scale(self, asset: Any) -> int:
        info = self.assets.get(asset)
        if info is None:
            raise Unsupported(f"unknown asset {asset!r}")
        return info[0]

    def _affiliated(self, a: Entity, b: Entity) -> bool:
        return a is b or (a.group is not None and a.group == b.group)

    def _line(self, entity: Entity, asset: str) -> Line:
        """``entity``'s line in ``asset``, created (and noted as held) on first sight."""
        line = entity.lines.get(asset)
        if line is None:
            line = entity.lines[asset] = Line(entity, asset)
            line.keep = self._keep(asset, entity)
            self.holders.setdefault(asset, []).append(entity)
            issuer = self.assets[asset][2]
            if issuer is not None and self._affiliated(entity, self.entities[issuer]):
                entity.own.append(line)
        return line

    def _keep(self, asset: str, owner: Entity | None) -> int:
        """1 - haircut of ``asset`` at exponent H: as a liquid reserve of ``owner`` (its own or
        an affiliate's token counts as ``affiliate_token``), or with ``owner`` None as pledged
        collateral (the policy's ``collateral_haircuts`` where listed, as the reference's
        ``collateral_haircut``: a bond or a loan book is pledgeable though not liquid)."""
        key = (asset, None if owner is None else owner.name)
        keep = self._keeps.get(key)
        if keep is None:
            _, kind, issuer = self.assets[asset]
            own = (
                owner is not None
                and issuer is not None
                and self._affiliated(owner, self.entities[issuer])
            )
            if owner is None:
                cut = self.policy.collateral_haircut(kind)
            else:
                cut = self.policy.haircut("affiliate_token" if own else kind)
            keep = self._keeps[key] = _fixed(SUM_CONTEXT.subtract(1, cut), H)
        return keep

    def _implicit(
        self, entity: Entity, name: str, cls: int, other: Entity | None = None
    ) -> Account:
        related = other is not None and other is not entity and self._affiliated(entity, other)
        return Account(entity, name, cls, related)

    # -- postings -----------------------------------------------------------------------------
    def _post(
        self,
        acct: Account,
        asset: str,
        delta: int,
        touched: dict[Entity, None],
        checked: list[Any],
        seg: dict[Line, None],
    ) -> None:
        """:meth:`_move`, noting what the checks must see (the general applies use it; the
        hot ones call ``_move`` and name their subjects themselves)."""
        touched[acct.entity] = None
        line = self._move(acct, asset, delta)
        if line is None:
            return
        cls = acct.cls
        if cls == CUSTOMER or cls == CUSTODY:
            seg[line] = None
            born = self._born
            if born is not None:
                # A new venue: its custody in every asset is now held to segregation.
                self._born = None
                for other in born.lines.values():
                    seg[other] = None
        if acct.checked:
            checked.append((acct, asset))

    def _move(self, acct: Account, asset: str, delta: int) -> Line | None:
        """Move ``acct``'s balance in ``asset`` by ``delta`` and every aggregate with it: the
        reference's ``_post`` + ``_aggregate``, with ints. Returns the (entity, asset) line (None
        off the balance sheet); sets ``_born`` when the entity becomes a venue."""
        bal = acct.bal
        old = bal.get(asset, 0)
        new = old + delta
        if new:
            bal[asset] = new
        else:
            del bal[asset]
        cls = acct.cls
        if cls == EQUITY or cls == EXTERNAL:
            return None  # off the balance sheet: no aggregate, no check
        entity = acct.entity
        line = entity.lines.get(asset) or self._line(entity, asset)
        unit = self.unit[asset]
        if cls == ALLOWANCE:
            # A contra-asset (<= 0): it lowers the lender's assets, it is not a liability.
            line.pos += delta
            entity.assets_v += delta * unit
            if entity.bank:  # the reference weighs an allowance's every move (it is <= 0)
                self._weigh(line, cls, delta, unit)
            return line
        old_pos = old if old > 0 else 0
        new_pos = new if new > 0 else 0
        dpos = new_pos - old_pos
        dneg = dpos - delta  # max(-balance, 0) moved by this much
        if dpos:
            line.pos += dpos
            entity.assets_v += dpos * unit
            if acct.related:
                line.related += dpos
                entity.related_v += dpos * unit
            if entity.bank:
                self._weigh(line, cls, dpos, unit)
        if dneg:
            line.neg += dneg
            entity.liabs_v += dneg * unit
        if cls == CUSTOMER:
            if dneg:
                line.owed += dneg
                entity.owed_v += dneg * unit
                if entity.deposit_taker:
                    owed = -old if old < 0 else 0
                    self._move_deposit(acct, line, owed, owed + dneg)
            if acct.secured is not None:  # its debt moved: collateral-coverage looks again
                self._targets[acct.secured] = None
            if acct.limit is not None:  # a credit line: the step may note a draw on it
                self._credit[(acct, asset)] = None
            if not entity.venue:
                entity.venue = True
                self._born = entity
        elif cls == HOLDINGS or cls == CUSTODY:
            before = line.held
            after = line.held = before + delta
            if cls == CUSTODY:
                line.custody += delta
            moved = (after if after > 0 else 0) - (before if before > 0 else 0)
            if moved:
                entity.reserves_v += moved * unit * line.keep
            if acct.basis is not None:
                self._carry(acct, asset, old, new)
        elif cls == PLEDGED:
            line.pledged += delta
        return line

    def _carry(self, acct: Account, asset: str, old: int, new: int) -> None:
        """A holding at cost went from ``old`` to ``new`` units: its book value moves (the
        reference's ``_carry``, with its Decimal operations, so the figures are its own)."""
        book = acct.book
        before = book.get(asset, ZERO)
        if new > old:
            cost = self._entry_cost.pop((acct, asset), None)
            if cost is None:
                if asset != self.quote and asset not in self.prices:
                    cost = ZERO
                    self._notice(
                        self._d,
                        self._seq,
                        f"{acct.ref} took in {asset} with no price: its book value starts at 0",
                    )
                else:
                    cost = SUM_CONTEXT.multiply(new - old, self._unit_price(asset))
            after = SUM_CONTEXT.add(before, cost)
        elif new <= 0 or old <= 0:
            after = ZERO
        else:
            after = VALUE_CONTEXT.divide(VALUE_CONTEXT.multiply(before, new), old)
        if new > 0 or after:
            book[asset] = after
            acct.entity.cost[(acct, asset)] = None
        else:
            book.pop(asset, None)
            acct.entity.cost.pop((acct, asset), None)

    def _unit_price(self, asset: str) -> Decimal:
        """The value of one minor unit of a priced asset, as a Decimal (exact)."""
        return _dec(self.unit[asset], E)

    def _worth(self, minor: int, asset: str) -> Decimal:
        """The reference's ``value``: exact market value of ``minor`` units, 0 if unpriced."""
        if minor == 0 or (asset != self.quote and asset not in self.prices):
            return Decimal(0)
        return _dec(minor * self.unit[asset], E)

    def _cost_gap(self, entity: Entity, basis: str | None = None) -> Decimal:
        """The reference's ``_cost_gap``: over ``entity``'s holdings at cost (of ``basis``, or
        all), book value - market value, summed in its order with its operations."""
        total = ZERO
        for acct, asset in sorted(entity.cost, key=lambda k: (k[0].name, k[1])):
            if basis is not None and acct.basis != basis:
                continue
            market = self._worth(max(acct.bal.get(asset, 0), 0), asset)
            total = VALUE_CONTEXT.add(
                total, VALUE_CONTEXT.subtract(acct.book.get(asset, ZERO), market)
            )
        return total

    def _book(self, entity: Entity) -> tuple[Decimal, Decimal, Decimal]:
        """(equity at book, total assets at book, risk-weighted assets) as the reference's
        ``equity_book``, ``total_assets_book`` and ``risk_weighted_assets`` give them."""
        assets = _dec(entity.assets_v, E)
        equity = VALUE_CONTEXT.subtract(assets, _dec(entity.liabs_v, E))
        rwa = _dec(entity.rwa_v, E + H)
        if not entity.cost:
            return equity, assets, rwa
        gap = self._cost_gap(entity, "amortized_cost")
        for acct, asset in sorted(entity.cost, key=lambda k: (k[0].name, k[1])):
            if acct.basis == "amortized_cost":
                one = VALUE_CONTEXT.subtract(
                    acct.book.get(asset, ZERO),
                    self._worth(max(acct.bal.get(asset, 0), 0), asset),
                )
                weight = self.policy.risk_weight(self.assets[asset][1])
                rwa = VALUE_CONTEXT.add(rwa, VALUE_CONTEXT.multiply(one, weight))
        return VALUE_CONTEXT.add(equity, gap), VALUE_CONTEXT.add(assets, gap), rwa

    def _weigh(self, line: Line, cls: int, minor: int, unit: int) -> None:
        """A bank's risk-weighted assets move with a positive balance (the reference's
        ``_weigh``): the weight of a loan, an allowance or a customer's debit balance is
        ``loan_receivable``'s, a claim's or a due-from/to's ``claim``'s, else the asset kind's."""
        asset = line.asset
        weight = self._weights.get((cls, asset))
        if weight is None:
            if cls == LOAN or cls == ALLOWANCE or cls == CUSTOMER:
                name = "loan_receivable"
            elif cls == CLAIM or cls == DUE:
                name = "claim"
            else:
                name = self.assets[asset][1]
            weight = self._weights[(cls, asset)] = _fixed(self.policy.risk_weight(name), H)
        if weight:
            line.rwa += minor * weight
            line.entity.rwa_v += minor * weight * unit

    def _deposit_parts(self, acct: Account, asset: str, owed: int) -> tuple[int, int]:
        """(insured minor units, run-off-weighted minor units at H) of a deposit owing ``owed``:
        the cover per depositor x depositors, the insured and uninsured run-off rates."""
        if owed <= 0:
            return 0, 0
        limit = acct.entity.cover.get(asset)
        insured = min(owed, limit * acct.depositors) if limit else 0
        return insured, insured * self.rate_insured + (owed - insured) * acct.rate

    def _move_deposit(self, acct: Account, line: Line, old: int, new: int) -> None:
        """A deposit at a deposit-taker went from owing ``old`` to ``new``: its parts move."""
        old_insured, old_weighted = self._deposit_parts(acct, line.asset, old)
        new_insured, new_weighted = self._deposit_parts(acct, line.asset, new)
        entity, unit = line.entity, self.unit[line.asset]
        line.insured += new_insured - old_insured
        line.runoff += new_weighted - old_weighted
        entity.insured_v += (new_insured - old_insured) * unit
        entity.runoff_v += (new_weighted - old_weighted) * unit

    def _out(
        self,
        acct: Account,
        asset: str,
        minor: int,
        t: dict[Entity, None],
        c: list[Any],
        s: dict[Line, None],
    ) -> Entity:
        """Take ``minor`` out of an opened account (a customer account: the holder's claim too);
        return the entity whose value left (the reference's ``_move_out``)."""
        if acct.cls == CUSTOMER:
            self._post(acct, asset, minor, t, c, s)
            claim = acct.claim
            assert claim is not None
            self._post(claim, asset, -minor, t, c, s)
            return claim.entity
        self._post(acct, asset, -minor, t, c, s)
        return acct.entity

    def _in(
        self,
        acct: Account,
        asset: str,
        minor: int,
        t: dict[Entity, None],
        c: list[Any],
        s: dict[Line, None],
    ) -> Entity:
        if acct.cls == CUSTOMER:
            self._post(acct, asset, -minor, t, c, s)
            claim = acct.claim
            assert claim is not None
            self._post(claim, asset, minor, t, c, s)
            return claim.entity
        self._post(acct, asset, minor, t, c, s)
        return acct.entity

    # -- one apply per event type -------------------------------------------------------------
    def _apply_entity_registered(self, d: dict[str, Any], seq: int) -> None:
        name, kind = d["entity"], d["kind"]
        if name in self.entities or kind not in _kinds.FAMILY:
            raise Unsupported("entity")
        self.entities[name] = Entity(name, kind, d.get("group"))

    def _apply_asset_listed(self, d: dict[str, Any], seq: int) -> None:
        asset, scale, issuer = d["asset"], d["scale"], d.get("issuer")
        if asset in self.assets or type(scale) is not int or not 0 <= scale <= 18:
            raise Unsupported("asset")
        if issuer is not None:
            self._entity(issuer)
        self.assets[asset] = (scale, d["kind"], issuer)
        # The quote is worth 1 of itself; anything else is unpriced (worth 0) until priced.
        self.unit[asset] = 10 ** (E - scale) if asset == self.quote else 0

    def _apply_account_opened(self, d: dict[str, Any], seq: int) -> None:
        ref, purpose, holder_name = d["account"], d["purpose"], d.get("holder")
        if type(ref) is not str or ref in self.accounts:
            raise Unsupported("account")
        entity_name, _, name = ref.partition(":")
        entity = self._entity(entity_name)
        if (
            not name
            or name in ("equity", "external")
            or name.partition(":")[0]
            in ("claim", "due-from", "due-to", "loan", "pledged", "allowance")
        ):
            raise Unsupported("a reserved account name")
        if purpose not in ("corporate", "customer-custody") and "basis" in d:
            raise Unsupported("basis")  # the registry's refusal, worded by the reference
        if purpose == "customer":
            holder = self._entity(holder_name)
            if holder is entity:
                raise Unsupported("holder")
            # A customer account's debit balance (the holder owes the venue) is a claim on an
            # affiliate when the holder is one (the reference's ``related`` flag).
            acct = Account(entity, name, CUSTOMER, self._affiliated(entity, holder))
            acct.holder = holder
            acct.depositors = d.get("depositors") or 1
            acct.rate = _fixed(self.policy.run_off_rate(d.get("liability_class")), H)
            entity.customers.append(acct)
            claim = acct.claim = self._implicit(holder, f"claim:{ref}", CLAIM, entity)
            claim.checked = False
        elif holder_name is not None or "liability_class" in d or "depositors" in d:
            raise Unsupported("holder")
        elif purpose == "customer-custody":
            acct = Account(entity, name, CUSTODY)
        elif purpose == "corporate":
            acct = Account(entity, name, HOLDINGS)
        elif purpose == "external":
            acct = Account(entity, name, EXTERNAL)
        else:
            raise Unsupported("purpose")
        basis = d.get("basis")
        if basis is not None and basis != "fair_value":
            if basis not in ("amortized_cost", "available_for_sale"):
                raise Unsupported("basis")
            acct.basis = basis
        self.accounts[ref] = acct

    def _external(self, entity: Entity) -> Account:
        if entity.external is None:
            entity.external = Account(entity, "external", EXTERNAL)
        return entity.external

    def _equity(self, entity: Entity) -> Account:
        if entity.equity is None:
            entity.equity = Account(entity, "equity", EQUITY)
        return entity.equity

    def _apply_deposit(self, d: dict[str, Any], seq: int) -> None:
        acct = self._account(d["account"], CUSTOMER)
        landed = self._account(d["landed"], CUSTODY, HOLDINGS)
        venue, there = acct.entity, landed.entity
        owed_by = None
        if "owed_by" in d:
            # The venue books the landed entity's debt on that entity's account with it.
            owed_by = self._account(d["owed_by"], CUSTOMER)
            if there is venue or owed_by.entity is not venue or owed_by.holder is not there:
                raise Unsupported("owed_by")
        source = None
        if "from_account" in d:
            # From one of the holder's own accounts (else from outside the model).
            source = self._account(d["from_account"], HOLDINGS, CUSTODY, EXTERNAL)
            if source.entity is not acct.holder:
                raise Unsupported("from_account: not the holder's (the registry refuses it)")
        asset = d["asset"]
        minor = _minor(d["amount"], self._scale(asset))
        if there is venue and source is None:
            # The hot path: money landing at the venue. Its four legs, then its subjects named
            # here instead of collected: both accounts, the venue's line in the asset, the
            # venue and the holder.
            claim = acct.claim
            assert claim is not None
            holder = claim.entity
            move = self._move
            line = move(acct, asset, -minor)
            move(claim, asset, minor)
            # (The holder's "external" leg is not posted: an off-sheet balance nothing reads.)
            move(landed, asset, minor)
            self._customer_checks(d, seq, acct, landed, asset, line, venue, holder, holder)
            return
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        # The reference's postings: the customer account and the holder's claim on it, the
        # money from outside the model, the money landing (at the venue, or elsewhere: then
        # owed to the venue on an account, or as due-from / due-to between the two).
        holder = self._in(acct, asset, minor, t, c, s)
        if source is not None:
            self._out(source, asset, minor, t, c, s)
        else:
            self._post(self._external(holder), asset, -minor, t, c, s)
        self._post(landed, asset, minor, t, c, s)
        if there is not venue:
            landed_at = f"{ev.format_decimal(Decimal(d['amount']))} {asset} of customer money landed at {d['landed']}"
            if owed_by is not None:
                self._out(owed_by, asset, minor, t, c, s)
                self._notice(d, seq, f"{landed_at}, not with {venue.name}; owed on {d['owed_by']}")
            else:
                self._post(self._due(venue, "due-from", there), asset, minor, t, c, s)
                self._post(self._due(there, "due-to", venue), asset, -minor, t, c, s)
                self._notice(d, seq, landed_at)
        self._check(d, seq, t, c, s, ())

    def _due(self, entity: Entity, prefix: str, other: Entity) -> Account:
        name = f"{prefix}:{other.name}"
        acct = entity.due.get(name)
        if acct is None:
            acct = entity.due[name] = self._implicit(entity, name, DUE, other)
            acct.checked = False
        return acct

    def _apply_credit_line_granted(self, d: dict[str, Any], seq: int) -> None:
        acct = self._account(d["account"], CUSTOMER)
        asset = d["asset"]
        limit = _minor(d["limit"], self._scale(asset), zero=True)
        if acct.limit is None:
            acct.limit = {}
        acct.limit[asset] = limit
        # The reference looks at the account again (a new line may close or open a breach).
        self._check(d, seq, {}, [(acct, asset)], {}, ())

    def _apply_withdrawal(self, d: dict[str, Any], seq: int) -> None:
        acct = self._account(d["account"], CUSTOMER)
        paid = self._account(d["paid_from"], CUSTODY, HOLDINGS)
        venue = acct.entity
        if paid.entity is not venue:
            raise Unsupported("paid_from")
        to = None
        if "to" in d:
            # Paid into one of the holder's own accounts (else it leaves the model).
            to = self._account(d["to"], HOLDINGS, CUSTODY, EXTERNAL)
            assert acct.holder is not None
            if to.entity is not acct.holder:
                raise Unsupported("to: not the holder's (the registry refuses it)")
        asset = d["asset"]
        minor = _minor(d["amount"], self._scale(asset))
        if venue.name in self.halted:
            self._refused(d, seq, venue, f"{venue.name} has halted withdrawals")
            return
        available = paid.bal.get(asset, 0)
        if available < minor:
            amount = Decimal(d["amount"])
            self._refused(
                d,
                seq,
                venue,
                f"{d['paid_from']} holds {self._fmt(available, asset)} {asset}, cannot pay {amount:,f}",
            )
            return
        if to is None:
            # The legs (the reference's _move_out of the customer account, the venue paying,
            # the money leaving the model), then the same subjects as a deposit's.
            claim = acct.claim
            assert claim is not None
            holder = claim.entity
            move = self._move
            line = move(acct, asset, minor)
            move(claim, asset, -minor)
            move(paid, asset, -minor)  # (and the off-sheet "external" leg, not posted: unread)
            self._customer_checks(d, seq, acct, paid, asset, line, venue, holder, holder)
        else:
            t: dict[Entity, None] = {}
            c: list[Any] = []
            s: dict[Line, None] = {}
            self._out(acct, asset, minor, t, c, s)
            self._post(paid, asset, -minor, t, c, s)
            self._in(to, asset, minor, t, c, s)
            self._check(d, seq, t, c, s, ())
        if self.on_wh:
            ids = venue.wh_touch
            ids.append(d["id"])
            if "withdrawals-honoured" in venue.open:
                self._close("withdrawals-honoured", venue.name, venue.open)

    def _refused(self, d: dict[str, Any], seq: int, venue: Entity, reason: str) -> None:
        """A withdrawal not paid: nothing posts; noted; withdrawals-honoured opens for the venue."""
        self._notice(d, seq, f"withdrawal not paid: {reason}")
        if not self.on_wh:
            return
        ids = venue.wh_touch
        ids.append(d["id"])
        if "withdrawals-honoured" not in venue.open:
            amount = Decimal(d["amount"])
            asset = d["asset"]
            self._breach(
                "withdrawals-honoured",
                venue.name,
                venue.open,
                d,
                seq,
                f"{ev.format_decimal(amount)} {asset} not paid",
                "paid on request",
                f"a withdrawal of {amount:,f} {asset} from {d['account']} was not paid: {reason}",
                ids,
            )

    def _apply_transfer(self, d: dict[str, Any], seq: int) -> None:
        src = self.accounts.get(d["from_account"])
        dst = self.accounts.get(d["to_account"])
        if src is None or dst is None or (src.cls == CUSTOMER) != (dst.cls == CUSTOMER):
            raise Unsupported("transfer accounts")
        if src.cls == CUSTOMER and src.entity is not dst.entity:
            raise Unsupported("transfer across venues")
        asset = d["asset"]
        minor = _minor(d["amount"], self._scale(asset))
        if src.cls == CUSTOMER:
            # The hot path: a book transfer between two customers of one venue (the holders'
            # claims move with the accounts; equity legs when the holders differ).
            src_claim, dst_claim = src.claim, dst.claim
            assert src_claim is not None and dst_claim is not None
            giver, taker = src_claim.entity, dst_claim.entity
            move = self._move
            move(src, asset, minor)
            move(src_claim, asset, -minor)
            line = move(dst, asset, -minor)
            move(dst_claim, asset, minor)
            # (Holders that differ also post equity legs: off the balance sheet, unread here.)
            self._customer_checks(d, seq, src, dst, asset, line, src.entity, giver, taker)
            return
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        giver = self._out(src, asset, minor, t, c, s)
        taker = self._in(dst, asset, minor, t, c, s)
        if giver is not taker:
            self._post(self._equity(giver), asset, minor, t, c, s)
            self._post(self._equity(taker), asset, -minor, t, c, s)
        self._check(d, seq, t, c, s, ())

    def _apply_price_updated(self, d: dict[str, Any], seq: int) -> None:
        """A price, in the quote or in another asset (chained to the quote through that
        asset's own price): the reference's resolution of the asset and of every asset priced
        through it, breadth first in name order, each re-valued where its price changed."""
        asset, quote = d["asset"], d["quote"]
        self._scale(asset)
        self._scale(quote)
        if asset == self.quote:
            return  # the quote is worth 1 of itself: nothing moves, nothing is checked
        price = Decimal(d["price"])
        if not price.is_finite() or price <= 0:
            raise Unsupported("price")
        old = self.quotes.get(asset)
        if old is not None and old[0] != quote:
            self.dependents[old[0]].discard(asset)
        self.dependents.setdefault(quote, set()).add(asset)
        self.quotes[asset] = (quote, price)
        dependents = self.dependents.get(asset)
        if quote == self.quote and not dependents and asset not in self.unpriced_why:
            # The hot path: a price in the quote that nothing else is priced through.
            before = self.prices.get(asset)
            self._set_price(asset, price)
            self._check(
                d, seq, dict.fromkeys(self.holders.get(asset, ())), [], {}, ((asset, before),)
            )
            return
        order, seen = [asset], {asset}
        for current in order:
            for dependent in sorted(self.dependents.get(current, ())):
                if dependent not in seen:
                    seen.add(dependent)
                    order.append(dependent)
        repriced: list[tuple[str, Decimal | None]] = []
        for current in order:
            before = self.prices.get(current)
            after, why = self._resolve(current)
            if why != self.unpriced_why.get(current):
                if why is None:
                    del self.unpriced_why[current]
                else:
                    self.unpriced_why[current] = why
                    self._notice(d, seq, f"{current} is unpriced: {why}")
            if after != before or current == asset:
                self._set_price(current, after)
                repriced.append((current, before))
        touched: dict[Entity, None] = {}
        for current, _ in repriced:
            touched.update(dict.fromkeys(self.holders.get(current, ())))
        self._check(d, seq, touched, [], {}, repriced)

    def _resolve(self, asset: str) -> tuple[Decimal | None, str | None]:
        """The price of ``asset`` in the quote through its chain of quotes, or why there is none
        (the reference's words)."""
        chain = [asset]
        price = Decimal(1)
        current = asset
        while True:
            link = self.quotes.get(current)
            if link is None:
                return None, f"no price of {current} in {self.quote} (chain {' -> '.join(chain)})"
            quote, local = link
            price = VALUE_CONTEXT.multiply(price, local)
            if quote == self.quote:
                return price, None
            if quote in chain:
                return None, f"its prices form a cycle ({' -> '.join([*chain, quote])})"
            chain.append(quote)
            current = quote

    def _set_price(self, asset: str, price: Decimal | None) -> None:
        """Set (None: forget) ``asset``'s price in the quote; move every holder's values by the
        change of one minor unit's value."""
        unit = _fixed(price, E - self.assets[asset][0]) if price is not None else 0  # exponent E
        step = unit - self.unit[asset]
        if price is None:
            self.prices.pop(asset, None)
        else:
            self.prices[asset] = price
        self.unit[asset] = unit
        if not step:
            return
        for entity in self.holders.get(asset, ()):
            line = entity.lines[asset]
            if line.owed:
                entity.owed_v += line.owed * step
            if line.held > 0:
                entity.reserves_v += line.held * step * line.keep
            if line.related:
                entity.related_v += line.related * step
            if line.pos:
                entity.assets_v += line.pos * step
            if line.neg:
                entity.liabs_v += line.neg * step
            if line.insured:
                entity.insured_v += line.insured * step
            if line.runoff:
                entity.runoff_v += line.runoff * step
            if line.rwa:
                entity.rwa_v += line.rwa * step

    def _apply_loan_opened(self, d: dict[str, Any], seq: int) -> None:
        loan_id = d["loan"]
        if loan_id in self.loans or loan_id in self.retired:
            raise Unsupported("loan")
        lender, borrower = self._entity(d["lender"]), self._entity(d["borrower"])
        src = self._account(d["disbursed_from"], HOLDINGS, CUSTODY)
        dst = self._account(d["disbursed_to"], HOLDINGS, CUSTODY)
        if src.entity is not lender or dst.entity is not borrower:
            raise Unsupported("loan accounts")
        asset = d["asset"]
        minor = _minor(d["principal"], self._scale(asset))
        loan = Loan(loan_id, lender, borrower, asset, minor)
        loan.lender_acct = self._implicit(lender, f"loan:{loan_id}", LOAN, borrower)
        loan.borrower_acct = self._implicit(borrower, f"loan:{loan_id}", LOAN, lender)
        if "pool" in d:
            # A collateral pool shared by a lender's loans to one borrower (made by its first).
            pool = self.pools.get(d["pool"])
            if pool is None:
                pool = self.pools[d["pool"]] = Loan(f"pool:{d['pool']}", lender, borrower, "", 0)
                pool.members = []
                self.secured[pool.id] = pool
            elif pool.lender is not lender or pool.borrower is not borrower:
                raise Unsupported("pool parties (the registry refuses it)")
            assert pool.members is not None
            pool.members.append(loan)
            loan.pool = pool
        if "liquidation_threshold" in d:
            threshold = Decimal(d["liquidation_threshold"])
            loan.threshold = ev.format_decimal(threshold)
            loan.thr = _fixed(threshold, H)
        self.loans[loan_id] = loan
        # The health index (the reference's): a pool's threshold loans under every asset of
        # the pool (its loans' and its collateral's); a loan alone under its own asset.
        if loan.pool is not None:
            pool = loan.pool
            assert pool.members is not None
            pool_assets = {m.asset for m in pool.members} | set(pool.collateral or {})
            for member in self._health_loans(pool):
                for pool_asset in pool_assets:
                    self.health_index.setdefault(pool_asset, set()).add(member)
        elif loan.threshold is not None:
            self.health_index.setdefault(asset, set()).add(loan)
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        self._out(src, asset, minor, t, c, s)
        self._post(loan.lender_acct, asset, minor, t, c, s)
        self._in(dst, asset, minor, t, c, s)
        self._post(loan.borrower_acct, asset, -minor, t, c, s)
        self._check(d, seq, t, c, s, (), loan)

    def _loan(self, d: dict[str, Any]) -> Loan:
        loan = self.loans.get(d["loan"])
        if loan is None:
            entry = self.retired.pop(d["loan"], None)
            if entry is None:
                raise Unsupported("loan")  # unknown: the registry refuses it
            # A settled loan named again (a pledge, a call, an assertion): made again as it
            # was when it settled (see ``_retire``).
            lender, borrower, asset, threshold, pledged = entry
            loan = self.loans[d["loan"]] = Loan(d["loan"], lender, borrower, asset, 0)
            loan.lender_acct = self._implicit(lender, f"loan:{loan.id}", LOAN, borrower)
            loan.borrower_acct = self._implicit(borrower, f"loan:{loan.id}", LOAN, lender)
            if threshold is not None:
                loan.threshold = threshold
                loan.thr = _fixed(Decimal(threshold), H)
                self.health_index.setdefault(asset, set()).add(loan)
            if pledged:
                loan.collateral = {}
        return loan

    def _apply_loan_repaid(self, d: dict[str, Any], seq: int) -> None:
        loan = self._loan(d)
        src = self._account(d["paid_from"], HOLDINGS, CUSTODY)
        dst = self._account(d["paid_to"], HOLDINGS, CUSTODY)
        if src.entity is not loan.borrower or dst.entity is not loan.lender:
            raise Unsupported("repayment accounts")
        asset = loan.asset
        minor = _minor(d["amount"], self._scale(asset))
        if minor > loan.outstanding:
            raise Unsupported("repays more than outstanding")
        loan.outstanding -= minor
        loan.impaired = min(loan.impaired, loan.outstanding)  # the registry's cap
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        self._out(src, asset, minor, t, c, s)
        self._post(loan.borrower_acct, asset, minor, t, c, s)
        self._post(loan.lender_acct, asset, -minor, t, c, s)
        self._in(dst, asset, minor, t, c, s)
        self._release_allowance(loan, d, seq, t, c, s)
        self._check(d, seq, t, c, s, (), loan)

    def _apply_loan_impaired(self, d: dict[str, Any], seq: int) -> None:
        """A loss allowance on a loan: the lender's assets fall by it (a contra-asset), its
        equity with them; the borrower still owes the whole debt."""
        loan = self._loan(d)
        asset = loan.asset
        minor = _minor(d["amount"], self._scale(asset))
        if loan.impaired + minor > loan.outstanding:
            raise Unsupported("an allowance above what is outstanding (the registry refuses it)")
        loan.impaired += minor
        if loan.allowance is None:
            loan.allowance = self._implicit(loan.lender, f"allowance:{loan.id}", ALLOWANCE)
            loan.allowance.checked = False
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        self._post(loan.allowance, asset, -minor, t, c, s)
        self._post(self._equity(loan.lender), asset, minor, t, c, s)
        self._check(d, seq, t, c, s, (), loan)

    def _release_allowance(
        self,
        loan: Loan,
        d: dict[str, Any],
        seq: int,
        t: dict[Entity, None],
        c: list[Any],
        s: dict[Line, None],
    ) -> None:
        """The part of a loss allowance above what is now outstanding is released: a recovery
        (the reference's, with its notice)."""
        acct = loan.allowance
        if acct is None:
            return
        asset = loan.asset
        excess = -acct.bal.get(asset, 0) - loan.impaired
        if excess > 0:
            self._post(acct, asset, excess, t, c, s)
            self._post(self._equity(loan.lender), asset, -excess, t, c, s)
            self._notice(
                d,
                seq,
                f"loan {loan.id}: {self._fmt(excess, asset)} {asset} of its loss allowance "
                "released (paid down below it)",
            )

    def _target(self, d: dict[str, Any]) -> Loan:
        """The secured target an event names: a loan, a pool, or a customer account (a record
        made on first sight, registered at its first pledge)."""
        if ("loan" in d) + ("account" in d) + ("pool" in d) != 1:
            raise Unsupported("not exactly one of a loan, an account, a pool")
        if "loan" in d:
            return self._loan(d)
        if "pool" in d:
            pool = self.pools.get(d["pool"])
            if pool is None:
                raise Unsupported("unknown pool (the registry refuses it)")
            return pool
        ref = d["account"]
        target = self.secured.get(ref)
        if target is None:
            acct = self._account(ref, CUSTOMER)
            assert acct.holder is not None
            target = Loan(ref, acct.entity, acct.holder, "", 0)
            target.account = acct
        return target

    def _apply_collateral_pledged(self, d: dict[str, Any], seq: int) -> None:
        loan = self._target(d)
        src = self._account(d["from_account"], HOLDINGS, CUSTODY)
        if src.entity is not loan.borrower:
            raise Unsupported("pledgor")
        asset = d["asset"]
        minor = _minor(d["amount"], self._scale(asset))
        if loan.pledged_acct is None:
            loan.pledged_acct = self._implicit(loan.borrower, f"pledged:{loan.id}", PLEDGED)
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        self._out(src, asset, minor, t, c, s)
        self._post(loan.pledged_acct, asset, minor, t, c, s)
        held = loan.collateral
        if held is None:
            held = loan.collateral = {}
            if loan.account is not None:
                self.secured[loan.id] = loan.account.secured = loan
        held[asset] = held.get(asset, 0) + minor
        for member in self._health_loans(loan):
            self.health_index.setdefault(asset, set()).add(member)
        self._check(d, seq, t, c, s, (), loan)

    def _apply_collateral_released(self, d: dict[str, Any], seq: int) -> None:
        loan = self._target(d)
        dst = self._account(d["to_account"], HOLDINGS, CUSTODY)
        if dst.entity is not loan.borrower:
            raise Unsupported("to_account")
        asset = d["asset"]
        minor = _minor(d["amount"], self._scale(asset))
        held = loan.collateral
        if held is None or held.get(asset, 0) < minor or loan.pledged_acct is None:
            raise Unsupported("releases more than pledged")
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        self._post(loan.pledged_acct, asset, -minor, t, c, s)
        held[asset] -= minor  # a zero entry stays: the loan is still "secured" (the reference)
        self._in(dst, asset, minor, t, c, s)
        self._check(d, seq, t, c, s, (), loan)

    def _apply_collateral_seized(self, d: dict[str, Any], seq: int) -> None:
        """The secured party takes pledged collateral (equity legs for the value that changed
        hands) and, with ``credited``, settles that much of the debt: a loan's principal, or
        the secured account's balance in ``credited_asset`` (the reference's postings)."""
        event = ev.from_dict(d)
        assert isinstance(event, ev.CollateralSeized)
        loan = self._target(d)
        dst = self._account(d["to_account"], HOLDINGS, CUSTODY)
        if dst.entity is not loan.lender:  # the secured party: the lender, or the venue
            raise Unsupported("to_account: not the secured party's (the registry refuses it)")
        asset = d["asset"]
        minor = _minor(d["amount"], self._scale(asset))
        held = loan.collateral
        if held is None or held.get(asset, 0) < minor or loan.pledged_acct is None:
            raise Unsupported("seizes more than pledged")
        credited_asset = event.credited_asset
        if loan.members is not None:
            credited_asset = None  # a seizure from a pool credits nothing (the event says so)
        elif loan.account is None:
            if credited_asset not in (None, loan.asset):
                raise Unsupported("credited_asset: not the loan's")
            credited_asset = loan.asset
        credited = 0
        if credited_asset is not None:  # (none only against an account, crediting nothing)
            try:
                credited = ev.to_minor(event.credited, self._scale(credited_asset))
            except ev.EventValueError:
                raise Unsupported("credited: finer than the asset") from None
        if loan.account is None and credited > loan.outstanding:
            raise Unsupported("credits more than outstanding")
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        self._post(loan.pledged_acct, asset, -minor, t, c, s)
        held[asset] -= minor
        self._post(self._equity(loan.borrower), asset, minor, t, c, s)
        taker = self._in(dst, asset, minor, t, c, s)
        self._post(self._equity(taker), asset, -minor, t, c, s)
        if credited and credited_asset is not None:
            if loan.account is None:
                loan.outstanding -= credited
                loan.impaired = min(loan.impaired, loan.outstanding)  # the registry's cap
                self._post(loan.lender_acct, credited_asset, -credited, t, c, s)
                self._post(self._equity(loan.lender), credited_asset, credited, t, c, s)
                self._post(loan.borrower_acct, credited_asset, credited, t, c, s)
                self._post(self._equity(loan.borrower), credited_asset, -credited, t, c, s)
                self._release_allowance(loan, d, seq, t, c, s)
            else:
                holder = self._in(loan.account, credited_asset, credited, t, c, s)
                self._post(self._equity(loan.account.entity), credited_asset, credited, t, c, s)
                self._post(self._equity(holder), credited_asset, -credited, t, c, s)
        self._check(d, seq, t, c, s, (), loan)

    def _apply_withdrawals_halted(self, d: dict[str, Any], seq: int) -> None:
        self.halted.add(self._entity(d["venue"]).name)

    def _apply_withdrawals_resumed(self, d: dict[str, Any], seq: int) -> None:
        self.halted.discard(self._entity(d["venue"]).name)

    def _apply_bankruptcy_filed(self, d: dict[str, Any], seq: int) -> None:
        self._entity(d["entity"])  # a fact for the record: no posting, no check

    def _apply_disclosure(self, d: dict[str, Any], seq: int) -> None:
        self._entity(d["entity"])

    def _apply_trade(self, d: dict[str, Any], seq: int) -> None:
        """Two assets exchanged between two entities' holdings, each side's legs with equity
        for the value that changed hands (the reference's). What the buyer paid (when it has a
        value) is the book value of what it took in, if it carries it at cost; a seller that
        carried what it sold at cost realises a gain or a loss, with the reference's notice."""
        accounts = [
            self._account(d[k], HOLDINGS, CUSTODY, EXTERNAL)
            for k in ("seller_from", "seller_to", "buyer_from", "buyer_to")
        ]
        seller_from, seller_to, buyer_from, buyer_to = accounts
        if seller_to.entity is not seller_from.entity or buyer_to.entity is not buyer_from.entity:
            raise Unsupported("trade accounts")
        event = ev.from_dict(d)
        assert isinstance(event, ev.Trade)
        asset, pay_asset = event.asset, event.pay_asset
        try:
            minor = ev.to_minor(event.amount, self._scale(asset))
            payment = ev.to_minor(event.payment, self._scale(pay_asset))
        except (ev.EventValueError, ArithmeticError):
            raise Unsupported("a payment the registry refuses (too many digits)") from None
        seller, buyer = seller_from.entity, buyer_from.entity
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        paid_priced = pay_asset == self.quote or pay_asset in self.prices
        if paid_priced:
            self._entry_cost[(buyer_to, asset)] = self._worth(payment, pay_asset)
        book_before = seller_from.book.get(asset)
        self._post(seller_from, asset, -minor, t, c, s)
        self._post(buyer_to, asset, minor, t, c, s)
        self._post(self._equity(seller), asset, minor, t, c, s)
        self._post(self._equity(buyer), asset, -minor, t, c, s)
        self._post(buyer_from, pay_asset, -payment, t, c, s)
        self._post(seller_to, pay_asset, payment, t, c, s)
        self._post(self._equity(buyer), pay_asset, payment, t, c, s)
        self._post(self._equity(seller), pay_asset, -payment, t, c, s)
        self._entry_cost.clear()
        if book_before is not None and paid_priced:
            cost = SUM_CONTEXT.subtract(book_before, seller_from.book.get(asset, ZERO))
            worth = self._worth(payment, pay_asset)
            gain = VALUE_CONTEXT.subtract(worth, cost)
            self._notice(
                d,
                seq,
                f"{seller.name} sold {event.amount:,f} {asset} carried at "
                f"{self.round(cost):,f} {self.quote} for {self.round(worth):,f}: a realised "
                f"{'gain' if gain >= 0 else 'loss'} of {self.round(abs(gain)):,f}",
            )
        self._check(d, seq, t, c, s, ())

    def _apply_holding_impaired(self, d: dict[str, Any], seq: int) -> None:
        """A holding at cost written down (or up) to ``book_price`` per unit it holds (the
        reference's; its notice). The account and its entity are checked."""
        acct = self._account(d["account"], HOLDINGS, CUSTODY)
        asset = d["asset"]
        scale = self._scale(asset)
        if acct.basis is None:
            raise Unsupported("a holding at fair value: the registry refuses it")
        event = ev.from_dict(d)
        assert isinstance(event, ev.HoldingImpaired)
        units = ev.from_minor(max(acct.bal.get(asset, 0), 0), scale)
        before = acct.book.get(asset, ZERO)
        after = SUM_CONTEXT.multiply(units, event.book_price)
        acct.book[asset] = after
        acct.entity.cost[(acct, asset)] = None
        moved = SUM_CONTEXT.subtract(before, after)
        self._notice(
            d,
            seq,
            f"{acct.ref} {asset} written {'down' if moved >= 0 else 'up'} by "
            f"{self.round(abs(moved)):,f} {self.quote} to a book value of {self.round(after):,f}",
        )
        self._check(d, seq, {acct.entity: None}, [(acct, asset)], {}, ())

    def _apply_deposit_insurance(self, d: dict[str, Any], seq: int) -> None:
        """A cover per depositor (0 ends it): a deposit-taker's deposits in the asset are
        taken out of their parts under the old cover and put back under the new one."""
        self._entity(d["insurer"])
        venue = self._entity(d["venue"])
        asset = d["asset"]
        limit = _minor(d["limit"], self._scale(asset), zero=True)
        self._set_cover(venue, asset, limit)
        self._check(d, seq, {venue: None}, [], {}, ())

    def _set_cover(self, venue: Entity, asset: str, limit: int) -> None:
        """Set (0: end) ``venue``'s cover in ``asset``; its deposits' parts move with it."""
        owing = []
        if venue.deposit_taker:
            owing = [(a, -a.bal[asset]) for a in venue.customers if a.bal.get(asset, 0) < 0]
        line = venue.lines.get(asset)
        if line is not None:
            for acct, owed in owing:
                self._move_deposit(acct, line, owed, 0)
        if limit:
            venue.cover[asset] = limit
        else:
            venue.cover.pop(asset, None)
        if line is not None:
            for acct, owed in owing:
                self._move_deposit(acct, line, 0, owed)

    def _apply_resolution(self, d: dict[str, Any], seq: int) -> None:
        """An authority resolves a failed entity (the reference's ``_on_resolution``): it is
        marked failed; the accounts named move whole to ``to_entity`` (each balance leaves the
        failed entity's books and opens in the acquirer's, each side's equity taking the
        difference; a customer account's holder's claim moves with it; a holding at cost keeps
        its book value); its deposit covers pass to the acquirer where it has none."""
        entity = self._entity(d["entity"])
        authority = self._entity(d["authority"])
        method, to_name, refs = d["method"], d.get("to_entity"), d.get("accounts")
        if method not in ev.RESOLUTION_METHODS or (refs is not None and to_name is None):
            raise Unsupported("resolution")
        to = self._entity(to_name) if to_name is not None else None
        if to is entity:
            raise Unsupported("resolution")
        self.failed[entity.name] = method
        t: dict[Entity, None] = {entity: None}
        c: list[Any] = []
        s: dict[Line, None] = {}
        if to is None:
            self._check(d, seq, t, c, s, ())
            return
        if type(refs) is not list and refs is not None:
            raise Unsupported("accounts")
        for ref in refs or ():
            acct = self.accounts.get(ref)
            if (
                type(ref) is not str
                or acct is None
                or acct.entity is not entity
                or acct.cls == EXTERNAL
                or acct.holder is to
                # What the core does not move (the reference does): a credit line, collateral
                # against the account.
                or acct.limit is not None
                or acct.secured is not None
            ):
                raise Unsupported("accounts")
            name = acct.name
            new_ref = f"{to.name}:{name}"
            moved = self.accounts.get(new_ref)
            if moved is None:
                moved = self._copy_account(acct, to)
                self.accounts[new_ref] = moved
            elif (moved.cls, moved.holder) != (acct.cls, acct.holder) or moved.limit is not None:
                raise Unsupported("accounts")
            for asset in sorted(entity.lines):
                raw = acct.bal.get(asset, 0)
                if not raw:
                    continue
                book = acct.book.get(asset)
                if book is not None:
                    self._entry_cost[(moved, asset)] = book
                self._post(acct, asset, -raw, t, c, s)
                self._post(self._equity(entity), asset, raw, t, c, s)
                self._post(moved, asset, raw, t, c, s)
                self._post(self._equity(to), asset, -raw, t, c, s)
                if acct.cls == CUSTOMER:
                    assert acct.claim is not None and moved.claim is not None
                    self._post(acct.claim, asset, raw, t, c, s)
                    self._post(moved.claim, asset, -raw, t, c, s)
        for asset, limit in list(entity.cover.items()):
            if asset not in to.cover:
                self._set_cover(to, asset, limit)
                t[to] = None  # its insured part and run-off moved: its liquidity is looked at
        self._entry_cost.clear()
        self._notice(
            d,
            seq,
            f"{entity.name} resolved by {authority.name} ({method.replace('_', ' ')}): "
            f"{len(refs or ())} account(s) moved to {to.name}",
        )
        self._check(d, seq, t, c, s, ())

    def _copy_account(self, acct: Account, to: Entity) -> Account:
        """``acct`` opened at ``to`` (the registry's copy of its record: purpose, holder,
        liability class, depositors, basis)."""
        if acct.cls == CUSTOMER:
            holder = acct.holder
            assert holder is not None
            moved = Account(to, acct.name, CUSTOMER, self._affiliated(to, holder))
            moved.holder = holder
            moved.depositors = acct.depositors
            moved.rate = acct.rate
            to.customers.append(moved)
            claim = moved.claim = self._implicit(holder, f"claim:{moved.ref}", CLAIM, to)
            claim.checked = False
        else:
            moved = Account(to, acct.name, acct.cls)
        moved.basis = acct.basis
        return moved

    def _apply_insurer_payout(self, d: dict[str, Any], seq: int) -> None:
        """An insurer pays a depositor: the depositor's claim on the venue passes to the insurer
        for what it paid (subrogation: due-to / due-from between venue and insurer)."""
        insurer = self._entity(d["insurer"])
        acct = self._account(d["account"], CUSTOMER)
        paid = self._account(d["paid_from"], HOLDINGS, CUSTODY)
        venue = acct.entity
        if venue is insurer or paid.entity is not insurer:
            raise Unsupported("insurer accounts (the registry refuses them)")
        to = None
        if "to" in d:
            to = self._account(d["to"], HOLDINGS, CUSTODY, EXTERNAL)
            if to.entity is not acct.holder:
                raise Unsupported("to: not the holder's (the registry refuses it)")
        asset = d["asset"]
        minor = _minor(d["amount"], self._scale(asset))
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        holder = self._out(acct, asset, minor, t, c, s)
        self._post(self._due(venue, "due-to", insurer), asset, -minor, t, c, s)
        self._post(self._due(insurer, "due-from", venue), asset, minor, t, c, s)
        self._out(paid, asset, minor, t, c, s)
        if to is not None:
            self._in(to, asset, minor, t, c, s)
        else:
            self._post(self._external(holder), asset, minor, t, c, s)
        self._check(d, seq, t, c, s, ())

    def _apply_margin_call(self, d: dict[str, Any], seq: int) -> None:
        # The reference records the call (for the views) and looks at the loan's coverage again.
        loan = self._target(d)  # a loan or a pool ("account" is not a field of a call)
        text = f"margin call on {loan.id}"
        if "amount" in d:
            text += f" for {Decimal(d['amount']):,f} {self.quote}"
        if "due" in d:
            text += f", due {ev.format_instant(ev.parse_instant(d['due']))}"
        self._notice(d, seq, text)
        self._check(d, seq, {}, [], {}, (), loan)

    def _apply_loan_defaulted(self, d: dict[str, Any], seq: int) -> None:
        # The reference posts nothing for a default (the loan stays outstanding until seized or
        # written off; only its "defaulted" flag, read by the loans view, changes): no check.
        if self._loan(d).outstanding == 0:
            raise Unsupported("a default on nothing outstanding (the registry refuses it)")

    def _apply_tokens_minted(self, d: dict[str, Any], seq: int) -> None:
        # The issuer's holdings grow; the new units are its own equity (the reference's two legs).
        dst = self._account(d["to_account"], HOLDINGS, CUSTODY)
        asset = d["asset"]
        minor = _minor(d["amount"], self._scale(asset))
        if self.assets[asset][2] != dst.entity.name:
            raise Unsupported("only the issuer can mint (the registry refuses it)")
        t: dict[Entity, None] = {}
        c: list[Any] = []
        s: dict[Line, None] = {}
        self._post(dst, asset, minor, t, c, s)
        self._post(self._equity(dst.entity), asset, -minor, t, c, s)
        self._check(d, seq, t, c, s, ())

    def _apply_balance_asserted(self, d: dict[str, Any], seq: int) -> None:
        """A figure from the public record compared with the books: the reference's own
        ``assertion_result`` reads the figure from this state (``_Figures``), so the summary's
        comparison and the ``assertions`` violation have the reference's exact wording. Rare
        events (a handful per timeline): built from an Event, with Decimals, off the hot path."""
        self._entity(d["entity"])
        measure = d["measure"]
        if measure not in _Figures.MEASURES:
            raise Unsupported(f"measure {measure}")
        # The registry's reference checks: every named account, asset and loan exists.
        if "account" in d and d["account"] not in self.accounts:
            raise Unsupported("account")
        if "asset" in d:
            self._scale(d["asset"])
        if "loan" in d:
            self._loan(d)
        event = ev.from_dict(d)
        assert isinstance(event, ev.BalanceAsserted)
        if measure not in ev.RATIO_MEASURES:
            # The registry's: the figure and its tolerance fit the unit's decimals (else it
            # refuses the event, and the reference names the field).
            unit = event.asset if measure == "balance" else event.quote
            scale = self._scale(unit)
            try:
                ev.to_minor(event.expected.copy_abs(), scale)
                ev.to_minor(event.tolerance, scale)
            except ev.EventValueError:
                raise Unsupported("expected or tolerance finer than the unit") from None
        from ledger.invariants import assertion_result

        result = assertion_result(cast("Books", _Figures(self)), event)
        self.assertions.append(
            {"seq": seq, "event_id": event.id, "at": ev.format_instant(event.at), **result}
        )
        if not self.on_assert:
            return
        name, subject = "assertions", result["subject"]
        ids = self._assert_touch.get(subject)
        if ids is None:
            ids = self._assert_touch[subject] = deque(maxlen=KEPT)
        ids.append(event.id)
        is_open = (name, subject) in self.open
        if result["ok"] and is_open:
            self._close(name, subject, None)
        elif not result["ok"] and not is_open:
            threshold = result.get("bound", f"{result['expected']} ± {result['tolerance']}")
            self._breach(
                name, subject, None, d, seq, result["actual"], threshold, result["detail"], ids
            )

    # -- the break-price index (the reference's, for which loans a price update rechecks) ------
    def _reindex(self, loan: Loan) -> None:
        if loan.cover is not None:
            asset, k = loan.cover
            entries = self.cover_index[asset]
            entries.pop(bisect.bisect_left(entries, (k, loan.id)))
            loan.cover = None
        for asset in loan.complex:
            self.complex_loans[asset].discard(loan.id)
        loan.complex = ()
        if loan.collateral is None:
            return
        held = [(a, m) for a, m in loan.collateral.items() if m]
        acct = loan.account
        if loan.members is not None:
            debt_assets = {m.asset for m in loan.members if m.outstanding}
        elif acct is None:
            debt_assets = {loan.asset} if loan.outstanding else set()
        else:
            debt_assets = {a for a, owed in acct.bal.items() if owed > 0}
        if len(held) == 1 and debt_assets <= {self.quote} and held[0][0] != self.quote:
            asset, minor = held[0]
            debt = self._debt(loan)
            cut = self.policy.collateral_haircut(self.assets[asset][1])
            keep = VALUE_CONTEXT.multiply(
                ev.from_minor(minor, self.assets[asset][0]), SUM_CONTEXT.subtract(1, cut)
            )
            if debt <= 0:
                k = Decimal(0)
            elif keep <= 0:
                k = Decimal("Infinity")
            else:
                k = VALUE_CONTEXT.divide(
                    VALUE_CONTEXT.multiply(debt, self.policy.min_collateral_coverage), keep
                )
            loan.cover = (asset, k)
            bisect.insort(self.cover_index.setdefault(asset, []), (k, loan.id))
        else:
            assets = {a for a, _ in held} | debt_assets
            loan.complex = tuple(sorted(assets))
            for asset in assets:
                self.complex_loans.setdefault(asset, set()).add(loan.id)

    def _debt(self, loan: Loan) -> Decimal:
        return _dec(self._debt_v(loan), E)

    def _debt_v(self, loan: Loan) -> int:
        """The value of what a secured target owes (exponent E): a loan's outstanding principal,
        or a secured account's positive venue-side balances (the holder owes them)."""
        acct, members = loan.account, loan.members
        if members is not None:
            unit = self.unit
            return sum(m.outstanding * unit[m.asset] for m in members)
        if acct is None:
            return loan.outstanding * self.unit[loan.asset]
        unit = self.unit
        return sum(owed * unit[a] for a, owed in acct.bal.items() if owed > 0)

    def _repriced_loans(self, asset: str, before: Decimal | None) -> set[str]:
        after = self.prices.get(asset, Decimal(0))
        low, high = sorted((before if before is not None else Decimal(0), after))
        entries = self.cover_index.get(asset, [])
        lo = bisect.bisect_left(entries, (low, ""))
        hi = bisect.bisect_right(entries, (high, "\U0010ffff"))
        return {loan for _, loan in entries[lo:hi]} | self.complex_loans.get(asset, set())

    # -- the checks ---------------------------------------------------------------------------
    def _check(
        self,
        d: dict[str, Any],
        seq: int,
        touched: dict[Entity, None],
        checked: list[Any],
        seg: dict[Line, None],
        repriced: Sequence[tuple[str, Decimal | None]],
        loan: Loan | None = None,
    ) -> None:
        """The standard invariants over what one event touched (the reference's subjects).

        Conservation cannot break here (every apply above posts balanced legs per entity and
        asset), so it is not looked at; capital-ratio is checked with the entity's others.
        """
        eid = d["id"]
        if self.on_neg:
            for acct, asset in checked:
                self._neg_check(acct, asset, eid, d, seq)
        if self.on_seg:
            for line in seg:
                self._seg_check(line, eid, d, seq)
        for entity in touched:
            self._entity_check(entity, eid, d, seq)
        # collateral-coverage: the secured targets this event moved (a loan it names, the
        # secured accounts it posted to: reindexed, as the reference's apply does), and those
        # a price update may move.
        targets = self._targets
        self._targets = {}
        if loan is not None:
            if loan.collateral is not None:
                targets[loan] = None
            pool = loan.pool  # a pooled loan's debt is its pool's
            if pool is not None and pool.collateral is not None:
                targets[pool] = None
        for target in targets:
            self._reindex(target)
        retire = (
            loan is not None
            and not loan.outstanding
            and loan.account is None
            and loan.members is None
            and loan.pool is None
        )
        if self.on_cc:
            loans, secured = self.loans, self.secured
            for asset, before in repriced:  # (asset, price before): a price update's
                for key in self._repriced_loans(asset, before):
                    targets[loans.get(key) or secured[key]] = None
            self._cover_checks(targets, eid, d, seq)
        if self.on_health and self.health_index:
            # loan-health: the threshold loans of the target this event named (and of a pooled
            # loan's pool), and those a repriced asset is indexed under.
            health: dict[Loan, None] = {}
            if loan is not None:
                health.update(dict.fromkeys(self._health_loans(loan)))
                if loan.pool is not None:
                    health.update(dict.fromkeys(self._health_loans(loan.pool)))
            for asset, _ in repriced:
                health.update(dict.fromkeys(self.health_index.get(asset, ())))
            for member in health:
                self._health_check(member, eid, d, seq)
        if retire:
            assert loan is not None
            self._retire(loan)

    def _retire(self, loan: Loan) -> None:
        """Shrink a plain loan that is settled and empty, once its checks have looked at it, to
        its entry in ``retired``. Its postings have all been undone (its ``loan:``, ``pledged:``
        and ``allowance:`` accounts are zero), so no figure reads its records. Its debt can
        never come back (nothing adds to a loan's principal), so neither collateral-coverage
        nor loan-health can break for it again, and the contributing ids they kept for it
        are never reported: a loan made again from the entry (``_loan``) is the same loan to
        every later event."""
        if (
            loan.impaired
            or loan.open
            or loan.health_open
            or loan.cover is not None
            or loan.complex
            or any(loan.collateral.values() if loan.collateral else ())
            or loan.lender_acct.bal
            or loan.borrower_acct.bal
            or (loan.pledged_acct is not None and loan.pledged_acct.bal)
            or (loan.allowance is not None and loan.allowance.bal)
        ):
            return
        del self.loans[loan.id]
        shape = (
            loan.lender,
            loan.borrower,
            loan.asset,
            loan.threshold,
            loan.collateral is not None,
        )
        self.retired[loan.id] = self._shapes.setdefault(shape, shape)
        if loan.threshold is not None:
            for indexed in self.health_index.values():
                indexed.discard(loan)

    def _health_loans(self, target: Loan) -> list[Loan]:
        """The loans with a liquidation threshold that ``target`` (a loan or a pool) secures."""
        if target.members is not None:
            return sorted(
                (m for m in target.members if m.threshold is not None), key=lambda m: m.id
            )
        if target.account is None and target.threshold is not None:
            return [target]
        return []

    def _health_check(self, loan: Loan, eid: str, d: dict[str, Any], seq: int) -> None:
        """loan-health: collateral at market x threshold >= debt (over its pool if pooled)."""
        ids = loan.health_touch
        ids.append(eid)
        target = loan.pool or loan
        debt = self._debt_v(target)
        broken = False
        if debt > 0:
            market = sum(
                minor * self.unit[a] for a, minor in (target.collateral or {}).items() if minor
            )
            broken = market * loan.thr < debt * 10**H  # both sides at E + H
        if broken == loan.health_open:
            return
        loan.health_open = broken
        name = "loan-health"
        if not broken:
            self._close(name, loan.id, None)
            return
        from ledger.invariants import fmt_ratio

        health = self._health(loan)
        assert health is not None
        market_v = sum(
            minor * self.unit[a] for a, minor in (target.collateral or {}).items() if minor
        )
        pooled = f" pooled in {target.id[5:]}" if loan.pool is not None else ""
        self._breach(
            name,
            loan.id,
            None,
            d,
            seq,
            fmt_ratio(health),
            "1.0000",
            f"loan {loan.id}: collateral{pooled} worth {self._value(market_v)} at market, at a "
            f"liquidation threshold of {loan.threshold}, covers {fmt_ratio(health)} of a debt of "
            f"{self._value(debt)}: it can be liquidated",
            ids,
        )

    def _health(self, loan: Loan) -> Decimal | None:
        """The reference's ``loan_health``: market collateral x threshold / debt (None without
        a threshold or a debt)."""
        if loan.threshold is None:
            return None
        target = loan.pool or loan
        debt = _dec(self._debt_v(target), E)
        if debt <= 0:
            return None
        market = _dec(
            sum(minor * self.unit[a] for a, minor in (target.collateral or {}).items() if minor), E
        )
        return VALUE_CONTEXT.divide(VALUE_CONTEXT.multiply(market, Decimal(loan.threshold)), debt)

    def _cover_checks(
        self, targets: dict[Loan, None], eid: str, d: dict[str, Any], seq: int
    ) -> None:
        """collateral-coverage: haircut collateral >= debt x margin, per secured target."""
        for target in targets:
            ids = target.touch
            ids.append(eid)
            debt = self._debt_v(target)
            broken = False
            if debt > 0:
                value = self._collateral(target)
                broken = value < debt * self.min_cc  # both sides at exponent E + H
            if broken != target.open:
                self._cover(target, broken, d, seq, ids)

    def _customer_checks(
        self,
        d: dict[str, Any],
        seq: int,
        first: Account,
        second: Account,
        asset: str,
        line: Line | None,
        venue: Entity,
        a: Entity,
        b: Entity,
    ) -> None:
        """The checks of a deposit, withdrawal or customer transfer: two accounts in one asset,
        the venue's line in it (every line if the venue was just born), the venue and one or
        two holders (the reference's subjects for these postings, each once)."""
        eid = d["id"]
        if self.on_neg:
            self._neg_check(first, asset, eid, d, seq)
            if second.checked:
                self._neg_check(second, asset, eid, d, seq)
        born = self._born
        if born is not None:
            self._born = None
        if self.on_seg:
            if born is not None:
                for other in list(born.lines.values()):
                    self._seg_check(other, eid, d, seq)
            elif line is not None:
                self._seg_check(line, eid, d, seq)
        entity_check = self._entity_check
        entity_check(venue, eid, d, seq)
        if a is not venue:
            entity_check(a, eid, d, seq)
        if b is not a and b is not venue:
            entity_check(b, eid, d, seq)
        if self._targets:  # a secured customer account moved (rare: one dict test otherwise)
            targets, self._targets = self._targets, {}
            for target in targets:
                self._reindex(target)
            if self.on_cc:
                self._cover_checks(targets, eid, d, seq)

    def _neg_check(self, acct: Account, asset: str, eid: str, d: dict[str, Any], seq: int) -> None:
        """no-unauthorised-negative: holdings >= 0; a customer account >= -credit line for its
        holder (its raw balance, the venue's view, <= the line)."""
        touch = acct.touch
        ids = touch.get(asset)
        if ids is None:
            ids = touch[asset] = deque((eid,), maxlen=KEPT)
        elif ids[-1] != eid:  # an account posted twice in one event counts once
            ids.append(eid)
        balance = acct.bal.get(asset, 0)
        if acct.cls == CUSTOMER:
            limits = acct.limit
            broken = balance > (limits.get(asset, 0) if limits else 0)
        else:
            broken = balance < 0
        if broken != (asset in acct.open):
            self._neg(acct, asset, balance, broken, d, seq, ids)

    def _seg_check(self, line: Line, eid: str, d: dict[str, Any], seq: int) -> None:
        """segregation: per venue and asset, custody >= what customers are owed (minor units)."""
        entity = line.entity
        if entity.venue and entity.custodial:
            ids = line.seg_touch
            ids.append(eid)
            broken = line.custody < line.owed
            if broken != line.seg_open:
                self._seg(line, broken, d, seq, ids)

    def _entity_check(self, entity: Entity, eid: str, d: dict[str, Any], seq: int) -> None:
        """reserve-ratio, own-token-concentration, related-party-exposure and solvency for one
        entity the event posted to or repriced: integer comparisons of its running values."""
        ids = entity.touch
        ids.append(eid)
        opened = entity.open
        if entity.venue and entity.custodial and self.on_rr:
            rr = entity.rr_touch
            rr.append(eid)
            owed = entity.owed_v
            broken = owed > 0 and entity.reserves_v < owed * self.min_rr
            if broken != ("reserve-ratio" in opened):
                self._entity_breach("reserve-ratio", entity, broken, d, seq, rr)
        if entity.own and self.on_own:
            # No own-token line: the share is 0 and cannot have been open (lines stay).
            own = 0
            unit = self.unit
            for line in entity.own:
                own += (line.held + line.pledged) * unit[line.asset]
            total = entity.assets_v if own > 0 else 0
            broken = own > 0 and total > 0 and own * 10**H > total * self.max_own
            if broken != ("own-token-concentration" in opened):
                self._entity_breach("own-token-concentration", entity, broken, d, seq, ids)
        exposure = entity.related_v
        if (exposure > 0 or opened) and self.on_rel:
            broken = False
            if exposure > 0:
                base = entity.owed_v if entity.venue else entity.assets_v
                broken = base > 0 and exposure * 10**H > base * self.max_rel
            if broken != ("related-party-exposure" in opened):
                self._entity_breach("related-party-exposure", entity, broken, d, seq, ids)
        if entity.solvency and self.on_solv:
            broken = entity.assets_v < entity.liabs_v
            if broken != ("solvency" in opened):
                self._entity_breach("solvency", entity, broken, d, seq, ids)
        if entity.lcr and self.on_lcr:
            # liquid (E + H) >= outflows (E + H) x minimum (H): both sides at E + 2H.
            outflows = entity.runoff_v
            broken = outflows > 0 and entity.reserves_v * 10**H < outflows * self.min_lcr
            if broken != ("liquidity-coverage" in opened):
                self._entity_breach("liquidity-coverage", entity, broken, d, seq, ids)
        if entity.bank and self.on_cap:
            # equity at book (E; book = market: no holding at cost) against risk-weighted
            # assets (E + H) x minimum (H), or total assets (E) x minimum: both sides at one
            # exponent. No base: broken only by negative capital.
            if entity.cost:  # holdings at cost: the reference's Decimal figures
                equity_b, assets_b, rwa_b = self._book(entity)
                base_b = assets_b if self.leverage else rwa_b
                minimum = self.policy.min_capital_ratio
                broken = (
                    equity_b < SUM_CONTEXT.multiply(base_b, minimum) if base_b > 0 else equity_b < 0
                )
            elif self.leverage:
                equity = entity.assets_v - entity.liabs_v
                base = entity.assets_v
                broken = equity * 10**H < base * self.min_cap if base > 0 else equity < 0
            else:
                equity = entity.assets_v - entity.liabs_v
                base = entity.rwa_v
                broken = equity * 10 ** (2 * H) < base * self.min_cap if base > 0 else equity < 0
            if broken != ("capital-ratio" in opened):
                self._entity_breach("capital-ratio", entity, broken, d, seq, ids)

    def _collateral(self, loan: Loan) -> int:
        """Haircut value of a loan's collateral (exponent E + H)."""
        total = 0
        for asset, minor in (loan.collateral or {}).items():
            if minor:
                total += minor * self.unit[asset] * self._keep(asset, None)
        return total

    # -- transitions: the only places that build text -----------------------------------------
    def _breach(
        self,
        name: str,
        subject: str,
        flags: set[str] | None,
        d: dict[str, Any],
        seq: int,
        observed: str,
        threshold: str,
        detail: str,
        ids: Sequence[str],
    ) -> None:
        if flags is not None:
            flags.add(name)
        self._opened.append(
            self._violation(name, subject, d, seq, observed, threshold, detail, ids)
        )

    def _close(self, name: str, subject: str, flags: set[str] | None) -> None:
        if flags is not None:
            flags.discard(name)
        del self.open[(name, subject)]

    def _fmt(self, minor: int, asset: str) -> str:
        return f"{ev.from_minor(minor, self.assets[asset][0]):,f}"

    def _value(self, v: int, exponent: int = E) -> str:
        value = _dec(v, exponent)
        return f"{self.round(value):,f} {self.quote}"

    def round(self, value: Decimal) -> Decimal:
        """The reference's ``round_value``: to the quote's scale, half-even."""
        info = self.assets.get(self.quote)
        scale = info[0] if info is not None else 2
        return value.quantize(Decimal(1).scaleb(-scale), context=VALUE_CONTEXT)

    def _neg(
        self,
        acct: Account,
        asset: str,
        balance: int,
        broken: bool,
        d: dict[str, Any],
        seq: int,
        ids: Sequence[str],
    ) -> None:
        name = "no-unauthorised-negative"
        subject = f"{acct.ref}/{asset}"
        if not broken:
            acct.open.discard(asset)
            del self.open[(name, subject)]
            return
        acct.open.add(asset)
        if acct.cls == CUSTOMER:
            held = self._fmt(-balance, asset)
            limit = acct.limit.get(asset, 0) if acct.limit else 0
            line = self._fmt(limit, asset)
            assert acct.holder is not None
            self._opened.append(
                self._violation(
                    name,
                    subject,
                    d,
                    seq,
                    f"{held} {asset}",
                    f"-{line} {asset}" if limit else f"0 {asset}",
                    f"{acct.holder.name}'s account at {acct.entity.name} is at {held} {asset}"
                    + (
                        f", beyond its credit line of {line}"
                        if limit
                        else " with no credit line recorded"
                    ),
                    ids,
                )
            )
        else:
            held = self._fmt(balance, asset)
            self._opened.append(
                self._violation(
                    name,
                    subject,
                    d,
                    seq,
                    f"{held} {asset}",
                    "0",
                    f"{acct.ref} holds less than nothing: {held} {asset}",
                    ids,
                )
            )

    def _seg(
        self, line: Line, broken: bool, d: dict[str, Any], seq: int, ids: Sequence[str]
    ) -> None:
        name, venue, asset = "segregation", line.entity.name, line.asset
        subject = f"{venue}/{asset}"
        line.seg_open = broken
        if not broken:
            del self.open[(name, subject)]
            return
        owed, held = self._fmt(line.owed, asset), self._fmt(line.custody, asset)
        self._opened.append(
            self._violation(
                name,
                subject,
                d,
                seq,
                f"{held} {asset} in custody",
                f"{owed} {asset} owed",
                f"{venue} owes customers {owed} {asset} but holds {held} in segregated custody "
                f"(short {self._fmt(line.owed - line.custody, asset)})",
                ids,
            )
        )

    def _entity_breach(
        self,
        name: str,
        entity: Entity,
        broken: bool,
        d: dict[str, Any],
        seq: int,
        ids: Sequence[str],
    ) -> None:
        if not broken:
            self._close(name, entity.name, entity.open)
            return
        from ledger.invariants import fmt_ratio

        e = entity.name
        if name == "reserve-ratio":
            owed, reserves = _dec(entity.owed_v, E), _dec(entity.reserves_v, E + H)
            ratio = VALUE_CONTEXT.divide(reserves, owed)
            observed, threshold = fmt_ratio(ratio), fmt_ratio(self.policy.min_reserve_ratio)
            detail = (
                f"{e}'s liquid reserves ({self._value(entity.reserves_v, E + H)} after haircuts) "
                f"cover {fmt_ratio(ratio)} of the {self._value(entity.owed_v)} it owes customers"
            )
        elif name == "own-token-concentration":
            own_v = sum((line.held + line.pledged) * self.unit[line.asset] for line in entity.own)
            share = VALUE_CONTEXT.divide(_dec(own_v, E), _dec(entity.assets_v, E))
            observed, threshold = fmt_ratio(share), fmt_ratio(self.policy.max_own_token_share)
            detail = (
                f"{fmt_ratio(share)} of {e}'s {self._value(entity.assets_v)} of assets are "
                f"tokens issued by itself or an affiliate ({self._value(own_v)})"
            )
        elif name == "related-party-exposure":
            base = entity.owed_v if entity.venue else entity.assets_v
            share = VALUE_CONTEXT.divide(_dec(entity.related_v, E), _dec(base, E))
            against = "customer liabilities" if entity.venue else "total assets"
            observed, threshold = (
                fmt_ratio(share),
                fmt_ratio(self.policy.max_related_party_exposure),
            )
            detail = (
                f"{e} is owed {self._value(entity.related_v)} by affiliates, "
                f"{fmt_ratio(share)} of its {against} ({self._value(base)})"
            )
        elif name == "liquidity-coverage":
            liquid, outflows = _dec(entity.reserves_v, E + H), _dec(entity.runoff_v, E + H)
            ratio = VALUE_CONTEXT.divide(liquid, outflows)
            observed, threshold = fmt_ratio(ratio), fmt_ratio(self.policy.min_liquidity_coverage)
            detail = (
                f"{e}: liquid assets of {self._value(entity.reserves_v, E + H)} after haircuts cover "
                f"{fmt_ratio(ratio)} of the {self._value(entity.runoff_v, E + H)} of deposits expected to "
                f"run (run-off-weighted, of {self._value(entity.owed_v)} "
                f"owed to depositors, {self._value(entity.insured_v)} insured)"
            )
        elif name == "capital-ratio":
            capital, assets_b, rwa_b = self._book(entity)
            leverage = self.leverage
            base_d = assets_b if leverage else rwa_b
            at_book = f"{self.round(capital):,f} {self.quote}"
            if base_d <= 0:
                observed, threshold = at_book, "0"
                detail = f"{e} has negative capital ({at_book} at book)"
            else:
                ratio = VALUE_CONTEXT.divide(capital, base_d)
                minimum = fmt_ratio(self.policy.min_capital_ratio)
                observed, threshold = fmt_ratio(ratio), minimum
                against = "total assets at book" if leverage else "risk-weighted assets"
                detail = (
                    f"{e}: equity at book value ({at_book}) is {fmt_ratio(ratio)} "
                    f"of its {against} ({self.round(base_d):,f} {self.quote}); the minimum is "
                    f"{minimum}"
                )
        else:  # solvency
            equity = entity.assets_v - entity.liabs_v
            observed, threshold = self._value(equity), f"0 {self.quote}"
            unpriced = []
            for asset in sorted(entity.lines):
                if asset == self.quote or asset in self.prices:
                    continue
                line = entity.lines[asset]
                if line.pos:
                    unpriced.append(f"{asset} held")
                if line.neg:
                    unpriced.append(f"{asset} owed")
            at_book = ""
            if entity.cost:  # holdings at cost: the reference reports book equity beside it
                book = self._book(entity)[0]
                at_book = f"; at book value its equity is {self.round(book):,f} {self.quote}"
            detail = (
                f"{e}: liabilities of {self._value(entity.liabs_v)} exceed its assets at "
                f"market value ({self._value(entity.assets_v)}): equity {self._value(equity)}"
                + at_book
                + (f" (unpriced, not counted: {', '.join(unpriced)})" if unpriced else "")
            )
        self._breach(name, e, entity.open, d, seq, observed, threshold, detail, ids)

    def _cover(
        self, loan: Loan, broken: bool, d: dict[str, Any], seq: int, ids: Sequence[str]
    ) -> None:
        name = "collateral-coverage"
        loan.open = broken
        if not broken:
            del self.open[(name, loan.id)]
            return
        from ledger.invariants import fmt_ratio

        value_v, debt_v = self._collateral(loan), self._debt_v(loan)
        ratio = VALUE_CONTEXT.divide(_dec(value_v, E + H), _dec(debt_v, E))
        self._opened.append(
            self._violation(
                name,
                loan.id,
                d,
                seq,
                fmt_ratio(ratio),
                fmt_ratio(self.policy.min_collateral_coverage),
                f"collateral against {loan.id} is worth {self._value(value_v, E + H)} after "
                f"haircuts for a debt of {self._value(debt_v)} (coverage {fmt_ratio(ratio)})",
                ids,
            )
        )

    # -- the summary's figures ----------------------------------------------------------------
    def final_metrics(self) -> dict[str, str]:
        """The reference's ``Replay._key_metrics(None)`` from this state."""
        metrics: dict[str, str] = {}
        venues = [e for e in self.entities.values() if e.venue]
        if venues:
            self._venue_metrics(metrics, min(venues, key=lambda e: (-e.owed_v, e.name)))
        if self.failed:
            metrics["failed"] = ", ".join(
                f"{name} ({method.replace('_', ' ')}; equity at market "
                f"{self.round(self._equity_of(name)):,f} "
                f"{self.quote})"
                for name, method in sorted(self.failed.items())
            )
        return metrics

    def _equity_of(self, name: str) -> Decimal:
        """The reference's ``equity``: total assets - total liabilities at market."""
        e = self.entities[name]
        return VALUE_CONTEXT.subtract(_dec(e.assets_v, E), _dec(e.liabs_v, E))

    def _venue_metrics(self, metrics: dict[str, str], venue: Entity) -> None:
        """The focus venue's part of the final metrics (the reference's ``_key_metrics``)."""
        from ledger.invariants import fmt_ratio

        owed = _dec(venue.owed_v, E)
        custody_v = sum(
            line.custody * self.unit[a] for a, line in venue.lines.items() if line.custody
        )
        held = _dec(custody_v, E)
        metrics["venue"] = venue.name
        metrics["customer_liabilities"] = ev.format_decimal(self.round(owed))
        metrics["custody"] = ev.format_decimal(self.round(held))
        # ``-`` and ``/`` in the default context, as the reference computes them (the same
        # rounding of the same exact values).
        metrics["shortfall"] = ev.format_decimal(self.round(max(owed - held, Decimal(0))))
        if owed > 0:
            metrics["reserve_ratio"] = fmt_ratio(_dec(venue.reserves_v, E + H) / owed)
        for key, field in (("unpriced_owed", "owed"), ("unpriced_custody", "custody")):
            unpriced = [
                f"{ev.from_minor(minor, self.assets[asset][0]).normalize():,f} {asset}"
                for asset in sorted(venue.lines)
                if (minor := getattr(venue.lines[asset], field)) > 0
                and asset != self.quote
                and asset not in self.prices
            ]
            if unpriced:
                metrics[key] = ", ".join(unpriced)
        family = venue.family
        metrics["family"] = family
        if family in ("bank", "lender", "protocol"):
            equity = self.round(_dec(venue.assets_v - venue.liabs_v, E))
            equity_b, _, rwa_b = self._book(venue)
            metrics["insured"] = ev.format_decimal(self.round(_dec(venue.insured_v, E)))
            metrics["equity"] = ev.format_decimal(equity)
            metrics["equity_book"] = ev.format_decimal(self.round(equity_b))
            if venue.runoff_v > 0:
                liquid, outflows = _dec(venue.reserves_v, E + H), _dec(venue.runoff_v, E + H)
                metrics["liquidity_coverage"] = fmt_ratio(VALUE_CONTEXT.divide(liquid, outflows))
            if family == "bank" and rwa_b > 0:
                metrics["capital_ratio"] = fmt_ratio(VALUE_CONTEXT.divide(equity_b, rwa_b))


class _Scale:
    __slots__ = ("scale",)

    def __init__(self, scale: int) -> None:
        self.scale = scale


class _Figures:
    """What ``ledger.invariants.assertion_result`` reads of the books (``measure``, ``quote``,
    ``price``, ``registry.assets[...].scale``, ``unpriced_holdings``), answered from the core's
    state with the reference's Decimal operations on the same exact values, so a comparison's
    figures and words are the reference's (the book measures with its Decimal operations)."""

    MEASURES = frozenset(ev.MEASURES)

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.quote = machine.quote
        self.registry = self
        self.assets = {asset: _Scale(info[0]) for asset, info in machine.assets.items()}

    def price(self, asset: str) -> Decimal | None:
        return Decimal(1) if asset == self.quote else self.m.prices.get(asset)

    def unpriced_holdings(self, entity: str) -> dict[str, Decimal]:
        m = self.m
        found: dict[str, Decimal] = {}
        lines = m.entities[entity].lines
        for asset in sorted(lines):
            if asset == self.quote or asset in m.prices:
                continue
            line, scale = lines[asset], m.assets[asset][0]
            if line.pos:
                found[f"{asset} held"] = ev.from_minor(line.pos, scale)
            if line.neg:
                found[f"{asset} owed"] = ev.from_minor(line.neg, scale)
        return found

    def measure(
        self,
        entity: str,
        measure: str,
        *,
        asset: str | None = None,
        account: str | None = None,
        loan: str | None = None,
    ) -> Decimal | None:
        m = self.m
        e = m.entities[entity]
        if measure == "balance":
            assert account is not None and asset is not None
            acct = m.accounts[account]
            raw = acct.bal.get(asset, 0)
            return ev.from_minor(-raw if acct.cls == CUSTOMER else raw, m.assets[asset][0])
        if measure == "holdings_value":
            assert asset is not None
            line = e.lines.get(asset)
            minor = line.held + line.pledged if line is not None else 0
            if minor == 0 or not m.unit[asset]:
                return Decimal(0)  # the reference's value(): 0 for nothing, or unpriced
            return _dec(minor * m.unit[asset], E)
        if measure == "liquidity_coverage":
            outflows = _dec(e.runoff_v, E + H)
            liquid = _dec(e.reserves_v, E + H)
            return VALUE_CONTEXT.divide(liquid, outflows) if outflows > 0 else None
        if measure == "loan_health":
            assert loan is not None
            return m._health(m.loans[loan])
        if measure in ("capital_ratio", "leverage_ratio", "equity_book", "total_assets_book"):
            equity_b, assets_b, rwa_b = m._book(e)
            if measure == "equity_book":
                return equity_b
            if measure == "total_assets_book":
                return assets_b
            base = rwa_b if measure == "capital_ratio" else assets_b
            return VALUE_CONTEXT.divide(equity_b, base) if base > 0 else None
        if measure == "oci":
            return -m._cost_gap(e, "available_for_sale")
        if measure == "unrealised_loss":
            return m._cost_gap(e)
        if measure == "ltv":
            assert loan is not None
            target = m.loans[loan].pool or m.loans[loan]  # a pooled loan: its pool's figures
            market = _dec(
                sum(minor * m.unit[a] for a, minor in (target.collateral or {}).items() if minor), E
            )
            debt = _dec(m._debt_v(target), E)
            return VALUE_CONTEXT.divide(debt, market) if market > 0 else None
        assets, liabs = _dec(e.assets_v, E), _dec(e.liabs_v, E)
        owed = _dec(e.owed_v, E)
        equity = VALUE_CONTEXT.subtract(assets, liabs)
        if measure == "total_assets":
            return assets
        if measure == "total_liabilities":
            return liabs
        if measure == "equity":
            return equity
        if measure in ("customer_liabilities", "uninsured_deposits"):
            return (
                owed
                if measure == "customer_liabilities"
                else VALUE_CONTEXT.subtract(owed, _dec(e.insured_v, E))
            )
        if measure == "customer_shortfall":
            custody = _dec(
                sum(line.custody * m.unit[a] for a, line in e.lines.items() if line.custody), E
            )
            return max(VALUE_CONTEXT.subtract(owed, custody), Decimal(0))
        if measure == "insured_deposits":
            return _dec(e.insured_v, E)
        raise Unsupported(f"measure {measure}")
