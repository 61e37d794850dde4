"""``ssh``: a Linux board reached over SSH (paramiko), timing ONNX Runtime or LiteRT's ``benchmark_model`` there.

One agent holds one SSH connection to one board (:class:`agents.config.SshBoardConfig`); its device id is
``"ssh:<board name>"``. Every command, the SFTP uploads and the runner process share that connection.

Security. Key authentication only (``key_file``; no passwords, no SSH agent, no search of ``~/.ssh``), and
the board's host key is checked against its ``known_hosts`` file. An unknown or changed host key is never
trusted automatically: it raises :class:`HostKeyError` whose message gives the offered key's SHA256
fingerprint and the commands that trust it after it has been checked on the board.

On the board, everything lives in ``remote_dir``, named by content hash: models as
``<sha256[:16]><suffix>``, the ORT runner as ``ort-runner-<sha256[:16]>.py``. A file is uploaded only when
the board lacks one of that name and size, to a temporary name that is then renamed into place, so a dropped
connection never leaves a truncated file under the final name.

Runtimes (the board's ``runtime``):

- ``"ort"`` (``.onnx``): the board needs ``python`` with numpy and onnxruntime. :mod:`agents._ssh_ort_runner`
  is uploaded and started once per measurement; it loads the model (threads, affinity) and then answers
  ``warmup N`` / ``sample N`` lines, so the base class's sampling loop drives it sample by sample.
- ``"benchmark_model"`` (``.tflite``): LiteRT's tool, run once per sample through
  :class:`agents.benchmark_model.BenchmarkModelRunner`.

Errors. Refused host key -> :class:`HostKeyError`; refused client key or unusable key file ->
:class:`AuthenticationError` (both permanent). Connection refused, timed out or dropped (also mid-measurement, and a
remote process that ends without an exit status) -> :class:`DeviceUnavailableError`; a remote command past
``command_timeout_s`` -> :class:`MeasurementTimeoutError` (both transient). A failure is never read as 0 ms.

Thread-safety: as for every agent; the connection (paramiko's transport) is shared by all threads.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import posixpath
import re
import secrets
import shlex
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import paramiko

from agents._base import Agent, Runner
from agents.benchmark_model import BenchmarkModelRunner, shell_command
from agents.config import AgentsConfig, SshBoardConfig
from agents.errors import (
    AgentError,
    AuthenticationError,
    DeviceUnavailableError,
    HostKeyError,
    MeasurementTimeoutError,
    MissingRuntimeError,
    OutputParseError,
    PermanentAgentError,
    SpecError,
    TransientAgentError,
    UnknownDeviceError,
    UnsupportedModelError,
)
from agents.gating import hottest
from agents.sysfs import natural_key, temperatures_c
from agents.types import DeviceInfo, Health, MeasurementSpec, PreparedModel, file_sha256

__all__ = ["SshAgent", "host_key_fingerprint"]

_log = logging.getLogger(__name__)

_FORMATS: dict[str, tuple[str, ...]] = {"ort": (".onnx",), "benchmark_model": (".tflite",)}
_RUNNER_SOURCE = Path(__file__).with_name("_ssh_ort_runner.py")
_SHORT_COMMAND_S = 30.0  # limit for the small commands (fingerprint, sysfs reads, version), capped by command_timeout_s
_HEALTH_S = 10.0
_KEEPALIVE_S = 15  # seconds between keepalives, so a board that vanishes is noticed on an idle connection
_MARK = "--nag-fingerprint--"
# Constant command lines (nothing interpolated): the fingerprint in five parts, and the sysfs readers.
_FINGERPRINT_COMMAND = f"; echo {_MARK}; ".join(
    (
        "uname -srm",
        "nproc 2>/dev/null",
        "cat /proc/cpuinfo 2>/dev/null",
        "cat /etc/os-release 2>/dev/null",
        "cat /proc/device-tree/model 2>/dev/null; true",  # absent on most non-ARM machines
    )
)
_TEMPERATURES_COMMAND = "grep -H . /sys/class/thermal/thermal_zone*/temp 2>/dev/null; true"
_FREQUENCIES_COMMAND = "grep -H . /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq 2>/dev/null; true"
_VERSION = re.compile(r"version[:=\s]+v?(\d[\w.+-]*)", re.IGNORECASE)


def host_key_fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key (what ``ssh-keygen -lf`` prints)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _known_hosts_name(board: SshBoardConfig) -> str:
    return board.host if board.port == 22 else f"[{board.host}]:{board.port}"


def _trust_hint(board: SshBoardConfig, known_hosts: Path) -> str:
    scan = shlex.join(["ssh-keyscan", "-p", str(board.port), board.host])
    return (
        f"check the key on the board itself ('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' there), then trust it "
        f"with '{scan} >> {shlex.quote(str(known_hosts))}' (and compare: '{scan} | ssh-keygen -lf -' prints the "
        "fingerprints it fetched)"
    )


class _RefuseUnknownHostKey(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising :class:`HostKeyError` that says how to trust the key after checking it."""

    def __init__(self, board: SshBoardConfig, known_hosts: Path) -> None:
        self._board, self._known_hosts = board, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"ssh board {self._board.name!r}: host key of {hostname} is UNKNOWN (not in {self._known_hosts}); the board "
            f"offers {key.get_name()} {host_key_fingerprint(key)}. Refusing to connect: "
            + _trust_hint(self._board, self._known_hosts)
        )


