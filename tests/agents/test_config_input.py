"""Bad agents configs through the real entry points (``nag agent probe --config``, ``$NAG_AGENTS_CONFIG``).

Each must end in exit status 2 and one line naming the key, the value and the fix; never a traceback, never
a silent fallback to the defaults.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import load_config
from agents.config import AdbConfig, AgentsConfig, SshBoardConfig
from agents.errors import SpecError
from tests.cli import one_line_error, run_nag, yaml_alias_bomb

BOARD = "{name: b, host: h, user: u, key_file: k"


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("adb: {host: 5}\n", ["adb: host must be a non-empty string", "got 5"]),
        (f"ssh:\n  - {BOARD}, known_hosts: 123}}\n", ["ssh board 'b': known_hosts must be a non-empty string", "got 123"]),
        ("local: 'no'\n", ["local must be true or false", "got 'no'", "unquoted"]),
        ("local: 1\n", ["local must be true or false", "got 1"]),
        ("adb: {port: 99999999}\n", ["adb: port must be a port number from 1 to 65535", "got 99999999"]),
        ("adb: {port: 0}\n", ["port must be a port number from 1 to 65535", "got 0"]),
        ("adb: {port: '5037'}\n", ["port must be a port number", "got '5037'"]),
        (f"ssh:\n  - {BOARD}, port: 70000}}\n", ["ssh board 'b': port must be a port number", "got 70000"]),
        ("adb: {command_timeout_s: -1}\n", ["command_timeout_s must be a finite number of seconds > 0", "got -1"]),
        ("adb: {command_timeout_s: .nan}\n", ["command_timeout_s must be a finite number", "got nan"]),
        ("adb: {use_gpu: 'yes'}\n", ["use_gpu must be true or false", "got 'yes'"]),
        ("lokal: true\n", ["unknown key(s) 'lokal'", "valid keys: adb, ssh, local"]),
        ("adb: {hots: x}\n", ["adb: unknown key(s) 'hots'", "valid keys: host, port, benchmark_model"]),
        (f"ssh:\n  - {BOARD}, pasword: x}}\n", ["ssh[0]: unknown key(s) 'pasword'", "valid keys: name, host, user"]),
        ("ssh:\n  - {name: b, host: h}\n", ["ssh[0]: missing key(s) user, key_file"]),
        (f"ssh:\n  - {BOARD}}}\n  - {BOARD}}}\n", ["ssh board names must be unique", "['b', 'b']"]),
        (f"ssh:\n  - {BOARD}, runtime: tvm}}\n", ["runtime must be 'ort' or 'benchmark_model'", "got 'tvm'"]),
        ("ssh: {name: b}\n", ["'ssh' must be a list of boards", "got dict"]),
        ("ssh: 0\n", ["'ssh' must be a list of boards", "got int"]),
        ("adb: 5\n", ["adb: expected a mapping", "got int"]),
        ("- a\n", ["expected a mapping with keys adb, ssh, local", "got list"]),
        ("adb: {port: " + "9" * 5000 + "}\n", ["a number too long to read"]),
        ("local: " + "[" * 5000 + "]" * 5000 + "\n", ["nested too deeply"]),
        ("adb: {host: [unclosed\n", ["is not valid YAML"]),
        (f"local: {yaml_alias_bomb()}\n", ["local must be true or false, got [['x', 'x'"]),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path: Path, text: str, needles: list[str]) -> None:
    config = tmp_path / "agents.yaml"
    config.write_text(text)
    one_line_error(run_nag("agent", "probe", "--config", str(config)), str(config), *needles, max_chars=400)


def test_named_config_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    one_line_error(
        run_nag("agent", "probe", env={"NAG_AGENTS_CONFIG": str(missing)}),
        f"agents config {missing} (named by $NAG_AGENTS_CONFIG) does not exist",
        "unset it to use the defaults",
    )
    one_line_error(run_nag("agent", "probe", "--config", str(missing)), "(named by --config) does not exist")
    one_line_error(run_nag("agent", "probe", "--config", str(tmp_path)), "is not a file")
    (tmp_path / "latin1.yaml").write_bytes(b"adb: {host: caf\xe9}\n")
    one_line_error(run_nag("agent", "probe", "--config", str(tmp_path / "latin1.yaml")), "readable UTF-8 YAML")


def test_accepted_config_values_are_loaded_exactly(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "adb: {host: 10.0.0.5, port: 6037, use_gpu: true, command_timeout_s: 30}\n"
        "ssh:\n"
        "  - {name: rpi, host: 10.0.0.12, port: 2222, user: pi, key_file: ~/.ssh/id, known_hosts: /k/hosts,\n"
        "     runtime: benchmark_model, connect_timeout_s: 2.5}\n"
        "local: false\n"
    )
    config = load_config(path)
    assert config == AgentsConfig(
        adb=AdbConfig(host="10.0.0.5", port=6037, use_gpu=True, command_timeout_s=30.0),
        ssh=(
            SshBoardConfig(
                name="rpi", host="10.0.0.12", port=2222, user="pi", key_file="~/.ssh/id", known_hosts="/k/hosts",
                runtime="benchmark_model", connect_timeout_s=2.5,
            ),
        ),
        local=False,
    )  # fmt: skip
    assert config.adb is not None and type(config.adb.command_timeout_s) is float  # 30 (int) stored as 30.0
    path.write_text("adb: null\nssh: null\n")
    assert load_config(path) == AgentsConfig(adb=None, ssh=(), local=True)
    path.write_text("")
    assert load_config(path) == AgentsConfig()


def test_default_path_may_be_absent_but_not_a_named_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.config/nag/agents.yaml does not exist here
    monkeypatch.delenv("NAG_AGENTS_CONFIG", raising=False)
    assert load_config() == AgentsConfig()
    monkeypatch.setenv("NAG_AGENTS_CONFIG", "")  # empty counts as unset
    assert load_config() == AgentsConfig()
    monkeypatch.setenv("NAG_AGENTS_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(SpecError, match=r"named by \$NAG_AGENTS_CONFIG\) does not exist"):
        load_config()


def test_config_dataclasses_check_programmatic_values() -> None:
    with pytest.raises(SpecError, match="adb: port must be a port number from 1 to 65535, got 99999999"):
        AdbConfig(port=99999999)
    with pytest.raises(SpecError, match="local must be true or false, got 'no'"):
        AgentsConfig(local="no")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="ssh board 'b': host must be a non-empty string, got ''"):
        SshBoardConfig(name="b", host="", user="u", key_file="k")
