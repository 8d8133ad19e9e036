"""ledger.proofs: the Merkle-sum tree, inclusion proofs and their standalone verification.

Known answers are computed here by hand with hashlib and hmac, step by step, from the layout in
docs/proofs.md (never by calling the code under test), and pinned as hex; the pinned values were
derived a second time with openssl, xxd and sha256sum alone (the shell script in docs/proofs.md,
"Known answers"). The tree has four children a node (format v2). Properties: every
proof verifies; the root's sums are the books' customer liabilities to the unit; any single
change of a leaf amount, a sibling hash or a sibling sum fails; a proof from one seq fails
against another seq's root; the incremental tree equals a fresh build at every step.
"""

from __future__ import annotations

import copy
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.books import Books
from ledger.errors import NegativeBalanceError, ProofError, ProofInvalid
from ledger.proofs import (
    MAX_SUM,
    Header,
    Liabilities,
    MerkleSumTree,
    RootTracker,
    format_amount,
    opened_accounts,
    parse_amount,
    verify_inclusion,
    verify_statement,
)
from ledger.testing.strategies import histories

SECRET = b"known-answer venue secret 32 by"
ASSETS = (("BTC", 8), ("USD", 2))


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def amt(*values: int) -> bytes:
    return b"".join(v.to_bytes(16, "big", signed=True) for v in values)


def hand_leaf(account: str, *values: int) -> bytes:
    salt = hmac.new(SECRET, account.encode(), hashlib.sha256).digest()
    return sha(b"\x00", salt, len(account).to_bytes(2, "big"), account.encode(), amt(*values))


def hand_header(leaf_count: int, seq: int = 7, head: bytes = b"\x11" * 32) -> bytes:
    return (
        (4).to_bytes(2, "big") + b"test"
        + (2).to_bytes(2, "big") + b"ex"
        + seq.to_bytes(8, "big") + head
        + leaf_count.to_bytes(8, "big")
        + (2).to_bytes(2, "big")
        + (3).to_bytes(2, "big") + b"BTC" + bytes([8])
        + (3).to_bytes(2, "big") + b"USD" + bytes([2])
    )  # fmt: skip


FOUR = [("ex:a", (5, 100)), ("ex:b", (0, 250)), ("ex:c", (7, 0)), ("ex:d", (1, 1))]
HEADER = Header("test", "ex", 7, b"\x11" * 32, ASSETS)


def test_four_leaf_tree_known_answer():
    la, lb, lc, ld = (hand_leaf(a, *v) for a, v in FOUR)
    # Four leaves: one node above them, H(0x01 || h_a || v_a || h_b || v_b || h_c || v_c || h_d || v_d).
    top = sha(b"\x01", la, amt(5, 100), lb, amt(0, 250), lc, amt(7, 0), ld, amt(1, 1))
    root = sha(b"\x02", hand_header(4), top, amt(13, 351))
    # Pinned: a change of the layout must show here, not only on both sides at once.
    assert la.hex() == "f075839b4be9a11189d4004a09c663433a3650e3dd09f8862e12d4a3715d28ec"
    assert top.hex() == "0b205c9f173cbdcca922920b3e30f2143d304adb7fa4ced74b6a5c64590b5068"
    assert root.hex() == "31db536dc43e2ddba21ec6b1ed4dfd8c375e8ccf32f93091a213d3434e2023d9"

    tree = MerkleSumTree(FOUR, secret=SECRET, assets=["BTC", "USD"])
    assert tree.top() == (top, (13, 351))
    assert tree.root(HEADER) == root
    path = tree.path("ex:c")
    assert [[(p.hash, p.sums) for p in step] for step in path] == [
        [(la, (5, 100)), (lb, (0, 250)), (ld, (1, 1))]
    ]
    assert tree.path_steps("ex:c") == [la + amt(5, 100) + lb + amt(0, 250) + ld + amt(1, 1)]


