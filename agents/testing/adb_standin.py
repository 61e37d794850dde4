"""An ADB server stand-in: the real adb host protocol on 127.0.0.1, with simulated phones behind it.

A client cannot tell it from ``adb start-server`` with phones attached: ``adbutils.AdbClient(host=
"127.0.0.1", port=server.port)`` and Debian's ``adb -H 127.0.0.1 -P PORT ...`` both work against it. It
stands in for the phone only; the client code under test is the real thing.

Wire protocol (as the real server speaks it). A request is 4 hex digits of length then the text; the
reply is ``OKAY``, or ``FAIL`` + 4 hex digits + message. Host services (one per connection, which then
closes): ``host:version`` (``0029``: 41, the version of Debian's adb 1.0.41, so its client does not kill
the server), ``host:kill`` (answered, ignored), ``host:devices``, ``host:devices-l``,
``host:track-devices[-l]``, ``host:host-features``, ``host[-serial:S|-transport-id:N|-usb]:features``,
``...:get-state``, ``...:get-serialno``, ``...:get-devpath``, ``...:list-forward`` (none),
``...:wait-for-TRANSPORT-STATE``. Transport switches, after which the same connection carries one
device service: ``host:transport:S``, ``host:transport-id:N``, ``host:transport-any``/``-usb``,
``host:tport:serial:S``/``any``/``usb`` (these answer the 8-byte little-endian transport id after
``OKAY``); a device service sent with no switch goes to the only device. Device services:

* ``shell:CMD``, ``exec:CMD`` -- output (standard error merged in) until the connection closes; no exit
  status, as on a real phone.
* ``shell,v2[,raw|,pty|,TERM=...]:CMD`` -- packets ``id (1 byte) + length (4 bytes LE) + data``: 1
  stdout, 2 stderr, 3 exit status (1 byte), then the device closes; client packets (0 stdin, 4
  close-stdin, 5 window size) are read and ignored.
* ``sync:`` -- ``STAT``, ``STA2``/``LST2`` (stat_v2), ``LIST``, ``LIS2`` (ls_v2), ``SEND``
  (``path,mode`` then ``DATA`` chunks of at most 64 KiB and ``DONE`` + mtime; parent folders are
  created), ``RECV``, ``QUIT``.

Devices advertise the features ``shell_v2,stat_v2,ls_v2,fixed_push_mkdir``. Their shell is the subset of
Android's ``sh`` in :mod:`agents.testing._standin_shell`; their files are a host folder plus computed
sysfs files (:mod:`agents.testing._standin_fs`). Services and host requests the stand-in does not
imitate (port forwarding, ``connect``, interactive shells) answer ``FAIL`` with a message
that says so, never a fake success.

Faults (``StandinDevice.fault``, read at each ``benchmark_model`` start): ``"garbage"`` prints plausible
log lines without timings and exits 0; ``"vanish"`` prints the first lines, then the device is unplugged
(:meth:`AdbStandinServer.remove_device`): every connection to it closes with no exit status and it leaves
``host:devices``; ``"hang"`` prints the first lines, then nothing until the client disconnects.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import cast

from agents.testing._standin_fs import DeviceFS
from agents.testing._standin_shell import DeviceVanished, Shell, ShellContext
from agents.testing._standin_wire import Connection, ProtocolError, SyncService

__all__ = [
    "ADB_SERVER_VERSION",
    "DEFAULT_PROPS",
    "DEVICE_FEATURES",
    "FAULTS",
    "AdbStandinServer",
    "StandinDevice",
]

log = logging.getLogger(__name__)

ADB_SERVER_VERSION = 41  # answered to host:version as "0029"; Debian's adb 1.0.41 (29.0.6) expects exactly this
DEVICE_FEATURES = ("shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir")
FAULTS = (None, "garbage", "vanish", "hang")

# A Pixel 7's answers; a device's own ``props`` override these, and ``ro.serialno`` is its serial.
DEFAULT_PROPS: dict[str, str] = {
    "ro.product.model": "Pixel 7",
    "ro.product.manufacturer": "Google",
    "ro.product.brand": "google",
    "ro.product.name": "panther",
    "ro.product.device": "panther",
    "ro.board.platform": "gs201",
    "ro.soc.manufacturer": "Google",
    "ro.soc.model": "GS201",
    "ro.hardware": "panther",
    "ro.build.fingerprint": "google/panther/panther:14/UQ1A.240205.004/11269751:user/release-keys",
    "ro.build.version.release": "14",
    "ro.build.version.sdk": "34",
    "ro.build.type": "user",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
}
_DEFAULT_TEMPERATURES_C = [36.5, 35.0, 34.2, 33.8]
_DEFAULT_CPU_FREQS_KHZ = [1803000] * 4 + [2348000] * 2 + [2850000] * 2  # 4 little, 2 mid, 2 big cores
_BENCHMARK_BINARY = (
    b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\n# stand-in for LiteRT's benchmark_model: executing this path on the "
    b"ADB stand-in runs agents.testing.benchmark_model on the host\n"
)


def _values(source: object) -> list[float]:
    """The current values of a ``list`` or zero-argument callable field."""
    values = source() if callable(source) else source
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"expected a list of numbers (or a callable giving one); got {type(values).__name__}")
    return [float(v) for v in values]


@dataclass(kw_only=True)
class StandinDevice:
    """One simulated phone. Fields may be changed while it is attached: each command reads them afresh.

    The numbers of thermal zones and CPUs are fixed by the first reading of ``temperatures_c`` and
    ``cpu_freqs_khz``; later readings must give as many values.
    """

    serial: str  # as listed by host:devices; no whitespace
    props: dict[str, str] = field(default_factory=dict)  # getprop answers, over DEFAULT_PROPS
    root: Path  # host folder holding the device's files: device /a/b is root/a/b
    benchmark_model_path: str = "/data/local/tmp/benchmark_model"  # executing it runs the benchmark_model stand-in
    # /sys/class/thermal/thermal_zoneN/temp, in degrees C (served in millidegrees); a callable is read at each `cat`
    temperatures_c: Callable[[], list[float]] | list[float] = field(default_factory=lambda: list(_DEFAULT_TEMPERATURES_C))
    # /sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq, in kHz; a callable is read at each `cat`
    cpu_freqs_khz: Callable[[], list[int]] | list[int] = field(default_factory=lambda: list(_DEFAULT_CPU_FREQS_KHZ))
    cpu_max_freqs_khz: list[int] | None = None  # .../cpuinfo_max_freq; None: the first cpu_freqs_khz reading
    fault: str | None = None  # one of FAULTS: what benchmark_model does instead of benchmarking
    # every inference takes this factor longer (1.15: a phone 15% slower); a callable is read at every inference
    slowdown: Callable[[], float] | float = 1.0

    def current_slowdown(self) -> float:
        factor = float(self.slowdown() if callable(self.slowdown) else self.slowdown)
        if not factor >= 1.0:
            raise ValueError(f"a stand-in's slowdown must be a factor >= 1, got {factor!r}")
        return factor

    def __post_init__(self) -> None:
        if not self.serial or any(char.isspace() or not char.isprintable() for char in self.serial):
            raise ValueError(f"a device serial must be non-empty, printable and without whitespace; got {self.serial!r}")
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; valid faults: {', '.join(map(repr, FAULTS))}")
        self.root = Path(self.root)
        self.props = {**DEFAULT_PROPS, "ro.serialno": self.serial, **self.props}
        freqs = [int(f) for f in _values(self.cpu_freqs_khz)]
        if not freqs:
            raise ValueError("cpu_freqs_khz must give at least one CPU's frequency")
        self.cpu_max_freqs_khz = list(self.cpu_max_freqs_khz or freqs)
        if len(self.cpu_max_freqs_khz) != len(freqs):
            raise ValueError(f"cpu_max_freqs_khz has {len(self.cpu_max_freqs_khz)} values for {len(freqs)} CPUs")
        self._cpu_count = len(freqs)
        self._zone_count = len(_values(self.temperatures_c))

    @property
    def cpu_count(self) -> int:
        """What ``nproc`` says: the number of CPUs (fixed by the first frequency reading)."""
        return self._cpu_count

    def computed_files(self) -> dict[str, Callable[[], bytes]]:
        """The device's sysfs files (and ``/dev/null``), each read afresh."""
        files: dict[str, Callable[[], bytes]] = {"/dev/null": _constant(b"")}
        for zone in range(self._zone_count):
            base = f"/sys/class/thermal/thermal_zone{zone}"
            files[f"{base}/type"] = _constant(f"cpu-thermal{zone}\n".encode())
            files[f"{base}/temp"] = self._reader(zone, "temperatures_c", scale=1000)
        cpus = f"0-{self._cpu_count - 1}\n" if self._cpu_count > 1 else "0\n"
        for name in ("online", "possible", "present"):
            files[f"/sys/devices/system/cpu/{name}"] = _constant(cpus.encode())
        maxima = self.cpu_max_freqs_khz or []
        for cpu in range(self._cpu_count):
            base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
            files[f"{base}/scaling_cur_freq"] = self._reader(cpu, "cpu_freqs_khz", scale=1)
            files[f"{base}/cpuinfo_max_freq"] = _constant(f"{maxima[cpu]}\n".encode())
            files[f"{base}/scaling_max_freq"] = _constant(f"{maxima[cpu]}\n".encode())
        return files

    def _reader(self, index: int, field_name: str, *, scale: int) -> Callable[[], bytes]:
        """A file reading value ``index`` of the field named ``field_name`` (looked up at each read)."""

        def read() -> bytes:
            values = _values(getattr(self, field_name))
            if index >= len(values):
                raise OSError(errno.ENODEV, f"{field_name} gave {len(values)} values, fewer than the device has")
            return f"{round(values[index] * scale)}\n".encode()

        return read


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


