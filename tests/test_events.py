"""The vocabulary: canonical JSON round trips for every event type, exact money, instants,
identifier hygiene (NFC, control characters, lone surrogates)."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import START, amounts, any_event, event_of, identifiers

import events as ev
from events import EventValueError

ALL_TYPES = [
    "account_opened", "asset_listed", "balance_asserted", "bankruptcy_filed",
    "collateral_pledged", "collateral_released", "collateral_seized", "credit_line_granted",
    "deposit", "disclosure", "entity_registered", "loan_defaulted", "loan_opened", "loan_repaid",
    "price_updated", "tokens_minted", "transfer", "withdrawal", "withdrawals_halted",
    "withdrawals_resumed",
    # the general model
    "deposit_insurance", "holding_impaired", "insurer_payout", "loan_impaired", "margin_call",
    "resolution", "trade",
]


def dep(**overrides):
    fields = {
        "id": "d1", "at": START, "source": ["S"], "account": "ex:cust", "asset": "USD",
        "amount": "10.50", "landed": "ex:custody",
    }
    fields.update(overrides)
    return ev.Deposit(**fields)


def test_the_vocabulary_is_the_one_these_tests_cover():
    assert sorted(ev.EVENT_TYPES) == sorted(ALL_TYPES)


# -- canonical JSON ---------------------------------------------------------------------------
def _json_types_only(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_types_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_types_only(v) for v in value)
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


@pytest.mark.parametrize("type_name", ALL_TYPES)
@given(data=st.data())
def test_codec_round_trip_for_every_type(type_name, data):
    event = data.draw(event_of(type_name))
    assert event.type == type_name
    text = ev.canonical_json(event)
    back = ev.from_json(text)
    assert back == event
    assert type(back) is type(event)
    # Stable: decoding and encoding again gives the very same bytes.
    assert ev.canonical_json(back) == text
    assert ev.canonical_bytes(event) == text.encode("utf-8")
    assert ev.from_json(text.encode("utf-8")) == event
    assert ev.from_dict(ev.to_dict(event)) == event
    assert ev.log_record(event) == (text, ev.format_instant(event.at))
    # The log's reader (no re-validation) rebuilds the very same event from canonical bytes.
    stored = ev.from_stored(text)
    assert stored == event and type(stored) is type(event)
    assert ev.from_stored(text.encode("utf-8")) == event
    # Canonical form: sorted keys, no spaces, version tag, only strings and ints (no floats).
    decoded = json.loads(text)
    assert list(decoded) == sorted(decoded)
    assert text == json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert decoded["type"] == type_name and decoded["v"] == ev.SCHEMA_VERSION
    assert _json_types_only(decoded)
    assert None not in decoded.values()


@given(any_event())
def test_canonical_json_does_not_depend_on_how_the_event_was_spelled(event):
    # Rebuilding from the canonical dict with values re-spelled (amount strings with trailing
    # zeros, instants in another offset) gives the same canonical bytes.
    data = ev.to_dict(event)
    respelled = dict(data)
    for key, value in data.items():
        if key in ("amount", "principal", "price", "limit", "credited") and "." not in value:
            respelled[key] = value + ".000"
        if key == "at":
            respelled[key] = event.at.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    assert ev.canonical_json(ev.from_dict(respelled)) == ev.canonical_json(event)


def test_canonical_json_golden_bytes():
    event = dep(note="Résumé\u2028line", at=datetime(2022, 11, 8, 15, 30, tzinfo=timezone(timedelta(hours=1))))
    assert ev.canonical_json(event) == (
        '{"account":"ex:cust","amount":"10.5","asset":"USD","at":"2022-11-08T14:30:00Z",'
        '"id":"d1","landed":"ex:custody","note":"Résumé\u2028line","source":["S"],'
        '"type":"deposit","v":1}'
    )


def test_canonical_bytes_equal_the_standard_library_encoding_for_every_character_class():
    # orjson encodes; the definition of the canonical form is the standard library's
    # json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False).
    text = "".join(chr(c) for c in range(1, 0x250)) + "\u2028\u2029\ufeff\U0001f600\"\\/"
    event = dep(note=text)
    reference = json.dumps(ev.to_dict(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert ev.canonical_bytes(event) == reference.encode("utf-8")
    assert ev.from_stored(ev.canonical_bytes(event)) == event


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"type":"no_such_type","v":1}',
        b'{"type":"deposit","v":2}',
        b'{"type":"deposit","v":1,"id":"d"}',
        b'{"account":"ex:c","amount":10.5,"asset":"USD","at":"2022-01-01T00:00:00Z","id":"d","landed":"ex:k","source":["S"],"type":"deposit","v":1}',
        b'{"account":"ex:c","amount":"1","asset":"USD","at":"2022-01-01T00:00:00","id":"d","landed":"ex:k","source":["S"],"type":"deposit","v":1}',
    ],
)
def test_from_stored_refuses_what_is_not_a_stored_payload(payload):
    with pytest.raises((EventValueError, ValueError, ArithmeticError, KeyError, TypeError, AttributeError)):
        ev.from_stored(payload)


def test_microseconds_are_kept_and_only_when_present():
    assert ev.to_dict(dep(at=datetime(2022, 1, 1, 0, 0, 0, 5, tzinfo=UTC)))["at"] == "2022-01-01T00:00:00.000005Z"
    assert ev.to_dict(dep(at=datetime(2022, 1, 1, tzinfo=UTC)))["at"] == "2022-01-01T00:00:00Z"


def test_instants_before_year_1000_round_trip():
    event = dep(at=datetime(5, 3, 1, 12, 0, tzinfo=UTC))
    assert ev.to_dict(event)["at"] == "0005-03-01T12:00:00Z"
    assert ev.from_json(ev.canonical_json(event)) == event


def test_instant_out_of_range_in_utc_is_a_field_error():
    with pytest.raises(EventValueError, match=r"^at: .*out of range"):
        dep(at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    with pytest.raises(EventValueError, match=r"^at: .*out of range"):
        dep(at="0001-01-01T00:00:00+01:00")


def test_diff_fields_names_type_first_then_sorted():
    a = dep()
    assert ev.diff_fields(a, a) == []
    assert ev.diff_fields(a, dep(amount="11", note="x")) == ["amount", "note"]
    other = ev.Withdrawal(id="d1", at=START, source=["S"], account="ex:cust", asset="USD", amount="10.5", paid_from="ex:custody")
    assert ev.diff_fields(a, other)[0] == "type"


# -- strict decoding --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("account"), r"^account: required$"),
        (lambda d: d.update(amout="5"), r"^amout: unknown field for deposit"),
        (lambda d: d.update(type="deposlt"), r"^type: unknown event type 'deposlt'; expected one of: account_opened, "),
        (lambda d: d.pop("type"), r"^type: required$"),
        (lambda d: d.update(v=99), r"^v: unsupported schema_version 99 \(supported: 1\)$"),
        (lambda d: d.update(v=True), r"^v: unsupported schema_version True"),
        (lambda d: d.update(id=17), r"^id: expected a string, got int$"),
        (lambda d: d.update(amount=[1]), r"^amount: expected integer or decimal string, got list$"),
        (lambda d: d.update(at="2022-01-01T00:00:00"), r"^at: timestamp must include a UTC offset"),
        (lambda d: d.update(source=[]), r"^source: at least one source key is required"),
        (lambda d: d.update(source=["S", "S"]), r"^source: repeated source key$"),
    ],
)
def test_from_dict_refuses_malformed_records_naming_the_field(mutate, message):
    data = ev.to_dict(dep())
    mutate(data)
    with pytest.raises(EventValueError, match=message):
        ev.from_dict(data)


def test_asset_scale_must_be_an_integer_in_range():
    base = {"id": "a", "at": START, "source": ["S"], "asset": "USD", "name": "US dollar", "kind": "fiat"}
    assert ev.AssetListed(**base, scale=18).scale == 18
    for bad, text in ((19, "between 0 and 18"), (-1, "between 0 and 18"), (True, "got bool"), (Decimal(2), "got Decimal")):
        with pytest.raises(EventValueError, match=f"^scale: .*{text}"):
            ev.AssetListed(**base, scale=bad)


def test_from_json_refuses_non_finite_constants():
    text = ev.canonical_json(dep()).replace('"amount":"10.5"', '"amount":NaN')
    with pytest.raises(EventValueError, match=r"non-finite number not allowed \(NaN\)"):
        ev.from_json(text)


def test_json_number_with_a_fraction_is_read_exactly_never_as_a_float():
    text = ev.canonical_json(dep()).replace('"amount":"10.5"', '"amount":0.1')
    event = ev.from_json(text)
    assert event.amount == Decimal("0.1") and isinstance(event.amount, Decimal)
    assert ev.to_minor(event.amount, 2) == 10


# -- money ------------------------------------------------------------------------------------
def test_float_amounts_are_refused_with_advice():
    with pytest.raises(EventValueError, match=r'^amount: floats are not exact money; write the amount as a decimal string \(for example "0.1"\)$'):
        dep(amount=0.1)


def test_bool_amounts_are_refused():
    with pytest.raises(EventValueError, match=r"^amount: expected integer or decimal string, got bool$"):
        dep(amount=True)


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-Infinity", "inf", "sNaN"])
def test_non_finite_spellings_are_refused(value):
    with pytest.raises(EventValueError, match=r"^amount: expected integer or decimal string"):
        dep(amount=value)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("sNaN")])
def test_non_finite_decimals_are_refused(value):
    with pytest.raises(EventValueError, match=r"^amount: non-finite number not allowed"):
        dep(amount=value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(-5, "-5"), (0, "0"), ("0", "0"), ("0.00", "0.00"), ("-0", "-0"), (Decimal("-0"), "-0"), ("-0.01", "-0.01"), (Decimal("-0.0"), "-0.0")],
)
def test_zero_and_negative_amounts_are_refused(value, shown):
    with pytest.raises(EventValueError, match=rf"^amount: amount must be > 0, got {shown}$"):
        dep(amount=value)


@pytest.mark.parametrize("value", ["1e5", "1E5", "1_000", " ", "", "0x10", "١٢", "1.2.3", "+", ".", "--1"])
def test_only_plain_decimal_notation_is_accepted(value):
    with pytest.raises(EventValueError, match=r"^amount: expected integer or decimal string"):
        dep(amount=value)


@pytest.mark.parametrize(("value", "expected"), [("+1", "1"), (".5", "0.5"), ("5.", "5"), ("2.50", "2.5"), ("0010.100", "10.1"), (7, "7")])
def test_accepted_spellings_normalise(value, expected):
    assert ev.to_dict(dep(amount=value))["amount"] == expected


@pytest.mark.parametrize("value", [" 2.50", "2.50 ", " 2.50 ", "\t7", "7\n", "\u00a07", "7\u2003", "-1 "])
def test_amounts_with_surrounding_white_space_are_refused_not_stripped(value):
    # The record says exactly what it says: " 2.50" is not quietly read as 2.50.
    with pytest.raises(EventValueError, match=r"^amount: .* has leading or trailing white space; write the number alone$"):
        dep(amount=value)


@pytest.mark.parametrize("field", ["expected", "tolerance"])
def test_every_decimal_field_refuses_surrounding_white_space(field):
    fields = {"entity": "ex", "measure": "balance", "account": "ex:cust", "asset": "USD", "expected": "1", "tolerance": "0"}
    with pytest.raises(EventValueError, match=rf"^{field}: ' 1' has leading or trailing white space"):
        ev.BalanceAsserted(id="a", at=START, source=["S"], **{**fields, field: " 1"})
    with pytest.raises(EventValueError, match=r"^price: '1 ' has leading or trailing white space"):
        ev.PriceUpdated(id="p", at=START, source=["S"], asset="BTC", quote="USD", price="1 ")
    with pytest.raises(EventValueError, match=r"^amount: ' 5' has leading or trailing white space"):
        ev.from_json('{"type":"deposit","id":"d","at":"2022-01-01T00:00:00Z","source":["S"],'
                     '"account":"ex:c","asset":"USD","amount":" 5","landed":"ex:k"}')


def test_over_long_literals_are_refused():
    with pytest.raises(EventValueError, match=r"^amount: number literal too long \(65 characters\)$"):
        dep(amount="1" * 65)
    with pytest.raises(EventValueError, match=r"^amount: number too large$"):
        dep(amount=10**65)


def test_amounts_are_never_rounded_even_beyond_28_digits():
    # 30 significant digits: the default decimal context (28) must not round them.
    long_amount = "123456789012345678.901234567891"
    assert ev.to_dict(dep(amount=long_amount))["amount"] == long_amount
    rate = "0.050000000000000000000000000001"
    loan = ev.LoanOpened(id="l", at=START, source=["S"], loan="L", lender="a", borrower="b", asset="USD",
                         principal="1", disbursed_from="a:x", disbursed_to="b:y", rate=rate)
    assert ev.to_dict(loan)["rate"] == rate
    with pytest.raises(EventValueError, match=r"^price: price 12345678901.2345678901234567891 is too precise"):
        ev.PriceUpdated(id="p", at=START, source=["S"], asset="BTC", quote="USD", price="12345678901.2345678901234567891")


def test_large_integral_amounts_are_kept_exactly():
    assert ev.to_dict(dep(amount=10**40))["amount"] == "1" + "0" * 40
    assert ev.to_dict(dep(amount="1" + "0" * 28))["amount"] == "1" + "0" * 28


def test_tiny_decimals_are_refused_not_turned_into_zero():
    with pytest.raises(EventValueError, match=r"^amount: number too precise"):
        dep(amount=Decimal("1E-99999999"))
    with pytest.raises(EventValueError, match=r"^amount: number too precise"):
        dep(amount=Decimal("0." + "1" * 70))


@pytest.mark.parametrize(
    ("amount", "scale", "message"),
    [
        ("0.001", 2, r"^amount: 0.001 USD has 3 decimal places; USD allows 2$"),
        ("1.5", 0, r"^amount: 1.5 USD has 1 decimal places; USD allows 0$"),
        ("1.000000001", 8, r"^amount: 1.000000001 USD has 9 decimal places; USD allows 8$"),
    ],
)
def test_to_minor_refuses_precision_beyond_the_scale(amount, scale, message):
    with pytest.raises(EventValueError, match=message):
        ev.to_minor(Decimal(amount), scale, asset="USD")


@given(minor=st.integers(0, 10**17), scale=st.integers(0, 17), digit=st.integers(1, 9))
def test_to_minor_never_rounds(minor, scale, digit):
    amount = ev.from_minor(minor, scale) + Decimal(digit).scaleb(-(scale + 1))
    with pytest.raises(EventValueError, match=rf"has {scale + 1} decimal places; the asset allows {scale}$"):
        ev.to_minor(amount, scale)


@given(minor=st.integers(-ev.MAX_MINOR, ev.MAX_MINOR), scale=st.integers(0, 18))
def test_to_minor_from_minor_round_trip(minor, scale):
    amount = ev.from_minor(minor, scale)
    assert ev.to_minor(amount, scale) == minor
    assert ev.from_minor(ev.to_minor(amount, scale), scale) == amount


@given(amount=amounts(scale=6, max_minor=10**15), extra=st.integers(0, 6))
def test_trailing_zeros_do_not_count_as_precision(amount, extra):
    padded = Decimal(ev.format_decimal(amount) + ("." if "." not in ev.format_decimal(amount) else "") + "0" * extra)
    assert ev.to_minor(padded, 6) == ev.to_minor(amount, 6)


@given(st.integers(0, 10**18), st.integers(0, 18))
def test_decimal_text_round_trip(minor, scale):
    text = ev.format_decimal(ev.from_minor(minor, scale))
    assert ev.format_decimal(ev.parse_decimal(text, field="x")) == text
    assert "E" not in text and "e" not in text
    assert text == "0" or not (("." in text) and text.endswith("0"))


def test_to_minor_limits():
    top = "9" * 36 + ".99"  # 10^38 - 1 minor units at scale 2
    assert ev.to_minor(Decimal(top), 2) == ev.MAX_MINOR == 10**38 - 1
    assert ev.to_minor(Decimal("-" + top), 2) == -ev.MAX_MINOR
    assert ev.to_minor(Decimal(2**63), 2) == 2**63 * 100  # beyond 64 bits: fine
    for value in (Decimal("1" + "0" * 36), Decimal("1E+1000"), Decimal(10**38), Decimal("1" * 101)):
        with pytest.raises(
            EventValueError,
            match=r"^amount: \S+ exceeds the maximum of 10\^38 - 1 minor units \(9{3}(,9{3}){11}\.99 at scale 2\)$",
        ):
            ev.to_minor(value, 2)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Decimal("NaN"), r"^amount: non-finite number not allowed \(NaN\)$"),
        (Decimal("Infinity"), r"^amount: non-finite number not allowed \(Infinity\)$"),
        (0.1, r"^amount: expected an exact amount \(Decimal or int\), got float$"),
        (True, r"^amount: expected an exact amount \(Decimal or int\), got bool$"),
        ("1", r"^amount: expected an exact amount \(Decimal or int\), got str$"),
        (Decimal("0." + "1" * 99), r"^amount: 0\.1{99} has 99 decimal places; the asset allows 2$"),
    ],
)
def test_to_minor_refuses_what_is_not_an_exact_amount(value, message):
    with pytest.raises(EventValueError, match=message):
        ev.to_minor(value, 2)


def test_to_minor_accepts_ints():
    assert ev.to_minor(5, 2) == 500


# -- instants ---------------------------------------------------------------------------------
def test_naive_datetimes_are_refused():
    with pytest.raises(EventValueError, match=r"^at: timestamp must include a UTC offset \(write 'Z' or '\+00:00'\)"):
        dep(at=datetime(2022, 1, 1))
    with pytest.raises(EventValueError, match=r"^maturity: timestamp must include a UTC offset"):
        ev.LoanOpened(id="l", at=START, source=["S"], loan="L", lender="a", borrower="b", asset="USD",
                      principal="1", disbursed_from="a:x", disbursed_to="b:y", maturity=datetime(2023, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-11-08T10:00:00Z", "2022-11-08T10:00:00Z"),
        ("2022-11-08T10:00:00z", "2022-11-08T10:00:00Z"),
        ("2022-11-08T10:00:00+01:00", "2022-11-08T09:00:00Z"),
        ("2022-11-08T00:30:00-05:00", "2022-11-08T05:30:00Z"),
        ("2022-11-08", "2022-11-08T00:00:00Z"),
        ("2022-11-08T10:00:00.250Z", "2022-11-08T10:00:00.250000Z"),
    ],
)
def test_instant_text_is_stored_as_utc(text, expected):
    assert ev.to_dict(dep(at=text))["at"] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2022-11-08T10:00:00", r"^at: timestamp must include a UTC offset"),
        ("2022-02-30", r"^at: invalid date '2022-02-30'"),
        ("2022-02-30T00:00:00Z", r"^at: invalid timestamp '2022-02-30T00:00:00Z'"),
        ("yesterday", r"^at: invalid timestamp 'yesterday'"),
    ],
)
def test_bad_instant_text_is_refused(text, message):
    with pytest.raises(EventValueError, match=message):
        dep(at=text)


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("2022-11-08T10:00:00.1234567Z", 7),
        ("2022-11-08T10:00:00.123456789+00:00", 9),
        ("2022-11-08T10:00:00,1234560Z", 7),  # a trailing zero is still a digit the log cannot keep
        ("2022-11-08 10:00:00.0000001-05:00", 7),
    ],
)
def test_instants_finer_than_a_microsecond_are_refused_not_cut(text, digits):
    message = rf"^at: '{re.escape(text)}' has {digits} fractional digits; the log keeps microseconds: write at most 6$"
    with pytest.raises(EventValueError, match=message):
        dep(at=text)
    with pytest.raises(EventValueError, match=message.replace("^at:", "^--at:")):
        ev.parse_instant(text, field="--at")  # the CLI's options go through the same parser
    with pytest.raises(EventValueError, match=r"^maturity: .* has \d fractional digits"):
        ev.LoanOpened(id="l", at=START, source=["S"], loan="L", lender="a", borrower="b", asset="USD",
                      principal="1", disbursed_from="a:x", disbursed_to="b:y", maturity=text)


def test_instants_finer_than_a_microsecond_are_refused_in_json_input():
    record = ('{"type":"deposit","id":"d","at":"2022-01-01T00:00:00.0000005Z","source":["S"],'
              '"account":"ex:c","asset":"USD","amount":"5","landed":"ex:k"}')
    with pytest.raises(EventValueError, match=r"^at: '2022-01-01T00:00:00\.0000005Z' has 7 fractional digits"):
        ev.from_json(record)


@pytest.mark.parametrize("text", ["2022-11-08T10:00:00.123456Z", "2022-11-08T10:00:00.1Z", "2022-11-08T10:00:00,5+01:00"])
def test_instants_of_up_to_six_fractional_digits_are_kept_exactly(text):
    at = ev.parse_instant(text)
    assert ev.parse_instant(ev.format_instant(at)) == at
    assert at.microsecond in (123456, 100000, 500000)


def test_wrong_instant_type_is_refused():
    with pytest.raises(EventValueError, match=r"^at: expected a timestamp, got int$"):
        dep(at=1667900000)


# -- identifiers ------------------------------------------------------------------------------
def test_nfd_and_nfc_spellings_give_the_same_identifier():
    nfc, nfd = "ex:Alameda Résearch", "ex:Alameda Re\u0301search"
    assert nfc != nfd and unicodedata.normalize("NFC", nfd) == nfc
    a, b = dep(account=nfc, id="R\u00e9s"), dep(account=nfd, id="Re\u0301s")
    assert a.account == b.account == nfc
    assert a.id == b.id == "R\u00e9s"
    assert ev.canonical_bytes(a) == ev.canonical_bytes(b)


@given(identifiers())
def test_identifiers_are_stored_nfc_whatever_the_input_form(text):
    for form in ("NFC", "NFD", "NFKC"):
        spelled = unicodedata.normalize(form, text)
        if form == "NFKC" and unicodedata.normalize("NFC", spelled) != unicodedata.normalize("NFC", text):
            continue  # compatibility forms are different identifiers; only canonical ones merge
        event = ev.Disclosure(id=spelled, at=START, source=["S"], entity="e", title="t")
        assert event.id == unicodedata.normalize("NFC", text)


@pytest.mark.parametrize(
    "char", ["\x00", "\x07", "\x1b", "\t", "\n", "\r", "\x7f", "\x85", "\u200b", "\u200e", "\ufeff", "\u2028", "\u2029"]
)
def test_control_and_format_characters_are_refused_in_identifiers(char):
    with pytest.raises(EventValueError, match=r"^account: invalid character"):
        dep(account=f"ex:c{char}ust")
    with pytest.raises(EventValueError, match=r"^id: invalid character"):
        dep(id=f"d{char}1")


@given(st.characters(categories=("Cc", "Cf", "Zl", "Zp"), exclude_characters="\ud800"))
def test_every_control_or_format_character_is_refused(char):
    with pytest.raises(EventValueError, match=r"^asset: "):
        dep(asset=f"U{char}SD")


@pytest.mark.parametrize("field", ["id", "account", "asset", "landed"])
def test_lone_surrogates_are_refused_in_identifiers(field):
    value = "ex:a\ud800b" if field in ("account", "landed") else "a\ud800b"
    with pytest.raises(EventValueError, match=rf"^{field}: invalid character \(lone surrogate\) cannot be encoded for hashing$"):
        dep(**{field: value})


@pytest.mark.parametrize("text", ["a\udfff", "\ud83d", "x\x00y"])
def test_lone_surrogates_and_nul_are_refused_in_free_text(text):
    with pytest.raises(EventValueError, match=r"^note: invalid character"):
        dep(note=text)


def test_free_text_keeps_other_characters_and_is_nfc():
    event = dep(note="tab\there\nnew line\u2028sep \x85 Re\u0301sume\u0301")
    assert event.note == "tab\there\nnew line\u2028sep \x85 Résumé"
    assert ev.from_json(ev.canonical_json(event)) == event


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", r"^id: must not be empty$"),
        (" d1", r"^id: ' d1' has leading or trailing white space$"),
        ("d1\u00a0", r"^id: 'd1\\xa0' has leading or trailing white space$"),
        ("x" * 201, r"^id: longer than 200 characters$"),
    ],
)
def test_identifier_shape(value, message):
    with pytest.raises(EventValueError, match=message):
        dep(id=value)


@pytest.mark.parametrize("ref", ["excust", ":cust", "ex:", ":"])
def test_account_references_need_entity_and_name(ref):
    with pytest.raises(EventValueError, match=r"^account: .* is not an account reference 'entity:account'$"):
        dep(account=ref)


# -- cross-field rules ------------------------------------------------------------------------
def test_cross_field_rules_name_the_field():
    common = {"id": "x", "at": START, "source": ["S"]}
    cases = [
        (lambda: ev.Transfer(**common, from_account="a:x", to_account="a:x", asset="USD", amount="1"), r"^to_account: must differ"),
        (lambda: ev.LoanOpened(**common, loan="L", lender="a", borrower="a", asset="USD", principal="1", disbursed_from="a:x", disbursed_to="a:y"), r"^borrower: must differ"),
        (lambda: ev.PriceUpdated(**common, asset="USD", quote="USD", price="1"), r"^quote: must differ"),
        (lambda: ev.AccountOpened(**common, account="ex:c", purpose="customer"), r"^holder: required"),
        (lambda: ev.AccountOpened(**common, account="ex:c", purpose="corporate", holder="h"), r"^holder: only customer"),
        (lambda: ev.CollateralPledged(**common, asset="BTC", amount="1", from_account="a:x"), r"^loan: give exactly one"),
        (lambda: ev.CollateralPledged(**common, asset="BTC", amount="1", from_account="a:x", loan="L", account="ex:c"), r"^loan: give exactly one"),
        (lambda: ev.CollateralSeized(**common, asset="BTC", amount="1", to_account="a:x", account="ex:c", credited="5"), r"^credited_asset: required"),
        (lambda: ev.BalanceAsserted(**common, entity="e", measure="balance", expected="1", tolerance="0", asset="USD"), r"^account: a 'balance' assertion"),
        (lambda: ev.BalanceAsserted(**common, entity="e", measure="equity", expected="1", tolerance="0"), r"^quote: a 'equity' assertion"),
        (lambda: ev.BalanceAsserted(**common, entity="e", measure="holdings_value", expected="1", tolerance="0", quote="USD"), r"^asset: a 'holdings_value' assertion"),
        (lambda: ev.EntityRegistered(**common, entity="e", name="E", kind="central bank"), r"^kind: 'central bank' is not one of: exchange, "),
        # the general model
        (lambda: ev.AccountOpened(**common, account="ex:c", purpose="customer", holder="h", basis="amortized_cost"), r"^basis: only holdings"),
        (lambda: ev.AccountOpened(**common, account="ex:t", purpose="corporate", liability_class="retail"), r"^liability_class: only customer"),
        (lambda: ev.AccountOpened(**common, account="ex:c", purpose="customer", holder="h", depositors=0), r"^depositors: must be at least 1"),
        (lambda: ev.LoanOpened(**common, loan="L", lender="a", borrower="b", asset="USD", principal="1", disbursed_from="a:x", disbursed_to="b:y", liquidation_threshold="0"), r"^liquidation_threshold: must be above 0"),
        (lambda: ev.LoanOpened(**common, loan="L", lender="a", borrower="b", asset="USD", principal="1", disbursed_from="a:x", disbursed_to="b:y", liquidation_threshold="1.5"), r"^liquidation_threshold: must be a fraction"),
        (lambda: ev.CollateralPledged(**common, asset="BTC", amount="1", from_account="a:x", loan="L", pool="P"), r"^loan: give exactly one"),
        (lambda: ev.CollateralSeized(**common, asset="BTC", amount="1", to_account="a:x", pool="P", credited="5"), r"^credited: a seizure from a pool"),
        (lambda: ev.BalanceAsserted(**common, entity="e", measure="capital_ratio", expected="0.12", tolerance="0", quote="USD"), r"^quote: 'capital_ratio' is a ratio"),
        (lambda: ev.BalanceAsserted(**common, entity="e", measure="loan_health", expected="1", tolerance="0"), r"^loan: a 'loan_health' assertion needs"),
        (lambda: ev.BalanceAsserted(**common, entity="e", measure="equity", expected="1", tolerance="0", quote="USD", loan="L"), r"^loan: only loan_health and ltv"),
        (lambda: ev.BalanceAsserted(**common, entity="e", measure="equity", expected="1", tolerance="0", quote="USD", bound="more"), r"^bound: 'more' is not one of"),
        (lambda: ev.Trade(**common, asset="ETH", amount="1", price="2", pay_asset="ETH", seller_from="a:x", seller_to="a:y", buyer_from="b:x", buyer_to="b:y"), r"^pay_asset: must differ"),
        (lambda: ev.Trade(**common, asset="ETH", amount="1", price="2", pay_asset="USD", seller_from="a:x", seller_to="c:y", buyer_from="b:x", buyer_to="b:y"), r"^seller_to: seller_from and seller_to"),
        (lambda: ev.Trade(**common, asset="ETH", amount="1", price="2", pay_asset="USD", seller_from="a:x", seller_to="a:y", buyer_from="a:z", buyer_to="a:w"), r"^buyer_from: the buyer must be another"),
        (lambda: ev.DepositInsurance(**common, insurer="fdic", venue="fdic", asset="USD", limit="250000"), r"^insurer: a venue cannot insure"),
        (lambda: ev.Resolution(**common, entity="frc", authority="fdic", method="purchase_and_assumption", accounts=["frc:deposits"]), r"^to_entity: accounts move"),
        (lambda: ev.Resolution(**common, entity="frc", authority="fdic", method="receivership", to_entity="jpm", accounts=["jpm:deposits"]), r"^accounts: 'jpm:deposits' is not an account of 'frc'"),
        (lambda: ev.Resolution(**common, entity="frc", authority="fdic", method="bailout"), r"^method: 'bailout' is not one of"),
        (lambda: ev.MarginCall(**common), r"^loan: give exactly one of 'loan' or 'pool'"),
    ]
    for build, message in cases:
        with pytest.raises(EventValueError, match=message):
            build()