def test_three_leaf_tree_fills_the_group_with_the_empty_node():
    la, lb, lc = (hand_leaf(a, *v) for a, v in FOUR[:3])
    top = sha(b"\x01", la, amt(5, 100), lb, amt(0, 250), lc, amt(7, 0), bytes(32), amt(0, 0))
    assert top.hex() == "8468a9a20751b0b98858f55522a1358f21bea81baaebd467fbb89ce9666cf1a3"
    tree = MerkleSumTree(FOUR[:3], secret=SECRET, assets=["BTC", "USD"])
    assert tree.top() == (top, (12, 350))
    root = sha(b"\x02", hand_header(3), top, amt(12, 350))
    assert root.hex() == "a34d285e807d154727f87cb7964950679801dfe2933a80f612ca8dd50ae57943"
    assert tree.root(HEADER) == root
    assert tree.path("ex:c")[0][2].hash == bytes(32)


def test_five_leaves_make_two_levels():
    five = [*FOUR, ("ex:e", (2, 3))]
    leaves = [hand_leaf(a, *v) for a, v in five]
    left = sha(
        b"\x01",
        *(h + amt(*v) for h, (_, v) in zip(leaves[:4], five[:4], strict=True)),
    )
    right = sha(b"\x01", leaves[4], amt(2, 3), bytes(32 * 3 + 32 * 3))
    top = sha(b"\x01", left, amt(13, 351), right, amt(2, 3), bytes(64 * 2))
    tree = MerkleSumTree(five, secret=SECRET, assets=["BTC", "USD"])
    assert tree.top() == (top, (15, 354))
    # ex:e's path: its three empty siblings, then the node of the first four and two empty nodes.
    assert tree.path_steps("ex:e") == [bytes(3 * 64), left + amt(13, 351) + bytes(2 * 64)]


def proof_of(tree: MerkleSumTree, header: Header, account: str) -> dict:
    """An inclusion proof as JSON, assembled from the tree's parts."""
    index, salt, amounts = tree.leaf(account)
    _, top_sums = tree.top()

    def sums(values: tuple[int, ...]) -> dict[str, str]:
        return {c: format_amount(v, s) for (c, s), v in zip(header.assets, values, strict=True)}

    return {
        "format": "ftx-ledger proof of liabilities v2",
        "kind": "inclusion",
        "ledger_id": header.ledger_id,
        "venue": header.venue,
        "seq": header.seq,
        "head_hash": header.head_hash.hex(),
        "assets": [{"asset": c, "scale": s} for c, s in header.assets],
        "leaf_count": len(tree),
        "root": tree.root(header).hex(),
        "totals": sums(top_sums),
        "account": account,
        "index": index,
        "salt": salt.hex(),
        "balances": sums(amounts),
        "path": [
            b"".join(p.hash + amt(*p.sums) for p in step).hex() for step in tree.path(account)
        ],
    }


def test_hand_built_proof_verifies_and_states_what_it_shows():
    tree = MerkleSumTree(FOUR, secret=SECRET, assets=["BTC", "USD"])
    proof = proof_of(tree, HEADER, "ex:b")
    result = verify_inclusion(proof, tree.root(HEADER).hex())
    assert result.balances == {"BTC": 0, "USD": 250}
    assert result.totals == {"BTC": 13, "USD": 351}
    assert proof["balances"] == {"BTC": "0.00000000", "USD": "2.50"}


def test_negative_leaves_are_refused_by_name():
    with pytest.raises(NegativeBalanceError, match=r"ex:b -3 USD.*ex:d -1 BTC") as info:
        MerkleSumTree(
            [("ex:a", (1, 1)), ("ex:b", (0, -3)), ("ex:d", (-1, 0))],
            secret=SECRET,
            assets=["BTC", "USD"],
        )
    assert info.value.balances == [("ex:b", "USD", "-3"), ("ex:d", "BTC", "-1")]
    tree = MerkleSumTree(FOUR, secret=SECRET, assets=["BTC", "USD"])
    with pytest.raises(NegativeBalanceError, match="dummy-user"):
        tree.update("ex:a", (0, -1))


def test_totals_beyond_the_widest_amount_are_refused():
    assert MAX_SUM == 2**120 - 1
    with pytest.raises(ProofError, match=r"more than a proof's amounts may be \(2\^120 - 1"):
        MerkleSumTree(
            [("ex:a", (MAX_SUM, 0)), ("ex:b", (1, 0))], secret=SECRET, assets=["BTC", "USD"]
        )
    MerkleSumTree(
        [("ex:a", (MAX_SUM - 1, 0)), ("ex:b", (1, 0))], secret=SECRET, assets=["BTC", "USD"]
    )


