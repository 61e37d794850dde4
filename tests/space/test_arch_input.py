"""Hostile architecture input: size and depth limits on strings, JSON and dicts; typed errors only.

Through the real entry point (``nag arch info``) for what a user types, through ``space.parse`` for the dict
form a program passes, and a property-based test: any text or nested value gives a valid architecture
(that round-trips) or an :class:`ArchitectureError`, never another exception.
"""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nag.errors import ArchitectureError
from nag.space._parse import MAX_ARCH_CHARS
from nag.space.ofa_mbv3 import MBV3Arch, OFAMobileNetV3Space
from tests.cli import one_line_error, run_nag
from tests.conftest import PNAG_80_MOBILE

KERNELS = ",".join(["3"] * 20)


def _arch_info(*archs: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_nag("arch", "info", *archs, "--json", stdin=stdin)


@pytest.mark.parametrize(
    ("arch", "needle"),
    [
        ("9" * 5000, "architecture text is 5000 characters, over the limit of 4096"),
        (f"2,2,2,2,{'9' * 50}:{KERNELS}:{KERNELS}", "depths: the value at position 5 has 50 digits, over 6"),
        (f"2,2,2,2,{'9' * 4100}:{KERNELS}:{KERNELS}", "over the limit of 4096"),
        ('{"d": [' + "9" * 400 + '], "ks": [], "e": []}', "has over 6 digits; not a choice of the space"),
        ('{"d":' + "[" * 1000 + "]" * 1000 + "}", "architecture JSON is nested 1001 deep, over the limit of 4"),
        ('{"d": [1e999, 2, 2, 2, 2], "ks": [], "e": []}', "depths: value inf at position 1 is not an integer"),
        ('{"d": [2, 2, 2, 2, 2], "ks": ', "looks like JSON but does not parse"),
        ("2," * 40000, "architecture text is 80000 characters"),
    ],
    ids=[
        "5000-digits",
        "50-digit-depth",
        "4100-digit-depth",
        "json-400-digits",
        "json-nested-1000",
        "json-1e999",
        "json-cut",
        "80kB",
    ],
)
def test_bad_arch_on_the_command_line_is_one_line_exit_2(arch: str, needle: str) -> None:
    result = _arch_info(arch)
    one_line_error(result, needle, max_chars=400)  # the bad value is quoted shortened, not whole
    assert result.stdout == ""


def test_a_100kb_line_on_stdin_is_refused_and_good_ones_read_exactly() -> None:
    one_line_error(_arch_info("-", stdin=PNAG_80_MOBILE + "\n" + "x" * 100_000 + "\n"), "architecture text is 100000 characters")
    ok = _arch_info("-", stdin=f"  {PNAG_80_MOBILE}  \n")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    row = data[0] if isinstance(data, list) else data
    assert row["arch"] == PNAG_80_MOBILE and row["madds_m"] == pytest.approx(349, abs=1)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"d": [10**5000] * 5, "ks": [3] * 20, "e": [3] * 20}, "depths: value <int> at position 1 has over 6 digits"),
        ({"d": [2] * 5, "ks": [3] * 20, "e": [[[[[3]]]]] * 20}, "nested over 4 deep"),
        ({"d": [2] * 5, "ks": list(range(10**5)), "e": [3] * 20}, "a list of 100000 items"),
        ({str(n): n for n in range(100)}, "has 100 keys"),
        ({"d": [2] * 5, "ks": [3] * 20, "e": [3] * 20, "x" * 100_000: 1}, "unknown ['xxxxxxxxxx"),
    ],
    ids=["5000-digit-int", "nested-lists", "100k-items", "100-keys", "100kB-key"],
)
def test_bad_dict_forms_are_architecture_errors(space: OFAMobileNetV3Space, value: dict[Any, Any], needle: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        space.parse(value)
    assert needle in str(info.value) and len(str(info.value)) < 400


def test_deeply_nested_python_list_is_an_architecture_error(space: OFAMobileNetV3Space) -> None:
    nested: list[Any] = [2]
    for _ in range(100_000):  # repr() of this raises RecursionError; the parser never calls it
        nested = [nested]
    with pytest.raises(ArchitectureError, match="nested over 4 deep"):
        space.parse({"d": nested, "ks": [3] * 20, "e": [3] * 20})


def test_limits_accept_every_real_form(space: OFAMobileNetV3Space) -> None:
    arch = space.parse(PNAG_80_MOBILE)
    padded = " " * (MAX_ARCH_CHARS - len(PNAG_80_MOBILE) - 1) + PNAG_80_MOBILE
    assert space.parse(padded) == arch  # at the limit: read
    assert space.parse(json.dumps({**arch.to_ofa_dict(), "r": [224], "wid": None})) == arch
    assert space.parse("2,2,2,2,000002:" + ",".join(["3", "3", "0", "0"] * 5) * 1 + ":" + ",".join(["3", "3", "0", "0"] * 5)) == (
        MBV3Arch(depths=(2,) * 5, kernels=(3, 3, 0, 0) * 5, expands=(3, 3, 0, 0) * 5)
    )  # six digits is within the limit


_TOKENS = st.sampled_from(
    ["2", "3", "4", "0", "5", "6", "7", "9" * 7, "-1", " ", ",", ":", "{", "}", "[", "]", '"d"', '"ks"', '"e"', "1e999", "x"]
)
_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(_TOKENS, max_size=120).map("".join),
    st.builds(lambda d, k, e: f"{d}:{k}:{e}", *(st.lists(_TOKENS, max_size=25).map(",".join) for _ in range(3))),
    st.integers(min_value=0, max_value=6000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n),
)
_SPACE = OFAMobileNetV3Space()
_VALID = st.integers(min_value=0, max_value=2**32).map(lambda seed: str(_SPACE.sample(random.Random(seed))))
_MUTATED = st.builds(lambda text, at, token: text[:at] + token + text[at + 1 :], _VALID, st.integers(0, 90), _TOKENS)
_LEAF = st.one_of(st.integers(), st.integers(min_value=10**300, max_value=10**4000), st.floats(), st.text(max_size=5), st.none())
_VALUE = st.recursive(
    _LEAF, lambda inner: st.lists(inner, max_size=25) | st.dictionaries(st.text(max_size=3), inner, max_size=4), max_leaves=60
)
_CHOICES = st.sampled_from([0, 2, 3, 4, 5, 6, 7])
_DICT = st.one_of(
    st.fixed_dictionaries({"d": _VALUE, "ks": _VALUE, "e": _VALUE}),
    st.dictionaries(st.sampled_from(["d", "ks", "e", "r", "x"]), _VALUE),
    st.fixed_dictionaries(
        {
            "d": st.lists(_CHOICES, min_size=5, max_size=5),
            "ks": st.lists(_CHOICES, min_size=20, max_size=20),
            "e": st.lists(_CHOICES, min_size=20, max_size=20),
        }
    ),
)


# Equal shares of valid strings, strings one token off, free text, dicts, and dicts and text as JSON.
_GROUPS = (_VALID, _MUTATED, _TEXT, _DICT, _DICT.map(json.dumps), _TEXT.map(lambda t: json.dumps({"d": t})))


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.integers(0, len(_GROUPS) - 1).flatmap(lambda group: _GROUPS[group]))
def test_property_parse_gives_an_arch_or_an_architecture_error(space: OFAMobileNetV3Space, value: Any) -> None:
    try:
        arch = space.parse(value)
    except ArchitectureError as exc:
        event("refused")
        assert len(str(exc)) < 1000  # one readable line, whatever the input's size
        return
    event("parsed")
    assert isinstance(arch, MBV3Arch) and space.parse(space.format(arch)) == arch
    if isinstance(value, str) and not value.lstrip().startswith("{"):
        given = [[int(n) for n in part.split(",")] for part in value.strip().replace(" ", "").split(":")]
        assert [[int(n) for n in part.split(",")] for part in space.format(arch).split(":")] == given  # the numbers given
        # (leading zeros, as in '00', are read as the number they spell; the canonical text drops them)
