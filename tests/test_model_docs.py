"""The general model's documentation is held to the code: every kind, measure and event type is
named in docs/model.md and docs/timeline-format.md, and every TOML example of the new fields and
events in docs/timeline-format.md builds a valid event."""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path

import pytest

import events as ev
from ledger import kinds

ROOT = Path(__file__).resolve().parent.parent
MODEL = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
FORMAT = (ROOT / "docs" / "timeline-format.md").read_text(encoding="utf-8")
GENERAL = FORMAT.split("## The general model", 1)[1].split("\n## JSON Lines", 1)[0]
NEW_TYPES = (
    "trade",
    "holding_impaired",
    "loan_impaired",
    "deposit_insurance",
    "insurer_payout",
    "resolution",
    "margin_call",
)
DECLARATIONS = {"accounts": "account_opened", "entities": "entity_registered", "assets": "asset_listed"}


def test_every_kind_family_and_measure_is_in_model_md():
    for kind, family in kinds.FAMILY.items():
        row = next(line for line in MODEL.splitlines() if line.startswith(f"| `{family}` |"))
        assert f"`{kind}`" in row, (kind, family)
    for kind in ev.ASSET_KINDS:
        assert f"`{kind}`" in MODEL, kind
    for measure in ev.MEASURES:
        assert f"`{measure}`" in MODEL, measure
    for basis in ev.BASES:
        assert f"`{basis}`" in MODEL, basis


def test_every_new_event_type_has_postings_in_model_md_and_an_example_in_timeline_format():
    table = MODEL.split("## Postings per event", 1)[1].split("\n## ", 1)[0]
    for name in ("trade", "loan_impaired", "insurer_payout", "resolution"):
        assert re.search(rf"^\| `{name}\(", table, flags=re.M), name
    for name in ("holding_impaired", "deposit_insurance", "margin_call"):
        assert f"`{name}`" in table, name  # "no postings" row names them
    for name in NEW_TYPES:
        assert f'type = "{name}"' in GENERAL, name
    for kind in ev.ENTITY_KINDS:
        assert f"`{kind}`" in GENERAL, kind
    for kind in ev.ASSET_KINDS:
        assert f"`{kind}`" in GENERAL, kind


def _examples() -> list[tuple[str, dict]]:
    found = []
    for block in re.findall(r"```toml\n(.*?)```", GENERAL, flags=re.S):
        data = tomllib.loads(block)
        for table, rows in data.items():
            for row in rows:
                kind = row.get("type") if table == "events" else DECLARATIONS[table]
                found.append((kind, row))
    return found


@pytest.mark.parametrize(("kind", "row"), _examples(), ids=lambda x: x if isinstance(x, str) else "")
def test_timeline_format_examples_build_valid_events(kind, row):
    record = {
        "v": 1,
        "id": row.get("id", "example"),
        "at": "2023-03-10T00:00:00Z",
        "source": ["S"],
        **{k: v for k, v in row.items() if k not in ("id",)},
        "type": kind,
    }
    if isinstance(row.get("due"), datetime):  # a TOML date-time, as the loader reads it
        record["due"] = ev.format_instant(row["due"])
    event = ev.from_dict(record)
    assert event.type == kind


def test_the_examples_cover_every_new_event_type_and_field():
    kinds_seen = {kind for kind, _ in _examples()}
    assert set(NEW_TYPES) <= kinds_seen
    fields = {key for _, row in _examples() for key in row}
    for name in ("basis", "liability_class", "depositors", "liquidation_threshold", "pool", "bound", "loan"):
        assert name in fields, name