def test_amount_text_round_trips_and_refuses_extra_decimals():
    assert format_amount(-5, 2) == "-0.05" and parse_amount("-0.05", 2, "x") == -5
    assert format_amount(12345, 0) == "12345" and parse_amount("1.5", 2, "x") == 150
    for bad in ("1.001", " 1", "+1", "1e3", "01", 1):
        with pytest.raises(ProofInvalid):
            parse_amount(bad, 2, "x")
    # Written with every decimal of the scale (as proofs write them): the digits are the units.
    assert [parse_amount(t, 2, "x") for t in ("0.50", "10.05", "0.00", "1234.56")] == [
        50,
        1005,
        0,
        123456,
    ]
    for bad in ("00.50", "01.00", "1..00", ".100", "1.0a", "\u0661.00", " 1.00", "1.00 ", "+1.00"):
        with pytest.raises(ProofInvalid):
            parse_amount(bad, 2, "x")


leaf_sets = st.integers(1, 3).flatmap(
    lambda width: st.lists(
        st.tuples(st.integers(0, 10**34), st.integers(0, 10**34), st.integers(0, 10**34)).map(
            lambda t: t[:width]
        ),
        min_size=1,
        max_size=40,
    )
)


def build(amounts: list[tuple[int, ...]], seq: int = 7) -> tuple[MerkleSumTree, Header]:
    width = len(amounts[0])
    assets = (("BTC", 8), ("ETH", 18), ("USD", 2))[:width]
    leaves = [(f"ex:c{i}", a) for i, a in enumerate(amounts)]
    header = Header("test", "ex", seq, b"\x22" * 32, assets)
    return MerkleSumTree(leaves, secret=SECRET, assets=[c for c, _ in assets]), header


@given(leaf_sets)
def test_every_customers_proof_verifies_and_the_root_sums_are_the_leaves_sums(amounts):
    tree, header = build(amounts)
    root = tree.root(header).hex()
    expected = {c: sum(a[k] for a in amounts) for k, (c, _) in enumerate(header.assets)}
    for account in tree.accounts:
        assert verify_inclusion(proof_of(tree, header, account), root).totals == expected


def _mutations(proof: dict) -> list[tuple[str, dict]]:
    out = []
    asset = proof["assets"][0]["asset"]
    scale = proof["assets"][0]["scale"]
    changed = copy.deepcopy(proof)
    changed["balances"][asset] = format_amount(
        parse_amount(changed["balances"][asset], scale, "") + 1, scale
    )
    out.append(("leaf amount", changed))
    size = 32 + 16 * len(proof["assets"])  # a sibling's record; a step holds three
    for level in range(len(proof["path"])):
        step = bytes.fromhex(proof["path"][level])
        for n in range(3):
            at = n * size
            flipped = copy.deepcopy(proof)
            h = bytearray(step)
            h[at + level % 32] ^= 0x01
            flipped["path"][level] = h.hex()
            out.append((f"sibling {n} hash {level}", flipped))
            summed = copy.deepcopy(proof)
            old = int.from_bytes(step[at + 32 : at + 48], "big", signed=True)
            new = old + 1 if old == 0 else old - 1
            summed["path"][level] = (step[: at + 32] + amt(new) + step[at + 48 :]).hex()
            out.append((f"sibling {n} sum {level}", summed))
    return out


@given(leaf_sets.filter(lambda a: len(a) >= 2), st.data())
def test_any_single_change_breaks_verification(amounts, data):
    tree, header = build(amounts)
    root = tree.root(header).hex()
    account = data.draw(st.sampled_from(tree.accounts))
    proof = proof_of(tree, header, account)
    for what, changed in _mutations(proof):
        with pytest.raises(ProofInvalid):
            verify_inclusion(changed, root)
        # ... even when the tamperer also drops the root and totals the proof states.
        del changed["root"], changed["totals"]
        with pytest.raises(ProofInvalid, match=r"hashes to root|negative|empty node") as info:
            verify_inclusion(changed, root)
        assert info.value.kind in ("wrong-root", "negative-sum", "path-shape"), what


