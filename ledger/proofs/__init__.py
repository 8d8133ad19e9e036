"""Proof of liabilities and reserves at any point of a replayed history.

A Merkle-sum tree over a venue's customer accounts (Maxwell's scheme with the fix of Hu, Zhang
and Guo, 2018: each node hashes its children's hashes and sums separately, and every sum must be
non-negative), inclusion proofs a customer verifies without the log, the root kept current at
every replay step, and the reserves statement. See ``docs/proofs.md``.
"""

from ledger.proofs._reserves import ReserveLine, ReservesStatement, reserves_at
from ledger.proofs._tree import (
    MAX_SUM,
    Header,
    MerkleSumTree,
    PathStep,
    leaf_hash,
    root_hash,
    salt_for,
)
from ledger.proofs._venue import (
    Liabilities,
    Refusal,
    RootTracker,
    head_hash_at,
    inclusion_proof,
    liabilities_at,
    opened_accounts,
    roots,
    venue_leaves,
)
from ledger.proofs._verify import (
    FORMAT,
    Verified,
    format_amount,
    parse_amount,
    verify_inclusion,
    verify_statement,
)

__all__ = [
    "FORMAT",
    "MAX_SUM",
    "Header",
    "Liabilities",
    "MerkleSumTree",
    "PathStep",
    "Refusal",
    "ReserveLine",
    "ReservesStatement",
    "RootTracker",
    "Verified",
    "format_amount",
    "head_hash_at",
    "inclusion_proof",
    "leaf_hash",
    "liabilities_at",
    "opened_accounts",
    "parse_amount",
    "reserves_at",
    "root_hash",
    "roots",
    "salt_for",
    "venue_leaves",
    "verify_inclusion",
    "verify_statement",
]
