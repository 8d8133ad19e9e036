"""The fast replay core: the books and the standard invariants as one state machine.

``ledger.books`` and ``ledger.invariants`` are the reference: readable, general, one object
per posting and one :class:`~ledger.invariants.Status` per subject per event. This package
computes the same summary (the same opened and closed violations at the same seqs, with the
same observed values, thresholds, details and contributing ids; the same counts, final
metrics and digest) at a fraction of the cost, in pure Python:

- every entity, account and (entity, asset) aggregate is a small record created on first
  sight (``machine.Entity``, ``machine.Account``, ``machine.Line``), found by one dict look-up;
- one apply per event type, its postings written out (``machine.Machine._apply_*``);
- integer minor units and integer values (minor x price, at one fixed exponent) on the hot
  path; Decimal only to report a breach;
- the standard invariants are checks that report *transitions* only: no object is created
  for a subject that is and stays fine;
- the stored payload is read straight from the log and decoded once (orjson), with no Event
  object and no generator layer between the cursor and the apply.

The core covers the general model: entities of every kind (banks with risk weights and the
capital ratio), assets, accounts at fair value and at cost (book values, OCI, realised gains
on a sale, holding impairments), deposits (at venues and at deposit-takers, with deposit
insurance and insurer payouts), withdrawals, transfers, trades, mints, prices in any quote
(chained), loans with collateral against a loan, an account or a pool (pledges, releases,
seizures, margin calls, defaults, impairments, liquidation thresholds), credit lines, halts,
filings, disclosures, resolutions and ``balance_asserted``. Whatever it does not cover (a
resolution moving an account with a credit line or collateral against it, an event the
registry would refuse...) makes it stop with :class:`Unsupported`, and the replay runs the
reference from the first event instead: a result from this package is never a guess.
``docs/performance.md`` lists what is covered.
"""

from ledger.core.machine import Machine, Unsupported, covers

__all__ = ["Machine", "Unsupported", "covers"]