def test_a_negative_sibling_sum_is_named():
    tree, header = build([(5,), (3,), (2,)])
    proof = proof_of(tree, header, "ex:c0")
    step = bytes.fromhex(proof["path"][0])  # ex:c1, ex:c2 and the empty node, 48 bytes each
    proof["path"][0] = (step[:80] + amt(-3) + step[96:]).hex()
    with pytest.raises(
        ProofInvalid, match=r"path\[0\]: sibling 1's sums are negative \(-0.00000003 BTC\)"
    ) as info:
        verify_inclusion(proof, tree.root(header).hex())
    assert info.value.kind == "negative-sum"


def test_a_sibling_sum_past_the_widest_amount_is_refused():
    tree, header = build([(5,), (3,)])
    proof = proof_of(tree, header, "ex:c0")
    step = bytes.fromhex(proof["path"][0])
    proof["path"][0] = (step[:32] + amt(2**120) + step[48:]).hex()
    with pytest.raises(ProofInvalid, match=r"sibling 0's sums pass 2\^120 - 1") as info:
        verify_inclusion(proof, tree.root(header).hex())
    assert info.value.kind == "path-shape"


def test_a_filled_up_slot_must_hold_the_empty_node():
    tree, header = build([(5,), (3,)])
    proof = proof_of(tree, header, "ex:c0")
    step = bytearray.fromhex(proof["path"][0])
    step[-1] = 1  # the last slot of a 2-leaf tree's only group is the empty node
    proof["path"][0] = step.hex()
    with pytest.raises(ProofInvalid, match=r"its last 2 sibling\(s\) must be empty") as info:
        verify_inclusion(proof, tree.root(header).hex())
    assert info.value.kind == "path-shape"


def test_an_older_format_is_refused_by_name():
    tree, header = build([(5,), (3,)])
    proof = proof_of(tree, header, "ex:c0")
    proof["format"] = "ftx-ledger proof of liabilities v1"
    with pytest.raises(ProofInvalid, match=r"'ftx-ledger proof of liabilities v1' is a version"):
        verify_inclusion(proof, tree.root(header).hex())
    proof["format"] = "something else"
    with pytest.raises(ProofInvalid, match="not a proof of liabilities"):
        verify_inclusion(proof, tree.root(header).hex())


@given(leaf_sets, st.data())
def test_a_proof_from_one_seq_fails_against_another_seqs_root(amounts, data):
    tree, header = build(amounts, seq=7)
    later, later_header = build([tuple(a + 1 for a in amounts[0]), *amounts[1:]], seq=8)
    account = data.draw(st.sampled_from(tree.accounts))
    proof = proof_of(tree, header, account)
    with pytest.raises(ProofInvalid, match="hashes to root") as info:
        verify_inclusion(proof, later.root(later_header).hex())
    assert info.value.kind == "wrong-root"
    with pytest.raises(ProofInvalid, match="the root was published for seq 8"):
        verify_inclusion(proof, tree.root(header).hex(), seq=8)
    # The root commits to the point: even the same balances at another seq do not verify.
    same, same_header = build(amounts, seq=8)
    with pytest.raises(ProofInvalid):
        verify_inclusion(proof, same.root(same_header).hex())


@given(leaf_sets, st.data())
def test_updates_and_appends_equal_a_fresh_build(amounts, data):
    tree, header = build(amounts[:1])
    for a in amounts[1:]:
        tree.update(f"ex:c{len(tree)}", a)
    current = list(amounts)
    for _ in range(data.draw(st.integers(0, 8))):
        i = data.draw(st.integers(0, len(current) - 1))
        current[i] = tuple(data.draw(st.integers(0, 10**34)) for _ in current[i])
        tree.update(f"ex:c{i}", current[i])
    fresh, _ = build(current)
    assert tree.levels == fresh.levels
    assert tree.root(header) == fresh.root(header)


# -- from the books ---------------------------------------------------------------------------


def liabilities(events: list, books: Books, secret: bytes = SECRET) -> Liabilities:
    accounts = opened_accounts(events, "ex", seq=books.last_seq)
    return Liabilities.from_books(
        books, "ex", secret=secret, accounts=accounts, ledger_id="t", head_hash=bytes(32)
    )


