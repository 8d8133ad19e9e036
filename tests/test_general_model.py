"""The general model's views on the bundled bank and lender: what a deposit-taker owes, what can
run, what it holds that is liquid, its equity at market and at book (issue 14)."""

from __future__ import annotations

from decimal import Decimal

from ledger.replay import books_at


def test_a_bank_is_shown_by_its_deposits_not_by_custody():
    books = books_at("first-republic-2023", seq=92)  # 2023-03-31, after the run
    assert books.coverage() == []  # no custody shortfall for a bank: it is not a custodian
    (row,) = books.deposits()
    assert row["venue"] == "frb" and row["kind"] == "bank"
    assert row["owed_to_depositors"] == row["insured"] + row["uninsured"]
    assert row["owed_to_depositors"] == books.round_value(books.customer_liabilities("frb"))
    # The books' two equities: the gap is the loss the amortized-cost carrying hid.
    assert row["equity"] < 0 < row["equity_book"]
    assert row["equity_book"] - row["equity"] == books.round_value(books._cost_gap("frb", "amortized_cost"))
    assert row["liquidity_coverage"] == (books.liquid_assets("frb") / books.runoff_outflows("frb")).quantize(
        Decimal("0.0001")
    )
    assert row["capital_ratio"] is not None and row["unpriced"] == {}


def test_a_lender_has_no_capital_ratio_and_is_not_a_custodian():
    books = books_at("voyager-2022")
    (row,) = books.deposits()
    assert (row["venue"], row["kind"], row["capital_ratio"]) == ("voyager", "lender", None)
    assert row["insured"] == 0 and row["uninsured"] == row["owed_to_depositors"]
    assert books.coverage() == []


def test_an_exchange_is_shown_by_custody_not_by_deposits():
    books = books_at("ftx-2022")
    assert books.deposits() == []
    assert {row["venue"] for row in books.coverage()} == {"ftx"}


def test_snapshots_of_an_earlier_books_format_are_stale_not_tampered(tmp_path):
    """A snapshot written before the general model (books state version 2) is skipped by
    readers and reported by verify as stale, to rebuild; the log still verifies (exit 0)."""
    import json
    import sqlite3
    import zlib

    from click.testing import CliRunner

    from ledger.cli import cli

    db = tmp_path / "l.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["replay", "ftx-2022", "--db", str(db)]).exit_code == 1
    assert runner.invoke(cli, ["snapshot", "--db", str(db), "--every", "50"]).exit_code == 0
    derived = sqlite3.connect(tmp_path / "l.derived.db")
    rows = derived.execute("SELECT seq, state FROM snapshots").fetchall()
    assert len(rows) == 3
    for seq, blob in rows:
        state = json.loads(zlib.decompress(blob))
        state["version"] = 2
        derived.execute("UPDATE snapshots SET state = ? WHERE seq = ?", (zlib.compress(json.dumps(state).encode()), seq))
    derived.commit()
    derived.close()
    result = runner.invoke(cli, ["verify", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "0 snapshot(s) match the events, 3 stale" in result.stdout
    assert "snapshot at seq 50 was written in books state version 2" in result.stderr
    balances = runner.invoke(cli, ["balances", "--db", str(db), "--entity", "ftx"])
    assert balances.exit_code == 0 and "unsupported books state version 2" in balances.stderr