@dataclass
class _Attached:
    device: StandinDevice
    transport_id: int
    fs: DeviceFS
    connections: set[Connection] = field(default_factory=set)


class _SelectionError(Exception):
    """No single device matches a host request's selector; the message is the server's FAIL text."""


# -- the server ------------------------------------------------------------------------------------


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], standin: AdbStandinServer) -> None:
        self.standin = standin
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        cast(_TCPServer, self.server).standin._serve(self.request)


class AdbStandinServer:
    """An adb server on ``host`` (a loopback address) with ``devices`` attached; thread-safe.

    Lifecycle: construct, :meth:`start` (or ``with``), then :attr:`port` is the bound port (``port=0``
    picks a free one); :meth:`stop` closes every connection, waits for their threads and frees the port.
    Devices may be added and removed at any time; a removal is an unplug.
    """

    def __init__(self, devices: Iterable[StandinDevice] = (), *, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            loopback = ipaddress.IPv4Address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"the ADB stand-in serves IPv4 loopback addresses only; got host={host!r}, use '127.0.0.1'")
        self._address = (host, port)
        self._lock = threading.Condition()  # guards everything below; notified on every device change
        self._devices: dict[str, _Attached] = {}
        self._transport_ids = itertools.count(1)
        self._connections: set[Connection] = set()
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        for device in devices:
            self.add_device(device)

    # -- lifecycle

    def start(self) -> AdbStandinServer:
        """Bind and serve in a background thread; returns self. Raises ``RuntimeError`` when started twice."""
        if self._server is not None:
            raise RuntimeError("the ADB stand-in server is already started; create a new one")
        self._server = _TCPServer(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="adb-standin", daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        """The port the server listens on; raises ``RuntimeError`` before :meth:`start`."""
        if self._server is None:
            raise RuntimeError("the ADB stand-in server is not started; call start() first")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return self._address[0]

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop serving: close every connection (running commands end without exit status) and wait."""
        if self._server is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for connection in self._connections:
                connection.abort()
            self._lock.notify_all()
            if not self._lock.wait_for(lambda: not self._connections, timeout=timeout_s):
                log.warning("ADB stand-in: %d connections still open after %.0f s", len(self._connections), timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> AdbStandinServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()

    # -- devices

    def add_device(self, device: StandinDevice) -> None:
        """Plug ``device`` in: create its root, ``/data/local/tmp`` and its benchmark_model file (0755).

        Raises ``ValueError`` when a device with its serial is attached.
        """
        fs = DeviceFS(device.root, device.computed_files())
        fs.host_path("/data/local/tmp").mkdir(parents=True, exist_ok=True)
        binary = fs.host_path(device.benchmark_model_path)
        if not binary.exists():
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_bytes(_BENCHMARK_BINARY)
            binary.chmod(0o755)
        with self._lock:
            if device.serial in self._devices:
                raise ValueError(f"a device with serial {device.serial!r} is already attached; remove it first")
            self._devices[device.serial] = _Attached(device, next(self._transport_ids), fs)
            self._lock.notify_all()

    def remove_device(self, serial: str) -> StandinDevice:
        """Unplug a device: it leaves host:devices and its open connections close with no exit status.

        Returns the device. Raises ``KeyError`` when no device has that serial.
        """
        with self._lock:
            attached = self._devices.pop(serial, None)
            if attached is None:
                raise KeyError(f"no attached device has serial {serial!r}; attached: {', '.join(self._devices) or 'none'}")
            for connection in attached.connections:
                connection.abort()
            self._lock.notify_all()
        return attached.device

    def serials(self) -> list[str]:
        """The attached devices' serials, in the order they were plugged in."""
        with self._lock:
            return list(self._devices)

    # -- connections

    def _serve(self, sock: socket.socket) -> None:
        connection = Connection(sock)
        with self._lock:
            if self._stopping.is_set():
                sock.close()
                return
            self._connections.add(connection)
        try:
            self._session(connection)
        except (DeviceVanished, ProtocolError) as exc:
            log.debug("ADB stand-in: connection ended: %s", exc)
        except OSError as exc:
            log.debug("ADB stand-in: connection failed: %s", exc)
        finally:
            with self._lock:
                self._connections.discard(connection)
                for attached in self._devices.values():
                    attached.connections.discard(connection)
                self._lock.notify_all()
            sock.close()

    def _session(self, connection: Connection) -> None:
        request = connection.read_request()
        if request is None:
            return
        if request.startswith(("host:", "host-serial:", "host-transport-id:", "host-usb:", "host-local:")):
            attached = self._host_service(connection, request)
            if attached is None:
                return
            request = connection.read_request()
            if request is None:
                return
        else:
            try:
                attached = self._select(("any", ""))
            except _SelectionError as exc:
                connection.fail(str(exc))
                return
            self._attach(connection, attached)
        self._device_service(connection, attached, request)

    def _attach(self, connection: Connection, attached: _Attached) -> None:
        with self._lock:
            if self._devices.get(attached.device.serial) is not attached:
                raise DeviceVanished(f"device '{attached.device.serial}' went away")
            attached.connections.add(connection)

    def _select(self, selector: tuple[str, str]) -> _Attached:
        """The one device a selector names: ("serial", S), ("id", N), ("any"|"usb"|"local", "")."""
        kind, value = selector
        with self._lock:
            devices = list(self._devices.values())
        if kind == "serial":
            found = [a for a in devices if a.device.serial == value]
            if not found:
                raise _SelectionError(f"device '{value}' not found")
        elif kind == "id":
            found = [a for a in devices if str(a.transport_id) == value]
            if not found:
                raise _SelectionError(f"no device with transport id '{value}'")
        elif kind == "local":
            raise _SelectionError("no emulators found")
        else:
            found = devices
            if not found:
                raise _SelectionError("no devices/emulators found")
            if len(found) > 1:
                raise _SelectionError("more than one device/emulator")
        return found[0]

    def _split_selector(self, request: str) -> tuple[tuple[str, str], str]:
        """A host request's (selector, command): ``host-serial:S:CMD`` -> (("serial", S), CMD)."""
        if request.startswith("host-serial:"):
            rest = request[len("host-serial:") :]
            with self._lock:
                known = sorted(self._devices, key=len, reverse=True)
            serial = next((s for s in known if rest.startswith(s + ":")), rest.partition(":")[0])
            return ("serial", serial), rest[len(serial) + 1 :]
        if request.startswith("host-transport-id:"):
            number, _, command = request[len("host-transport-id:") :].partition(":")
            return ("id", number), command
        prefix, _, command = request.partition(":")
        return ({"host-usb": "usb", "host-local": "local"}.get(prefix, "any"), ""), command

    def _listing(self, *, long: bool) -> str:
        with self._lock:
            devices = list(self._devices.values())
        lines = []
        for attached in devices:
            serial, props = attached.device.serial, attached.device.props
            if not long:
                lines.append(f"{serial}\tdevice\n")
                continue
            model = "".join(c if c.isalnum() else "_" for c in props.get("ro.product.model", ""))
            lines.append(
                f"{serial:<22} device usb:1-{attached.transport_id} product:{props.get('ro.product.name', '')} "
                f"model:{model} device:{props.get('ro.product.device', '')} transport_id:{attached.transport_id}\n"
            )
        return "".join(lines)

    def _host_service(self, connection: Connection, request: str) -> _Attached | None:
        """Answer a host request; returns the device when it switched the connection to a transport."""
        selector, command = self._split_selector(request)
        try:
            return self._host_command(connection, selector, command)
        except _SelectionError as exc:
            connection.fail(str(exc))
            return None

    def _host_command(self, connection: Connection, selector: tuple[str, str], command: str) -> _Attached | None:
        if command == "version":
            connection.okay()
            connection.block(f"{ADB_SERVER_VERSION:04x}")
        elif command == "kill":
            log.warning("ADB stand-in: a client asked the server to exit (host:kill); it keeps serving")
            connection.okay()
        elif command in ("devices", "devices-l"):
            connection.okay()
            connection.block(self._listing(long=command == "devices-l"))
        elif command in ("track-devices", "track-devices-l"):
            self._track(connection, long=command.endswith("-l"))
        elif command == "host-features":
            connection.okay()
            connection.block(",".join(DEVICE_FEATURES))
        elif command in ("features", "get-state", "get-serialno", "get-devpath", "list-forward"):
            attached = self._select(selector)
            answers = {
                "features": ",".join(DEVICE_FEATURES),
                "get-state": "device",
                "get-serialno": attached.device.serial,
                "get-devpath": f"usb:1-{attached.transport_id}",
                "list-forward": "",
            }
            connection.okay()
            connection.block(answers[command])
        elif command.startswith("wait-for-"):
            self._wait_for(connection, selector, command)
        elif command.startswith(("transport", "tport:")):
            return self._switch(connection, command)
        else:
            what = command.partition(":")[0]
            known = ("forward", "killforward", "killforward-all", "connect", "disconnect", "pair", "reconnect", "mdns")
            connection.fail(
                f"the ADB stand-in does not imitate host service '{what}'" if what in known else "unknown host service"
            )
        return None

    def _switch(self, connection: Connection, command: str) -> _Attached | None:
        """``transport:S``, ``transport-id:N``, ``transport-any``/``-usb``/``-local``, ``tport:...``."""
        tport = command.startswith("tport:")
        target = command[len("tport:") :] if tport else command
        selectors = {"transport-any": ("any", ""), "transport-usb": ("usb", ""), "transport-local": ("local", "")}
        selectors.update({"any": ("any", ""), "usb": ("usb", ""), "local": ("local", "")})
        if target.startswith(("transport:", "serial:")):
            selector = ("serial", target.partition(":")[2])
        elif target.startswith("transport-id:"):
            selector = ("id", target.partition(":")[2])
        elif target in selectors:
            selector = selectors[target]
        else:
            connection.fail("unknown host service")
            return None
        attached = self._select(selector)
        self._attach(connection, attached)
        connection.okay()
        if tport:
            connection.send(struct.pack("<Q", attached.transport_id))
        return attached

    def _wait_changes(self, connection: Connection) -> Iterator[None]:
        """Yields after each device change (and every 0.2 s) while the client and the server are alive."""
        while not (self._stopping.is_set() or connection.peer_closed()):
            yield
            with self._lock:
                self._lock.wait(0.2)

    def _track(self, connection: Connection, *, long: bool) -> None:
        connection.okay()
        last = None
        for _ in self._wait_changes(connection):
            listing = self._listing(long=long)
            if listing != last:
                connection.block(listing)
                last = listing

    def _wait_for(self, connection: Connection, selector: tuple[str, str], command: str) -> None:
        transport, _, state = command[len("wait-for-") :].partition("-")
        if transport not in ("any", "usb", "local") or not state:
            connection.fail(f"invalid wait-for service '{command}'")
            return
        if selector[0] == "any" and transport != "any":
            selector = (transport, "")
        connection.okay()
        for _ in self._wait_changes(connection):
            try:
                self._select(selector)
                present = True
            except _SelectionError as exc:
                present = "more than one" in str(exc)
            if (state == "device" and present) or (state == "disconnect" and not present):
                connection.okay()
                return

    # -- device services

    def _device_service(self, connection: Connection, attached: _Attached, request: str) -> None:
        service, _, command = request.partition(":")
        options = service.split(",")
        if options[0] in ("shell", "exec"):
            if not command:
                connection.fail("the ADB stand-in does not imitate interactive shells; give a command")
                return
            connection.okay()
            self._shell(connection, attached, command, v2=options[0] == "shell" and "v2" in options[1:])
        elif request == "sync:":
            connection.okay()
            SyncService(connection, attached.fs).serve()
        else:
            connection.fail(f"closed (the ADB stand-in does not imitate device service '{service}')")

    def _shell(self, connection: Connection, attached: _Attached, command: str, *, v2: bool) -> None:
        reader = threading.Thread(target=self._discard_input, args=(connection,), name="adb-standin-stdin", daemon=True)
        reader.start()
        context = ShellContext(
            device=attached.device,
            fs=attached.fs,
            cancel=connection.cancel,
            unplug=lambda: self._unplug_quietly(attached.device.serial),
        )

        def packet(kind: int) -> Callable[[bytes], None]:
            def write(data: bytes) -> None:
                if data:
                    connection.send(bytes([kind]) + struct.pack("<I", len(data)) + data)

            return write

        if v2:
            status = Shell(context).run(command, out=packet(1), err=packet(2))
            connection.send(bytes([3]) + struct.pack("<I", 1) + bytes([status & 0xFF]))
        else:
            Shell(context).run(command, out=connection.send, err=connection.send)
        connection.finish(reader)

    def _unplug_quietly(self, serial: str) -> None:
        with contextlib.suppress(KeyError):
            self.remove_device(serial)

    @staticmethod
    def _discard_input(connection: Connection) -> None:
        """Read what the client sends during a shell (stdin, close-stdin, window size) until it leaves."""
        try:
            while connection.sock.recv(65536):
                pass
        except OSError:
            pass
        connection.cancel.set()
