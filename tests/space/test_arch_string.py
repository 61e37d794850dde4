"""The canonical architecture string and OFA's dict form: parse, format, validate."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nag.errors import ArchitectureError, UnknownNameError
from nag.space import available_spaces, get_space
from nag.space.ofa_mbv3 import MBV3Arch, OFAMobileNetV3Space
from tests.conftest import PNAG_80_MOBILE


@st.composite
def valid_archs(draw: st.DrawFn) -> str:
    """Any member of ofa-mbv3, drawn field by field (independent of the space's own sampler)."""
    depths = [draw(st.sampled_from([2, 3, 4])) for _ in range(5)]
    kernels, expands = [], []
    for depth in depths:
        for layer in range(4):
            used = layer < depth
            kernels.append(draw(st.sampled_from([3, 5, 7])) if used else 0)
            expands.append(draw(st.sampled_from([3, 4, 6])) if used else 0)
    return ":".join(",".join(map(str, part)) for part in (depths, kernels, expands))


def test_published_architecture_round_trips(space: OFAMobileNetV3Space) -> None:
    arch = space.parse(PNAG_80_MOBILE)
    assert arch.depths == (2, 3, 3, 3, 3)
    assert arch.kernels[:4] == (3, 3, 0, 0) and arch.expands[4:8] == (4, 3, 3, 0)
    assert space.format(arch) == PNAG_80_MOBILE
    assert arch.active_slots() == [0, 1, 4, 5, 6, 8, 9, 10, 12, 13, 14, 16, 17, 18]


@settings(max_examples=300, deadline=None)
@given(valid_archs())
def test_format_parse_round_trip_for_any_member(text: str) -> None:
    space = OFAMobileNetV3Space()
    assert space.format(space.parse(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_format_parse_round_trip_for_sampled(seed: int) -> None:
    space = OFAMobileNetV3Space()
    arch = space.sample(random.Random(seed))
    text = space.format(arch)
    assert space.parse(text) == arch
    assert space.format(space.parse(text)) == text


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="0123456789,: -{}x\n"), valid_archs().map(lambda s: s[:-2])))
def test_arbitrary_text_parses_or_raises_typed_error(text: str) -> None:
    space = OFAMobileNetV3Space()
    try:
        arch = space.parse(text)
    except ArchitectureError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(arch, MBV3Arch)


def _replace(text: str, section: int, index: int, value: str) -> str:
    parts = [p.split(",") for p in text.split(":")]
    parts[section][index] = value
    return ":".join(",".join(p) for p in parts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "3 sections"),
        ("garbage", "3 sections"),
        ("1,2:3", "got 2 section"),
        (PNAG_80_MOBILE + ":1", "got 4 section"),
        (PNAG_80_MOBILE.replace("2,3,3,3,3:", "2,3,3,3:", 1), "depths: expected 5"),
        (_replace(PNAG_80_MOBILE, 1, 0, "3,3"), "kernels: expected 20"),
        (_replace(PNAG_80_MOBILE, 2, 0, "x"), "'x' at position 1 is not a non-negative integer"),
        (_replace(PNAG_80_MOBILE, 2, 0, "-3"), "'-3' at position 1"),
        (_replace(PNAG_80_MOBILE, 0, 1, "5"), "depth of stage 2 is 5; choose from 2, 3, 4"),
        (_replace(PNAG_80_MOBILE, 1, 4, "4"), "kernel of slot 4 (stage 2 layer 1) is 4; choose from 3, 5, 7"),
        (_replace(PNAG_80_MOBILE, 2, 5, "5"), "expand ratio of slot 5 (stage 2 layer 2) is 5; choose from 3, 4, 6"),
        (_replace(PNAG_80_MOBILE, 1, 1, "0"), "slot inside the stage's depth cannot be 0"),
        (_replace(PNAG_80_MOBILE, 1, 3, "3"), "slots past a stage's depth must be 0"),
        ("{not json", "looks like JSON but does not parse"),
    ],
)
def test_bad_strings_name_the_problem(space: OFAMobileNetV3Space, text: str, expected: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        space.parse(text)
    assert expected in str(info.value)


def test_ofa_dict_form_ignores_values_past_depth(space: OFAMobileNetV3Space) -> None:
    arch = space.parse(PNAG_80_MOBILE)
    ofa = {"ks": [7] * 20, "e": [6] * 20, "d": list(arch.depths)}
    for slot in arch.active_slots():
        ofa["ks"][slot] = arch.kernels[slot]
        ofa["e"][slot] = arch.expands[slot]
    assert space.parse(ofa) == arch
    assert space.parse(arch.to_ofa_dict()) == arch
    assert space.parse({**ofa, "r": [224], "wid": None}) == arch  # OFA net-config keys
    import json

    assert space.parse(json.dumps(ofa)) == arch  # the CLI passes dicts as JSON text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"ks": [3] * 20, "e": [3] * 20}, "missing ['d']"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "depth": 1}, "unknown ['depth']"),
        ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5}, "kernels: expected 20 values, got 19"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2, 2, 2, 2, 1]}, "depth of stage 5 is 1"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": "22222"}, "'d' must be a list"),
        ({"ks": [3.0] * 20, "e": [3] * 20, "d": [2] * 5}, "not an integer"),
        ({"ks": [2] * 20, "e": [3] * 20, "d": [2] * 5}, "kernel of slot 0 (stage 1 layer 1) is 2"),
        ([1, 2, 3], "string or an OFA dict, got list"),
    ],
)
def test_bad_dicts_name_the_problem(space: OFAMobileNetV3Space, value: object, expected: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        space.parse(value)  # type: ignore[arg-type]
    assert expected in str(info.value)


def test_constructor_validates(space: OFAMobileNetV3Space) -> None:
    with pytest.raises(ArchitectureError, match="depths: expected 5 values"):
        MBV3Arch(depths=(2, 2), kernels=(0,) * 20, expands=(0,) * 20)
    with pytest.raises(ArchitectureError):
        space.parse(3.5)  # type: ignore[arg-type]


def test_registry_lists_valid_names_on_unknown() -> None:
    assert "ofa-mbv3" in available_spaces()
    with pytest.raises(UnknownNameError) as info:
        get_space("mbv3")
    assert "valid names: ofa-mbv3" in str(info.value)
    assert isinstance(get_space("nag.space.ofa_mbv3:OFAMobileNetV3Space"), OFAMobileNetV3Space)
    with pytest.raises(UnknownNameError, match="not a SearchSpace"):
        get_space("nag.space.ofa_mbv3:MBV3Arch")
    with pytest.raises(UnknownNameError, match="cannot load"):
        get_space("nag.space.nowhere:Space")
