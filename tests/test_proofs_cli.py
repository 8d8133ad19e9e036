"""`bankrun proof` on ftx-2022, and the reserves invariant behind `proof_of_reserves = true`.

At 2022-06-30, 2022-11-06 and 2022-11-08 (end of day), what FTX owed its customers against its
segregated reserves, the figures docs/proofs.md quotes; Alameda's negative accounts refused by
name; verification failing with its reason and exit status 3.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import replays
from ledger.cli import cli
from ledger.errors import InputError
from ledger.invariants import standard_invariants
from ledger.policy import Policy
from ledger.proofs import reserves_at
from ledger.replay import books_at, replay
from ledger.store import Log

JUNE, RUN, COLLAPSE = "2022-06-30T23:59:59Z", "2022-11-06T23:59:59Z", "2022-11-08T23:59:59Z"


@pytest.fixture(scope="module")
def ftx(tmp_path_factory):
    folder = tmp_path_factory.mktemp("proofs")
    db = folder / "ftx.db"
    with Log.open(db, create=True) as log:
        log.append(replays.load_timeline("ftx-2022").events)
    key = folder / "venue.key"
    key.write_bytes(b"an investigator's secret for ftx")
    return folder, str(db), str(key)


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def publish(ftx, at: str, name: str) -> tuple[dict, dict]:
    folder, db, key = ftx
    statement, proof = folder / f"{name}-liabilities.json", folder / f"{name}-customers.json"
    out = run(
        "proof",
        "liabilities",
        "--db",
        db,
        "--venue",
        "ftx",
        "--at",
        at,
        "--secret-file",
        key,
        "-o",
        str(statement),
    )
    assert out.exit_code == 1, out.output  # Alameda's negative accounts are refused
    out2 = run(
        "proof",
        "inclusion",
        "customers",
        "--db",
        db,
        "--venue",
        "ftx",
        "--at",
        at,
        "--secret-file",
        key,
        "-o",
        str(proof),
    )
    assert out2.exit_code == 0, out2.output
    return json.loads(statement.read_text()), json.loads(proof.read_text())


@pytest.mark.parametrize(
    ("at", "seq", "usdc_owed", "usdc_custody", "alameda_usdc", "ratio"),
    [
        (JUNE, 94, "5100000000.00", "2100000000", "-3000000000.00", "0.1571"),
        (RUN, 130, "1100000000.00", "200000000", "-900000000.00", "0.0215"),
        (COLLAPSE, 146, "910000000.00", "10000000", "-900000000.00", "0.0011"),
    ],
)
def test_ftx_liabilities_against_reserves(
    ftx, at, seq, usdc_owed, usdc_custody, alameda_usdc, ratio
):
    db = ftx[1]
    statement, _ = publish(ftx, at, str(seq))
    assert statement["seq"] == seq
    assert statement["totals"]["USD"] == "8000000000.00"
    assert statement["totals"]["USDC"] == usdc_owed
    refused = {(r["account"], r["asset"]): r["balance"] for r in statement["refused"]}
    assert refused == {
        ("ftx:alameda", "USDC"): alameda_usdc,
        ("ftx:fiat-at", "USD"): "-8000000000.00",
    }
    out = run("proof", "reserves", "--db", db, "--venue", "ftx", "--at", at, "--format", "json")
    assert out.exit_code == 1
    data = json.loads(out.output)
    lines = {line["asset"]: line for line in data["assets"]}
    assert lines["USDC"]["custody"] == usdc_custody and lines["USD"]["custody"] == "0"
    assert data["ratio"] == ratio and data["covered"] is False
    # The statement's totals are the reserves statement's liabilities.
    assert lines["USDC"]["owed"] == usdc_owed.removesuffix(".00")


def test_liabilities_names_the_dummy_users_and_what_netting_them_would_have_shown(ftx):
    folder, db, key = ftx
    out = run(
        "proof",
        "liabilities",
        "--db",
        db,
        "--venue",
        "ftx",
        "--at",
        JUNE,
        "--secret-file",
        key,
        "-o",
        str(folder / "x.json"),
    )
    assert out.exit_code == 1
    assert "refused: ftx:alameda (holder alameda) at -3,000,000,000.00 USDC" in out.output
    assert "refused: ftx:fiat-at (holder alameda) at -8,000,000,000.00 USD" in out.output
    # With Alameda counted as a leaf, FTX's USDC liabilities would have equalled its 2.1B custody.
    assert "would have lowered the total owed to 0.00 USD, 2,100,000,000.00 USDC" in out.output


def test_json_to_standard_output_and_the_summary_to_standard_error(ftx):
    _, db, key = ftx
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["proof", "liabilities", "--db", db, "--venue", "ftx", "--seq", "10", "--secret-file", key],
    )
    assert json.loads(out.stdout)["seq"] == 10
    assert "customer account(s), root" in out.stderr


def test_verify_ok_and_each_failure_with_its_reason(ftx, tmp_path):
    june, june_proof = publish(ftx, JUNE, "v-june")
    later, _ = publish(ftx, COLLAPSE, "v-later")
    (tmp_path / "proof.json").write_text(json.dumps(june_proof))
    (tmp_path / "june.json").write_text(json.dumps(june))
    (tmp_path / "later.json").write_text(json.dumps(later))
    ok = run("proof", "verify", str(tmp_path / "proof.json"), "--root", june["root"])
    assert ok.exit_code == 0, ok.output
    assert "OK: ftx:customers is included in the liabilities of ftx at seq 94" in ok.output
    assert "8,000,000,000.00 USD, 5,100,000,000.00 USDC" in ok.output
    assert (
        run(
            "proof", "verify", str(tmp_path / "proof.json"), "--root", str(tmp_path / "june.json")
        ).exit_code
        == 0
    )

    def fails(proof: dict, root: str, *extra: str) -> str:
        (tmp_path / "bad.json").write_text(json.dumps(proof))
        out = run("proof", "verify", str(tmp_path / "bad.json"), "--root", root, *extra)
        assert out.exit_code == 3, out.output
        return out.output

    changed = json.loads(json.dumps(june_proof))
    changed["balances"]["USD"] = "8000000001.00"
    assert "an amount, salt, hash or sum in it was changed" in fails(changed, june["root"])
    negative = json.loads(json.dumps(june_proof))
    # The step holds the records of ftx:customers' three siblings (ftx:alameda, ftx:fiat-at and
    # the empty node); the second's last sum (USDC) set to -1.00: 16 bytes, two's complement.
    step = bytes.fromhex(negative["path"][0])
    end = 2 * len(step) // 3
    negative["path"][0] = (
        step[: end - 16] + (-100).to_bytes(16, "big", signed=True) + step[end:]
    ).hex()
    assert "sibling 1's sums are negative (-1.00 USDC)" in fails(negative, june["root"])
    assert "not to " + later["root"] in fails(june_proof, later["root"])
    other_seq = fails(june_proof, str(tmp_path / "later.json"))
    assert (
        "the proof is from seq 94 (head " in other_seq and "the root is from seq 146" in other_seq
    )
    assert "the root was published for seq 146" in fails(june_proof, june["root"], "--seq", "146")


def test_bad_input_is_one_line_and_exit_2(ftx, tmp_path):
    _, db, key = ftx
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    cases = [
        (
            ["proof", "liabilities", "--db", db, "--venue", "nobody", "--secret-file", key],
            "unknown entity 'nobody'",
        ),
        (
            ["proof", "inclusion", "treasury", "--db", db, "--venue", "ftx", "--secret-file", key],
            "'ftx:treasury' is not a customer account of ftx",
        ),
        (
            ["proof", "liabilities", "--db", db, "--venue", "ftx", "--secret-file", str(short)],
            "the secret has 3 bytes",
        ),
        (
            ["proof", "reserves", "--db", db, "--venue", "ftx", "--at", "2022-06-30", "--seq", "3"],
            "name one point",
        ),
        (["proof", "verify", key, "--root", "0" * 64], "the proof is not JSON"),
    ]
    for args, message in cases:
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 2, (args, out.output)
        assert message in out.output


def test_reserves_text_states_the_verdict(ftx):
    _, db, _ = ftx
    out = run("proof", "reserves", "--db", db, "--venue", "ftx", "--at", COLLAPSE)
    assert out.exit_code == 1
    assert (
        "not a liability: ftx:alameda (holder alameda) owes the venue 900,000,000.00 USDC"
        in out.output
    )
    assert (
        "(9,800,000.00 USD) are 0.0011 of the 8,910,000,000.00 USD it owes customers: NOT covered"
        in out.output
    )


def test_reserves_covered_before_the_first_customer_deposit(ftx):
    _, db, _ = ftx
    out = run("proof", "reserves", "--db", db, "--venue", "ftx", "--seq", "30")
    assert out.exit_code == 0, out.output
    assert "owes its customers nothing" in out.output


def test_policy_switch_checks_reserves_at_every_step():
    assert "reserves-cover-liabilities" not in [i.name for i in standard_invariants(Policy())]
    policy = Policy.from_dict({"proof_of_reserves": True})
    assert [i.name for i in standard_invariants(policy)][-1] == "reserves-cover-liabilities"
    summary = replay("ftx-2022", policy).run()
    first = summary.first_breaches["reserves-cover-liabilities"]
    assert (first.seq, first.subject) == (38, "ftx/USD")
    # USDC held one for one passes segregation but not reserves after the 2% stablecoin haircut.
    usdc = [
        v
        for v in summary.still_open
        if v.invariant == "reserves-cover-liabilities" and v.subject == "ftx/USDC"
    ]
    seg = [
        v for v in summary.still_open if v.invariant == "segregation" and v.subject == "ftx/USDC"
    ]
    assert usdc[0].seq < seg[0].seq
    # The invariant agrees with the reserves statement at every checked point.
    for seq in (39, 94, 146):
        books = books_at("ftx-2022", policy=policy, seq=seq)
        line = {x.asset: x for x in reserves_at(books, "ftx").lines}["USDC"]
        assert line.covered is False
    with pytest.raises(InputError, match="proof_of_reserves: must be true or false"):
        Policy.from_dict({"proof_of_reserves": "yes"})


def test_proof_group_is_documented():
    out = run("proof", "--help")
    for verb in ("liabilities", "inclusion", "verify", "reserves"):
        assert verb in out.output