def _load_client_key(board: SshBoardConfig) -> Path:
    """The expanded ``key_file`` path, once it is known to hold a usable (unencrypted) private key."""
    path = Path(board.key_file).expanduser()
    fix = f"set 'key_file' of ssh board {board.name!r} to an unencrypted private key whose public half is in the board's authorized_keys"
    if not path.is_file():
        raise AuthenticationError(f"ssh board {board.name!r}: key_file {path} does not exist; {fix}")
    try:
        paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException as exc:
        raise AuthenticationError(f"ssh board {board.name!r}: key_file {path} is passphrase-protected; {fix}") from exc
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise AuthenticationError(
            f"ssh board {board.name!r}: key_file {path} is not a usable private key ({exc}); {fix}"
        ) from exc
    return path


def _connect(board: SshBoardConfig) -> paramiko.SSHClient:
    """An authenticated client for ``board``, its host key checked; raises the typed errors of the module docstring."""
    key_file = _load_client_key(board)
    known_hosts = Path(board.known_hosts).expanduser()
    where = f"ssh board {board.name!r} ({board.user}@{board.host}:{board.port})"
    client = paramiko.SSHClient()
    try:
        if known_hosts.is_file():
            client.load_system_host_keys(str(known_hosts))  # read-only: nothing is ever written back
        client.set_missing_host_key_policy(_RefuseUnknownHostKey(board, known_hosts))
        client.connect(
            board.host, port=board.port, username=board.user, key_filename=str(key_file), look_for_keys=False,
            allow_agent=False, timeout=board.connect_timeout_s, banner_timeout=board.connect_timeout_s,
            auth_timeout=board.connect_timeout_s, channel_timeout=board.connect_timeout_s,
        )  # fmt: skip
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyError(
            f"{where}: REMOTE HOST KEY CHANGED: {known_hosts} holds {exc.expected_key.get_name()} "
            f"{host_key_fingerprint(exc.expected_key)} for {_known_hosts_name(board)}, but the board offers "
            f"{exc.key.get_name()} {host_key_fingerprint(exc.key)}. Someone may be intercepting the connection, or the "
            f"board was reinstalled. Refusing to connect. If the new key is genuine, remove the old entry with "
            f"'{shlex.join(['ssh-keygen', '-R', _known_hosts_name(board), '-f', str(known_hosts)])}', then "
            + _trust_hint(board, known_hosts)
        ) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        raise AuthenticationError(
            f"{where} refused key {key_file}: {exc}; add its public half to ~{board.user}/.ssh/authorized_keys on the board "
            f"('{shlex.join(['ssh-copy-id', '-i', str(key_file), '-p', str(board.port), f'{board.user}@{board.host}'])}')"
        ) from exc
    except (paramiko.SSHException, EOFError, OSError) as exc:
        client.close()
        raise DeviceUnavailableError(
            f"{where} is unreachable: {type(exc).__name__}: {exc}; check that it is powered, on the network and runs sshd"
        ) from exc
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(_KEEPALIVE_S)
    return client


