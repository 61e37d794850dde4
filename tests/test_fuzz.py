"""The fuzz suite (issue 14): generated input through every command and file format that takes a user's data.

Each case runs ``nag`` in-process through :func:`tests.fuzz.run_case`: exit 0 or 2, one line on an error, no
traceback, no hang, and every printed latency/accuracy finite and in range. ``nag generate`` and run
directories are fuzzed in ``tests/search/test_fuzz_generate.py`` (they share the search tests' trained run).
The tally is printed at the end of the run.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from agents.config import load_config
from agents.errors import AgentError
from nag.errors import NagError
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.cli import yaml_alias_bomb
from tests.conftest import PNAG_80_MOBILE
from tests.fuzz import fuzz, run_case

SPACE = OFAMobileNetV3Space()
_VALID = [SPACE.format(a) for a in SPACE.sample_many(20, seed=5)] + [PNAG_80_MOBILE]
_SEARCH_ARCHS = [SPACE.format(a) for a in SPACE.sample_many(150, seed=6)]  # enough to price every block
_HOSTILE_TEXT = ["", " ", "nan", "inf", "-1", "0", "1e308", "1e-300", "9" * 5000, "\x00", "é", "[" * 200, "{}", "null"]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="nag-fuzz-") as folder:
        yield Path(folder)


# -- architectures ---------------------------------------------------------------------------------------


def _mutated(arch: str, data: st.DataObject) -> str:
    at = data.draw(st.integers(0, len(arch)))
    piece = data.draw(st.sampled_from([",", ":", "", "9", "0", "-", "99999999", " ", "\n", "1e5", "nan", "3.5"]))
    return arch[:at] + piece + arch[at + data.draw(st.integers(0, 2)) :]


def _json_arch(data: st.DataObject) -> str:
    leaf = st.one_of(
        st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5), st.none()
    )
    value = st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=25) | st.dictionaries(st.sampled_from(["d", "ks", "e", "x"]), inner, max_size=4),
        max_leaves=60,
    )
    return json.dumps(data.draw(value), allow_nan=True)


@fuzz(250)
@given(data=st.data())
def test_fuzz_arch_info(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["valid", "mutated", "text", "json", "hostile"]))
    event(kind)
    arch = {
        "valid": lambda: data.draw(st.sampled_from(_VALID)),
        "mutated": lambda: _mutated(data.draw(st.sampled_from(_VALID)), data),
        "text": lambda: data.draw(st.text(max_size=200)),
        "json": lambda: _json_arch(data),
        "hostile": lambda: data.draw(st.sampled_from(_HOSTILE_TEXT)),
    }[kind]()
    options = data.draw(
        st.lists(st.sampled_from([["--width", "1.0"], ["--width", "0"], ["--width", "nan"], ["--resolution", "160"],
                                  ["--resolution", "-3"], ["--resolution", "99999999"], ["--space", "nope"]]), max_size=2)
    )  # fmt: skip
    argv = ["arch", "info", "--json", *[word for option in options for word in option], "--", arch]
    result = run_case("arch info", argv)
    if kind == "valid" and not options:
        assert result.code == 0 and json.loads(result.out)[0]["arch"] == arch


# -- OFA lookup-table files -----------------------------------------------------------------------------


def _ofa_text(data: st.DataObject) -> str:
    blocks = SPACE.all_blocks(width=1.2, resolution=160)
    chosen = data.draw(st.lists(st.sampled_from(blocks), min_size=1, max_size=12, unique_by=lambda b: b.key))
    clean = data.draw(st.booleans())  # half the files are valid, so the success path is fuzzed too
    good = st.floats(0.001, 50.0)
    bad = st.sampled_from([0, -1, "nan", ".nan", ".inf", "-.inf", "1e308", "x", "", "[1, 2]", "9" * 400])
    number = good if clean else st.one_of(good, good, good, bad)
    counts = st.just(10) if clean else st.sampled_from([10, 10, 10, 0, -5, 1.5, "x"])
    lines = []
    for block in chosen:
        key = block.key if clean or data.draw(st.integers(0, 9)) else _mutated(block.key, data)
        lines += [f"{key}:", f"  count: {data.draw(counts)}", f"  mean: {data.draw(number)}", f"  std: {data.draw(number)}"]
    text = "\n".join(lines) + "\n"
    damage = 9 if clean else data.draw(st.integers(0, 9))
    if damage == 0:
        text = data.draw(st.text(max_size=300))
    elif damage == 1:
        text = yaml_alias_bomb(data.draw(st.integers(2, 9)))
    elif damage == 2:
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.sampled_from(["\t", ":", "- ", "{", "\x00", "&a [*a]"])) + text[at:]
    return text


@fuzz(150)
@given(data=st.data())
def test_fuzz_table_import_ofa_then_predict(data: st.DataObject, workdir: Path) -> None:
    case = Path(tempfile.mkdtemp(dir=workdir))
    name = data.draw(st.sampled_from(["160_lookup_table.yaml"] * 3 + ["lookup_table.yaml", "x_lookup_table.yaml", "160.yaml"]))
    (case / name).write_text(_ofa_text(data), encoding="utf-8", errors="surrogatepass")
    db = case / "t.db"
    imported = run_case("table import-ofa", ["table", "import-ofa", str(case / name), "--device", "fuzz", "--db", str(db)])
    event(f"import exit {imported.code}")
    if imported.code == 0:
        arch = data.draw(st.sampled_from(_VALID))
        run_case(
            "table predict", ["table", "predict", "--db", str(db), "--device", "fuzz", "--resolution", "160", arch, "--json"]
        )
    shutil.rmtree(case)


@pytest.fixture(scope="module")
def full_store(workdir: Path) -> Path:
    """A store holding one complete imported table (ofa-mbv3, width 1.2, 160 px, device 'lab')."""
    rng = random.Random(0)
    lut = workdir / "160_lookup_table.yaml"
    lines = []
    for block in SPACE.all_blocks(width=1.2, resolution=160):
        lines += [f"{block.key}:", "  count: 10", f"  mean: {rng.uniform(0.05, 2.0)!r}", f"  std: {rng.uniform(0.001, 0.05)!r}"]
    lut.write_text("\n".join(lines) + "\n")
    db = workdir / "full.db"
    assert run_case("table import-ofa", ["table", "import-ofa", str(lut), "--device", "lab", "--db", str(db)]).code == 0
    return db


@fuzz(200)
@given(data=st.data())
def test_fuzz_table_predict(data: st.DataObject, full_store: Path) -> None:
    # one dimension fuzzed at a time, the others valid, so many cases reach a prediction
    hostile = data.draw(st.sampled_from(["none", "arch", "device", "resolution", "option"]))
    arch = data.draw(st.sampled_from(_VALID))
    device, resolution, extra = "lab", "160", data.draw(st.sampled_from([[], ["--width", "1.2"]]))
    if hostile == "arch":
        arch = data.draw(
            st.one_of(st.sampled_from(_VALID).map(lambda a: a[:-1]), st.text(max_size=60), st.sampled_from(_HOSTILE_TEXT))
        )
    elif hostile == "device":
        device = data.draw(st.sampled_from(["nope", "", "lab\x00", "LAB", "lab " * 300]))
    elif hostile == "resolution":
        resolution = data.draw(st.sampled_from(["224", "0", "-160", "1e9", "x", "nan", "99999999999999999999"]))
    elif hostile == "option":
        extra = data.draw(
            st.sampled_from(
                [["--width", "1.0"], ["--width", "inf"], ["--width", "-1"], ["--fingerprint", "zz"], ["--space", "x"]]
            )
        )
    event(hostile)
    argv = [
        "table",
        "predict",
        "--db",
        str(full_store),
        "--device",
        device,
        "--resolution",
        resolution,
        *extra,
        "--json",
        "--",
        arch,
    ]
    result = run_case("table predict", argv)
    if arch in _VALID and device == "lab" and resolution == "160" and extra in ([], ["--width", "1.2"]):
        assert result.code == 0 and json.loads(result.out)[0]["latency_ms"] > 0


@fuzz(100)
@given(data=st.data())
def test_fuzz_table_check_on_damaged_stores(data: st.DataObject, full_store: Path, workdir: Path) -> None:
    content = bytearray(full_store.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        how = data.draw(st.sampled_from(["flip", "zero-page", "truncate", "garbage-header"]))
        at = data.draw(st.integers(0, len(content) - 1))
        if how == "flip":
            content[at] ^= data.draw(st.integers(1, 255))
        elif how == "zero-page":
            page = at // 4096 * 4096
            content[page : page + 4096] = bytes(min(4096, len(content) - page))
        elif how == "truncate":
            del content[max(1, at) :]
        else:
            content[:16] = data.draw(st.binary(min_size=16, max_size=16))
    damaged = workdir / f"damaged-{data.draw(st.integers(0, 10**9))}.db"
    damaged.write_bytes(bytes(content))
    salvage = damaged.with_suffix(".salvaged.db")
    result = run_case("table check", ["table", "check", "--db", str(damaged), "--salvage", str(salvage)])
    event(f"check exit {result.code}")
    if salvage.exists():
        run_case("table check", ["table", "check", "--db", str(salvage)])
    run_case(
        "table predict",
        ["table", "predict", "--db", str(damaged), "--device", "lab", "--resolution", "160", PNAG_80_MOBILE, "--json"],
    )
    for path in (damaged, salvage):
        path.unlink(missing_ok=True)


# -- the agents config ------------------------------------------------------------------------------------

_CONFIG_VALUES = st.one_of(
    st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=3), st.sampled_from(["no", "yes", "off", "127.0.0.1", "$(reboot)", "a;b", "~/x"]),
)  # fmt: skip
_CONFIG_KEYS = {
    None: ["local", "adb", "ssh", "cuda", "extra"],
    "adb": ["host", "port", "serials", "remote_dir", "benchmark_model", "timeout_s", "bogus"],
    "board": ["name", "host", "port", "user", "key_file", "known_hosts", "runtime", "remote_dir", "python", "bogus"],
}


@st.composite
def _agents_config(draw: st.DrawFn) -> str:
    config: dict[str, object] = {}
    for key in draw(st.lists(st.sampled_from(_CONFIG_KEYS[None]), max_size=4, unique=True)):
        if key == "adb" and draw(st.booleans()):
            config[key] = {
                k: draw(_CONFIG_VALUES) for k in draw(st.lists(st.sampled_from(_CONFIG_KEYS["adb"]), max_size=4, unique=True))
            }
        elif key == "ssh" and draw(st.booleans()):
            boards = [{k: draw(_CONFIG_VALUES) for k in draw(st.lists(st.sampled_from(_CONFIG_KEYS["board"]), max_size=6, unique=True))}
                      for _ in range(draw(st.integers(0, 2)))]  # fmt: skip
            config[key] = {"boards": boards} if draw(st.booleans()) else boards
        else:
            config[key] = draw(_CONFIG_VALUES)
    text = yaml.safe_dump(config, allow_unicode=True)
    damage = draw(st.integers(0, 7))
    if damage == 0:
        return draw(st.text(max_size=200))
    if damage == 1:
        return yaml_alias_bomb(draw(st.integers(2, 9)))
    return text


@fuzz(200)
@given(text=_agents_config())
def test_fuzz_agents_config(text: str, workdir: Path) -> None:
    from tests.fuzz import TALLY, bounded

    path = workdir / "agents.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    TALLY[("agents config", "tried")] += 1
    with bounded(10):
        try:
            load_config(path)
        except (AgentError, NagError) as exc:
            TALLY[("agents config", "refused")] += 1
            assert len(str(exc)) < 2000  # (the CLI prints it as one line)
            event("refused")
            return
    TALLY[("agents config", "read")] += 1
    event("read")


# -- tables for `nag search` --------------------------------------------------------------------------------


@fuzz(25)
@given(data=st.data())
def test_fuzz_search_tables(data: st.DataObject, workdir: Path) -> None:
    """Damaged tables end at the check (exit 2) before any training; a clean one trains a tiny search."""
    rng = random.Random(data.draw(st.integers(0, 2**16)))
    rows = [(arch, rng.uniform(1.0, 50.0), rng.uniform(0.5, 0.8)) for arch in _SEARCH_ARCHS]
    text = "arch,latency_ms,accuracy\n" + "".join(f'"{a}",{lat!r},{acc!r}\n' for a, lat, acc in rows)
    damage = data.draw(st.sampled_from(["none", "cell", "duplicate", "encoding", "text"]))
    event(damage)
    if damage == "cell":
        text = text.replace(repr(rows[3][1]), data.draw(st.sampled_from(["nan", "-1", "0", "1e308", "x", "", "9" * 400])), 1)
    elif damage == "duplicate":
        text += f'"{rows[0][0]}",{rows[0][1] * 3!r},0.99\n'
    elif damage == "text":
        text = data.draw(st.text(max_size=300))
    encoding = "utf-16" if damage == "encoding" else "utf-8"
    table = workdir / f"t{data.draw(st.integers(0, 10**9))}.csv"
    table.write_bytes(text.encode(encoding, errors="surrogatepass"))
    out = table.with_suffix(".run")
    run_case(
        "search",
        ["search", "--table", str(table), "--out", str(out), "--budgets", "2", "--evaluator-steps", "20",
         "--generator-iterations", "2", "--archs-per-budget", "4", "--quiet"],
        seconds=120,
    )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    table.unlink()