@given(histories(max_events=30))
def test_root_sums_are_the_books_customer_liabilities_to_the_unit(events):
    books = Books()
    for seq, event in enumerate(events, start=1):
        books.apply(event, seq=seq)
    found = liabilities(events, books)
    for code, total in found.totals().items():
        assert total == books.cust_liab.get(("ex", code), 0), code
    negative = {(r.account, r.asset): r.minor for r in found.refused}
    for (entity, account, asset), minor in books.balances.items():
        if entity == "ex" and books.registry.accounts.get(f"ex:{account}", None) is not None:
            if books.registry.accounts[f"ex:{account}"].purpose == "customer" and -minor < 0:
                assert negative.pop((f"ex:{account}", asset)) == -minor
    assert negative == {}
    statement = found.statement()
    assert verify_statement(statement) == found.root
    for account in found.tree.accounts:
        verify_inclusion(found.inclusion(account), statement)


@given(histories(max_events=30))
def test_the_root_kept_at_every_step_equals_a_fresh_build(events):
    books = Books()
    tracker = RootTracker("ex", secret=SECRET, books=books)
    for seq, event in enumerate(events, start=1):
        change = books.apply(event, seq=seq)
        tracker.observe(books, event, change)
        found = liabilities(events, books)
        assert tracker.root("t", seq, bytes(32)) == found.root, (seq, event)
        assert sorted(tracker.refused.values(), key=repr) == sorted(found.refused, key=repr)


def test_salts_hide_balances_behind_the_secret():
    tree, _ = build([(5,), (3,)])
    other = MerkleSumTree(
        [("ex:c0", (5,)), ("ex:c1", (3,))], secret=b"another secret!!", assets=["BTC"]
    )
    assert tree.leaf("ex:c0")[1] != other.leaf("ex:c0")[1]
    assert tree.top()[0] != other.top()[0]
    with pytest.raises(ProofError, match="non-empty bytes"):
        MerkleSumTree([], secret=b"", assets=["BTC"])


def test_long_and_non_ascii_ids_three_assets_and_a_long_secret_hash_as_documented():
    # The build's fast paths (a table of u16 lengths below 256 bytes, the packed sums of three
    # assets, the HMAC pads of a key longer than a block) against the layout computed by hand.
    secret = bytes(range(100))  # longer than SHA-256's 64-byte block: HMAC hashes it first
    ids = ["ex:" + "x" * 300, "ex:zoë", "ex:" + "é" * 126, "ex:b"]  # 303, 7, 255, 4 bytes
    values = [(1, 2**119, 3), (0, 0, 0), (7, 5, 2**100), (2**119, 1, 1)]
    tree = MerkleSumTree(list(zip(ids, values)), secret=secret, assets=["BTC", "ETH", "USD"])
    records = []
    for account, v in zip(ids, values, strict=True):
        name = account.encode()
        salt = hmac.new(secret, name, hashlib.sha256).digest()
        records.append(sha(b"\x00", salt, len(name).to_bytes(2, "big"), name, amt(*v)) + amt(*v))
    assert bytes(tree.levels[0]) == b"".join(records)
    assert tree.top() == (sha(b"\x01", *records), (2**119 + 8, 2**119 + 6, 2**100 + 4))
    assert [tree.leaf(a)[1] for a in ids] == [
        hmac.new(secret, a.encode(), hashlib.sha256).digest() for a in ids
    ]


def test_stated_totals_must_be_the_paths_sums_however_often_they_are_read():
    # The verifier reads a tree's totals once and reuses them (every proof of a tree states the
    # same); a changed or malformed statement must still fail, before and after a good one.
    tree = MerkleSumTree(FOUR, secret=SECRET, assets=["BTC", "USD"])
    root = tree.root(HEADER).hex()
    good = proof_of(tree, HEADER, "ex:a")
    changed = copy.deepcopy(good)
    del changed["root"]  # so that the totals are what is checked
    changed["totals"]["USD"] = "3.52"
    for proof in (changed, good, changed):
        if proof is good:
            assert verify_inclusion(proof, root).totals == {"BTC": 13, "USD": 351}
            continue
        with pytest.raises(
            ProofInvalid,
            match=r"states 0.00000013 BTC, 3.52 USD but its path adds up to 0.00000013 BTC, 3.51 USD",
        ) as info:
            verify_inclusion(proof, root)
        assert info.value.kind == "totals"
    unhashable = copy.deepcopy(good)
    unhashable["totals"]["USD"] = ["3.51"]
    with pytest.raises(ProofInvalid, match=r"totals.USD: expected a decimal string"):
        verify_inclusion(unhashable, root)