def _sysfs_values(output: str) -> list[int] | None:
    """``grep -H .`` output (``path:value`` lines) as integers in natural path order; None when there are none."""
    found = []
    for line in output.splitlines():
        path, _, value = line.rpartition(":")
        with contextlib.suppress(ValueError):
            found.append((path, int(value.strip())))
    return [value for _, value in sorted(found, key=lambda item: natural_key(item[0]))] or None


def _parse_fingerprint(output: str) -> dict[str, str]:
    parts = [*(part.strip() for part in output.split(_MARK)), "", "", "", "", ""][:5]
    uname, cores, cpuinfo, os_release, board_model = parts
    system, _, machine = uname.rpartition(" ")
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    cpu = fields.get("model name") or fields.get("hardware") or fields.get("cpu model")
    if not cpu and "cpu part" in fields:
        cpu = f"implementer {fields.get('cpu implementer', '?')} part {fields['cpu part']}"
    fingerprint = {"cpu": cpu or machine, "machine": machine, "cores": cores or "unknown", "os": system}
    for line in os_release.splitlines():
        if line.startswith("PRETTY_NAME="):
            fingerprint["distro"] = line.partition("=")[2].strip().strip("\"'")
    if board_model.strip("\x00 "):
        fingerprint["board"] = board_model.strip("\x00 ")
    return fingerprint


