"""Quantities parse exactly, round up and print canonically, as Kubernetes' do."""
from __future__ import annotations

from fractions import Fraction

import pytest

from kubemu.api import quantity


@pytest.mark.parametrize("text,value,canonical,milli,whole", [
    ("500m", Fraction(1, 2), "500m", 500, 1),
    ("1", Fraction(1), "1", 1000, 1),
    ("1.5", Fraction(3, 2), "1500m", 1500, 2),
    ("0.1", Fraction(1, 10), "100m", 100, 1),
    ("2000m", Fraction(2), "2", 2000, 2),
    ("0.1m", Fraction(1, 10000), "100u", 1, 1),
    ("128Mi", Fraction(128 * 2**20), "128Mi", 128 * 2**20 * 1000, 128 * 2**20),
    ("1Gi", Fraction(2**30), "1Gi", 2**30 * 1000, 2**30),
    ("0.5Gi", Fraction(2**29), "512Mi", 2**29 * 1000, 2**29),
    ("1.5Ki", Fraction(1536), "1536", 1536000, 1536),
    ("1G", Fraction(10**9), "1G", 10**12, 10**9),
    ("1e3", Fraction(1000), "1e3", 10**6, 1000),
    ("1E3", Fraction(1000), "1e3", 10**6, 1000),
    ("5e-3", Fraction(5, 1000), "5e-3", 5, 1),
    ("100k", Fraction(100000), "100k", 10**8, 100000),
    ("1500", Fraction(1500), "1500", 1500000, 1500),
    ("1E", Fraction(10**18), "1E", 10**21, 10**18),
    ("+2", Fraction(2), "2", 2000, 2),
    (".5", Fraction(1, 2), "500m", 500, 1),
    ("0", Fraction(0), "0", 0, 0),
    ("0.0000000001", Fraction(1, 10**9), "1n", 1, 1),  # rounded up to nano precision
    ("-1.5", Fraction(-3, 2), "-1500m", -1500, -2),
])
def test_parse(text, value, canonical, milli, whole):
    q = quantity.parse(text)
    assert q.value == value
    assert str(q) == canonical
    assert quantity.to_milli(text) == milli
    assert quantity.to_int(text) == whole


@pytest.mark.parametrize("text,message", [
    ("", "quantity is empty: quantities must match the regular expression"),
    ("abc", 'invalid quantity "abc": quantities must match the regular expression '
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("1K", 'invalid quantity "1K": unable to parse quantity\'s suffix'),
    ("1Mb", 'invalid quantity "1Mb": quantities must match the regular expression'),
    ("1.2.3", 'invalid quantity "1.2.3": unable to parse numeric part of quantity'),
    ("1e999", 'invalid quantity "1e999": exponent 999 is out of range'),
    (" 1", 'invalid quantity " 1": quantities must match the regular expression'),
    ("1" * 200, "is too long"),
], ids=["empty", "letters", "bad-suffix", "bad-unit", "two-dots", "huge-exponent",
        "space", "too-long"])
def test_bad_input_raises_value_error(text, message):
    with pytest.raises(ValueError) as err:
        quantity.parse(text)
    assert message in str(err.value)
    assert not quantity.is_valid(text)


@pytest.mark.parametrize("millis,text", [(500, "500m"), (2000, "2"), (1500, "1500m"),
                                         (0, "0"), (100, "100m"), (1, "1m")])
def test_format_cpu(millis, text):
    assert quantity.format_cpu(millis) == text
    assert quantity.to_milli(text) == millis


@pytest.mark.parametrize("count,text", [(128 * 2**20, "128Mi"), (2**30, "1Gi"), (1536, "1536"),
                                        (1000, "1k"), (0, "0"), (3 * 2**40, "3Ti"),
                                        (10**9, "1000000000")])
def test_format_bytes(count, text):
    assert quantity.format_bytes(count) == text
    assert quantity.to_int(text) == count


@pytest.mark.parametrize("a,b,cmp", [
    ("500m", "1", -1), ("1", "1000m", 0), ("2", "1", 1), ("1Gi", "1G", 1),
    ("1Ki", "1024", 0), ("128Mi", "134217728", 0), ("0.1m", "100u", 0), ("0.1m", "1m", -1),
])
def test_compare(a, b, cmp):
    assert quantity.compare(a, b) == cmp
    assert quantity.less_or_equal(a, b) is (cmp <= 0)
    assert (quantity.parse(a) == quantity.parse(b)) is (cmp == 0)
    assert (quantity.parse(a) <= quantity.parse(b)) is (cmp <= 0)