class SshAgent(Agent):
    """A Linux board over SSH. Create with :meth:`open` (connects and checks the host key)."""

    kind: ClassVar[str] = "ssh"
    format_per_device: ClassVar[bool] = True
    model_formats: tuple[str, ...] = (
        ".onnx",
        ".tflite",
    )  # over all boards; each instance narrows it to its runtime's (see __init__)

    def __init__(self, board: SshBoardConfig, client: paramiko.SSHClient) -> None:
        """Wrap an authenticated ``client`` to ``board``; :meth:`open` is the way to get one."""
        super().__init__()
        self.model_formats = _FORMATS[board.runtime]  # the board's runtime decides the format it runs
        self.board = board
        self._client = client
        self._lock = threading.RLock()  # guards the lazily created state below
        self._sftp: paramiko.SFTPClient | None = None
        self._remote_dir: str | None = None
        self._runner_path: str | None = None
        self._runtime: tuple[str, str, str | None] | None = None
        self._info: DeviceInfo | None = None

    # -- discovery and identity ----------------------------------------------------------------------
    @classmethod
    def probe(cls, config: AgentsConfig) -> list[DeviceInfo]:
        """One :class:`DeviceInfo` per configured board that answers, read over a fresh connection.

        A board that cannot be reached (refused, timed out) is left out and logged. A board that is reached
        but refused -- an unknown or changed host key, or a rejected client key -- is never skipped silently:
        after every board has been tried, probe raises it (:class:`HostKeyError` / :class:`AuthenticationError`; with
        several such boards, one error of the common type whose message lists them all).
        """
        devices: list[DeviceInfo] = []
        refused: list[PermanentAgentError] = []
        for board in config.ssh:
            try:
                with cls._connect_board(board) as agent:
                    devices.append(agent.describe())
            except TransientAgentError as exc:
                _log.warning("ssh board %r left out of the probe: %s", board.name, exc)
            except PermanentAgentError as exc:
                refused.append(exc)
        if len(refused) == 1:
            raise refused[0]
        if refused:
            kinds = {type(exc) for exc in refused}
            error_type = kinds.pop() if len(kinds) == 1 else PermanentAgentError
            raise error_type(f"{len(refused)} ssh boards refused: " + " || ".join(str(exc) for exc in refused))
        return devices

    @classmethod
    def open(cls, device_id: str | None, config: AgentsConfig) -> SshAgent:
        """Connect to board ``device_id`` ("ssh:<name>"; None: the first configured board)."""
        if not config.ssh:
            raise UnknownDeviceError("no ssh boards are configured; add one under 'ssh:' in the agents config (agents.config)")
        if device_id is None:
            return cls._connect_board(config.ssh[0])
        for board in config.ssh:
            if f"{cls.kind}:{board.name}" == device_id:
                return cls._connect_board(board)
        configured = ", ".join(f"{cls.kind}:{b.name}" for b in config.ssh)
        raise UnknownDeviceError(
            f"no ssh board {device_id!r} in the agents config; the configured boards, the only ones reachable: {configured}"
        )

    @classmethod
    def _connect_board(cls, board: SshBoardConfig) -> SshAgent:
        agent = cls(board, _connect(board))
        try:
            output = agent._run_checked(_FINGERPRINT_COMMAND, what="reading the fingerprint")
            agent._info = DeviceInfo(kind=cls.kind, device_id=agent.device_id, fingerprint=_parse_fingerprint(output))
        except BaseException:
            agent.close()
            raise
        return agent

    @property
    def device_id(self) -> str:
        return f"{self.kind}:{self.board.name}"

    def describe(self) -> DeviceInfo:
        """The board's fingerprint (uname, CPU, distribution, board model, cores), read once when connecting."""
        if self._info is None:  # only while _connect_board is still reading it
            raise DeviceUnavailableError(f"{self.device_id}: not connected; use SshAgent.open")
        return self._info

    def provenance(self) -> dict[str, str]:
        if self.board.runtime == "ort":
            return {"execution_provider": "CPUExecutionProvider"}
        return {"delegate": "xnnpack (benchmark_model --use_xnnpack=true)"}

    def runtime(self) -> tuple[str, str, str | None]:
        """Asked of the board once: ("onnxruntime", version, None) or ("benchmark_model", version, binary SHA-256)."""
        with self._lock:
            if self._runtime is None:
                self._runtime = self._ort_runtime() if self.board.runtime == "ort" else self._benchmark_model_runtime()
            return self._runtime

    def _ort_runtime(self) -> tuple[str, str, str | None]:
        command = shlex.join([self.board.python, self._runner(), "--version"])
        status, output = self._exec(command, timeout_s=self._short_timeout, what="asking the runner for its version")
        answer = _last_json(output)
        if status != 0 or answer is None or "onnxruntime" not in answer:
            raise _runner_failure(self, answer, status, output)
        return "onnxruntime", str(answer["onnxruntime"]), None

    def _benchmark_model_runtime(self) -> tuple[str, str, str | None]:
        binary = self.board.benchmark_model
        status, output = self._exec(
            shlex.join(["command", "-v", binary]), timeout_s=self._short_timeout, what="finding benchmark_model"
        )
        found = output.strip().splitlines()
        if status != 0 or not found:
            raise MissingRuntimeError(
                f"{self.device_id}: benchmark_model {binary!r} is not on the board; copy LiteRT's benchmark_model there "
                "and set 'benchmark_model' in the board's config to its path"
            )
        path = found[-1].strip()
        digest = self._run_checked(shlex.join(["sha256sum", "--", path]), what="hashing benchmark_model").split()
        if not digest or not re.fullmatch(r"[0-9a-f]{64}", digest[0]):
            raise OutputParseError(f"{self.device_id}: sha256sum of {path} printed no hash: {' '.join(digest)[:200]!r}")
        status, output = self._exec(
            shlex.join([path, "--version"]), timeout_s=self._short_timeout, what="asking benchmark_model's version"
        )
        version = _VERSION.search(output) if status == 0 else None
        return "benchmark_model", version.group(1) if version else "unknown", digest[0]

    # -- device hooks ---------------------------------------------------------------------------------
    def _place(self, path: Path, sha256: str) -> tuple[str, bool]:
        """Upload ``path`` as ``<remote_dir>/<sha256[:16]><suffix>`` unless the board holds that name and size."""
        return self._upload(path, f"{sha256[:16]}{path.suffix}")

    def _open_runner(self, prepared: PreparedModel, spec: MeasurementSpec) -> Runner:
        if self.board.runtime == "benchmark_model":
            self.runtime()  # fails fast, and permanently, when the board lacks the tool

            def execute(argv: list[str]) -> tuple[int, str]:
                return self._exec(shell_command(argv), timeout_s=self.board.command_timeout_s, what="benchmark_model")

            return BenchmarkModelRunner(
                execute, binary=self.board.benchmark_model, graph=prepared.device_path, threads=spec.threads,
                warmup_runs=spec.warmup_runs, run_delay_s=0.0, use_xnnpack=True, use_gpu=False, affinity=spec.affinity,
            )  # fmt: skip
        argv = [self.board.python, self._runner(), prepared.device_path, "--threads", str(spec.threads)]
        if spec.affinity is not None:
            argv += ["--affinity", ",".join(str(cpu) for cpu in spec.affinity)]
        return _OrtRunner(self, shlex.join(argv))

    def read_temperatures(self) -> list[float] | None:
        """Every ``/sys/class/thermal/thermal_zone*/temp`` on the board in degrees C; None where there is none."""
        return temperatures_c(_sysfs_values(self._run_checked(_TEMPERATURES_COMMAND, what="reading temperatures")) or [])

    def read_cpu_freqs(self) -> list[int] | None:
        """Every core's ``scaling_cur_freq`` on the board in kHz; None where cpufreq is not exposed."""
        return _sysfs_values(self._run_checked(_FREQUENCIES_COMMAND, what="reading CPU frequencies"))

    # -- lifecycle -------------------------------------------------------------------------------------
    def health(self) -> Health:
        """Runs ``true`` on the board with a short limit (and reads its temperature); reports, never raises."""
        try:
            status, output = self._exec("true", timeout_s=min(_HEALTH_S, self.board.command_timeout_s), what="health check")
            if status != 0:
                return Health(ok=False, detail=f"{self.device_id}: 'true' exited with status {status}: {output[-200:]}")
            temperature = hottest(self.read_temperatures())
        except AgentError as exc:
            return Health(ok=False, detail=f"{type(exc).__name__}: {exc}")
        return Health(ok=True, detail=f"{self.device_id} answers", temperature_c=temperature)

    def close(self) -> None:
        """Close the SFTP session and the connection; idempotent."""
        with self._lock:
            if self._sftp is not None:
                with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                    self._sftp.close()
                self._sftp = None
            self._client.close()
        super().close()

    def __enter__(self) -> SshAgent:
        return self

    # -- remote execution ------------------------------------------------------------------------------
    @property
    def _short_timeout(self) -> float:
        return min(_SHORT_COMMAND_S, self.board.command_timeout_s)

    def _dropped(self, what: str, exc: BaseException | None = None) -> DeviceUnavailableError:
        transport = self._client.get_transport()
        settle = time.monotonic() + 0.5  # a dying transport closes its channels a moment before it marks itself inactive
        while not self._closed and transport is not None and transport.is_active() and time.monotonic() < settle:
            time.sleep(0.02)
        if self._closed:
            cause = "the agent was closed"
        elif transport is None or not transport.is_active():
            cause = "the connection dropped"
        else:
            cause = "the remote process ended without an exit status (killed by a signal, e.g. out of memory, or crashed)"
        detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        return DeviceUnavailableError(f"{self.device_id}: {cause} while {what}{detail}; retry once the board is back")

    def _channel(self, what: str) -> paramiko.Channel:
        """A new session channel on the connection; DeviceUnavailableError when the connection is gone."""
        transport = self._client.get_transport()
        if self._closed or transport is None or not transport.is_active():
            raise self._dropped(what)
        try:
            return transport.open_session(timeout=self.board.connect_timeout_s)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._dropped(what, exc) from exc

    def _exec(self, command: str, *, timeout_s: float, what: str) -> tuple[int, str]:
        """Run one (already quoted) shell command line; (exit status, stdout and stderr interleaved).

        Raises :class:`MeasurementTimeoutError` when it has not finished within ``timeout_s`` (the channel is then
        closed) and :class:`DeviceUnavailableError` when the connection drops or no exit status comes back.
        """
        channel = self._channel(what)
        chunks: list[bytes] = []
        try:
            channel.set_combine_stderr(True)
            channel.exec_command(command)
            channel.shutdown_write()  # no input: commands that read stdin see its end
            deadline = time.monotonic() + timeout_s
            while data := _recv(channel, deadline, lambda: self._timed_out(what, timeout_s)):
                chunks.append(data)
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise self._timed_out(what, timeout_s)
            status = channel.exit_status
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._dropped(what, exc) from exc
        finally:
            channel.close()
        if status == -1:
            raise self._dropped(what)
        return status, b"".join(chunks).decode(errors="replace")

    def _run_checked(self, command: str, *, what: str) -> str:
        """Output of a short constant command that must succeed (a failure is the board's problem, not ours)."""
        status, output = self._exec(command, timeout_s=self._short_timeout, what=what)
        if status != 0:
            raise PermanentAgentError(f"{self.device_id}: {what} failed with status {status}: {output.strip()[-300:]}")
        return output

    def _timed_out(self, what: str, timeout_s: float) -> MeasurementTimeoutError:
        return MeasurementTimeoutError(
            f"{self.device_id}: {what} did not finish within {timeout_s:g} s; raise the board's command_timeout_s "
            "if the board is just slow"
        )

    # -- files -----------------------------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None:
                self._channel("opening SFTP").close()  # the typed error when the connection is already gone
                try:
                    self._sftp = self._client.open_sftp()
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise self._dropped("opening SFTP", exc) from exc
            return self._sftp

    def _remote_directory(self) -> str:
        """``remote_dir`` created on the board, as an absolute path (a leading ``~/`` means the home directory)."""
        with self._lock:
            if self._remote_dir is None:
                wanted = self.board.remote_dir
                relative = wanted  # SFTP and commands both start in the home directory, so "~/x" is "x"
                if wanted == "~" or wanted.startswith("~/"):
                    relative = wanted[2:] or "."
                self._run_checked(shlex.join(["mkdir", "-p", "--", relative]), what=f"creating remote_dir {wanted}")
                try:
                    self._remote_dir = str(self._sftp_client().normalize(relative))
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise self._dropped(f"resolving remote_dir {wanted}", exc) from exc
            return self._remote_dir

    def _upload(self, local: Path, name: str) -> tuple[str, bool]:
        """``(remote path, copied now)``: ``local`` as ``<remote_dir>/<name>``, uploaded only when missing or of another size."""
        remote = posixpath.join(self._remote_directory(), name)
        sftp = self._sftp_client()
        what = f"uploading {local.name} to {remote}"
        try:
            with contextlib.suppress(FileNotFoundError):
                if sftp.stat(remote).st_size == local.stat().st_size:
                    return remote, False
            partial = f"{remote}.part-{secrets.token_hex(4)}"
            try:
                sftp.put(str(local), partial, confirm=True)
                sftp.posix_rename(partial, remote)
            except BaseException:
                with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                    sftp.remove(partial)
                raise
        except PermissionError as exc:
            raise PermanentAgentError(
                f"{self.device_id}: permission denied {what}; make remote_dir writable by {self.board.user}"
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._dropped(what, exc) from exc
        return remote, True

    def _runner(self) -> str:
        """The ORT runner script's path on the board, uploaded once per content hash."""
        with self._lock:
            if self._runner_path is None:
                digest = file_sha256(_RUNNER_SOURCE)
                self._runner_path, _ = self._upload(_RUNNER_SOURCE, f"ort-runner-{digest[:16]}.py")
            return self._runner_path


def _recv(channel: paramiko.Channel, deadline: float, timed_out: Any) -> bytes:
    """The next chunk of a channel's output (b"" at its end); raises ``timed_out()`` past ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise timed_out()
    channel.settimeout(remaining)
    try:
        return channel.recv(65536)
    except TimeoutError as exc:
        raise timed_out() from exc


def _last_json(output: str) -> dict[str, Any] | None:
    """The last line of ``output`` that is a JSON object, or None."""
    for line in reversed(output.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None


def _runner_failure(agent: SshAgent, answer: dict[str, Any] | None, status: int, output: str) -> AgentError:
    """The typed error for a runner that answered ``{"error": ...}``, or exited without a valid answer."""
    where = f"{agent.device_id} (python {agent.board.python!r})"
    tail = " | ".join(output.strip().splitlines()[-4:])[-400:] or "(no output)"
    if answer is not None and "error" in answer:
        message = f"{where}: {answer['error']}"
        kind = answer.get("kind")
        if kind == "missing-runtime":
            return MissingRuntimeError(message)
        if kind == "model":
            return UnsupportedModelError(message)
        if kind == "spec":
            return SpecError(message)
        return PermanentAgentError(message)
    if status == 127:
        return MissingRuntimeError(
            f"{where}: the interpreter is not on the board ({tail}); install python3 or set 'python' in the board's config"
        )
    return OutputParseError(f"{where}: the ORT runner exited with status {status} and no valid answer; output ends: {tail}")


class _OrtRunner:
    """A :class:`Runner`: one ORT runner process on the board, driven line by line over its stdin and stdout."""

    def __init__(self, agent: SshAgent, command: str) -> None:
        self._agent = agent
        self._timeout_s = agent.board.command_timeout_s
        self._buffer = b""
        self._stderr = b""
        self._channel = agent._channel("starting the ORT runner")
        try:
            self._channel.exec_command(command)
            self._request(None, "loading the model")
        except BaseException:
            self.close()
            raise

    def warmup(self, runs: int) -> None:
        self._request(f"warmup {runs}", f"running {runs} warm-up inferences")

    def sample(self, runs: int) -> float:
        answer = self._request(f"sample {runs}", f"timing {runs} inferences")
        value = answer.get("ms")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise OutputParseError(f"{self._agent.device_id}: the ORT runner answered an impossible latency: {answer!r}")
        return float(value)

    def close(self) -> None:
        """Ask the runner to quit and close the channel; idempotent, never raises (the measurement's error wins)."""
        if self._channel.closed:
            return
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            self._channel.sendall(b"quit\n")
            self._channel.shutdown_write()
        self._channel.close()

    def _request(self, line: str | None, what: str) -> dict[str, Any]:
        """Send ``line`` (None: just read) and return the runner's next answer; typed errors for failures."""
        agent = self._agent
        try:
            if line is not None:
                self._channel.sendall(line.encode() + b"\n")
            deadline = time.monotonic() + self._timeout_s
            while b"\n" not in self._buffer:
                while self._channel.recv_stderr_ready():  # keep the runner's stderr from stalling its stdout
                    self._stderr = (self._stderr + self._channel.recv_stderr(65536))[-4096:]
                data = _recv(self._channel, deadline, lambda: agent._timed_out(f"the ORT runner {what}", self._timeout_s))
                if not data:
                    return self._ended(what)
                self._buffer += data
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise agent._dropped(f"the ORT runner was {what}", exc) from exc
        raw, _, self._buffer = self._buffer.partition(b"\n")
        answer = _last_json(raw.decode(errors="replace"))
        if answer is None:
            raise OutputParseError(f"{agent.device_id}: the ORT runner answered {raw[:200]!r}, not a JSON object")
        if "error" in answer:
            raise _runner_failure(agent, answer, 2, "")
        return answer

    def _ended(self, what: str) -> dict[str, Any]:
        """The runner's output ended before an answer: raise why (dropped, killed, or exited)."""
        self._channel.status_event.wait(min(5.0, self._timeout_s))
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            while self._channel.recv_stderr_ready():
                self._stderr += self._channel.recv_stderr(65536)
        status = self._channel.exit_status if self._channel.exit_status_ready() else -1
        if status == -1:
            raise self._agent._dropped(f"the ORT runner was {what}")
        output = (self._buffer + b"\n" + self._stderr).decode(errors="replace")
        raise _runner_failure(self._agent, _last_json(self._buffer.decode(errors="replace")), status, output)
