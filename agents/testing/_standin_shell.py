"""The subset of Android's ``/system/bin/sh`` (mksh + toybox) that the ADB stand-in's devices run.

Grammar: simple commands joined by ``;``, ``&&``, ``||`` or newlines; words with ``'single'`` and
``"double"`` quotes and backslash escapes (as :func:`shlex.split` reads them); ``$?``, ``$$``, ``$NAME``
and ``${NAME}`` expansion (unquoted results are split on whitespace); leading ``NAME=value``
assignments; redirections ``>``, ``>>``, ``2>``, ``2>>``, ``2>&1``, ``>&2``; unquoted ``*``, ``?`` and
``[...]`` expanded against the device's files (a pattern that matches nothing stays as written).
Pipes, ``&``, ``<``, ``$(...)`` and backquotes are refused with exit status 2, loudly, rather than
imitated badly; a syntax error (an unterminated quote, a misplaced operator) is exit status 1.

Programs: ``getprop``, ``cat``, ``ls``, ``mkdir``, ``rm``, ``chmod``, ``sha256sum``, ``test``,
``echo``, ``nproc``, ``taskset`` (checks its mask, then runs the rest), the ``cd``, ``exit``, ``true`` and ``false`` builtins, and the device's ``benchmark_model`` path (run by
:mod:`agents.testing.benchmark_model`, or a fault). Anything else is ``/system/bin/sh: NAME:
inaccessible or not found``, exit status 127. Programs may also be named by their ``/system/bin`` path.
"""

from __future__ import annotations

import glob
import hashlib
import posixpath
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agents.testing import benchmark_model
from agents.testing._standin_fs import DeviceFS, normalize

if TYPE_CHECKING:
    from agents.testing.adb_standin import StandinDevice

__all__ = ["DeviceVanished", "Shell", "ShellContext"]

Write = Callable[[bytes], object]  # return value ignored
_SH = "/system/bin/sh"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOOLBOX_DIRS = ("/system/bin", "/system/xbin", "/bin", "/vendor/bin")
_ENV = {
    "PATH": "/product/bin:/apex/com.android.runtime/bin:/apex/com.android.art/bin:/system_ext/bin:/system/bin:"
    "/system/xbin:/odm/bin:/vendor/bin:/vendor/xbin",
    "HOME": "/",
    "SHELL": _SH,
    "TMPDIR": "/data/local/tmp",
    "USER": "shell",
    "ANDROID_DATA": "/data",
    "ANDROID_ROOT": "/system",
}


class DeviceVanished(Exception):
    """The command ended without an exit status: the device was unplugged, or the client went away."""


class _Exit(Exception):
    """The ``exit`` builtin: the rest of the command line is skipped."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Refused(Exception):
    """The command line uses shell syntax the stand-in does not imitate; the message says which."""


class _SyntaxError(Exception):
    """The command line is not valid sh (an unterminated quote, a misplaced operator)."""


@dataclass
class ShellContext:
    """What one shell session on a device sees."""

    device: StandinDevice  # props, benchmark_model path, fault, CPU count
    fs: DeviceFS  # the device's files
    cancel: threading.Event  # set when the client went away, the device left or the server stops
    unplug: Callable[[], None]  # makes the device disappear (the "vanish" fault)
    cwd: str = "/"  # adb shells start in /
    variables: dict[str, str] = field(default_factory=lambda: dict(_ENV))


# -- words -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    text: str  # literal text, or a variable name when ``variable``
    quoted: bool  # inside quotes: no field splitting, no globbing
    variable: bool = False


_Word = tuple[_Part, ...]
_OPERATORS = ("&&", "||", ";", "|", "&")


def _read_variable(line: str, i: int) -> tuple[str | None, int]:
    """The variable name after the ``$`` at ``i`` and the index after it (None: a literal ``$``)."""
    nxt = line[i + 1 : i + 2]
    if nxt in ("?", "$", "#", "!", "@", "*") or nxt.isdigit():
        return nxt, i + 2
    if nxt == "{":
        end = line.find("}", i + 2)
        if end < 0:
            raise _SyntaxError("unterminated ${")
        return line[i + 2 : end], end + 1
    if nxt == "(":
        raise _Refused("command substitution $(...)")
    match = _NAME.match(line, i + 1)
    if match is None:
        return None, i + 1
    return match.group(), match.end()


def _tokenize(line: str) -> list[_Word | str]:
    """Words and operators (``;``, ``&&``, ``||``, ``|``, ``&``, redirections like ``2>&1``)."""
    tokens: list[_Word | str] = []
    parts: list[_Part] | None = None
    i, n = 0, len(line)

    def flush() -> None:
        nonlocal parts
        if parts is not None:
            tokens.append(_merged(parts))
        parts = None

    while i < n:
        c = line[i]
        if c in " \t":
            flush()
            i += 1
        elif c == "\n":
            flush()
            tokens.append(";")
            i += 1
        elif c == "#" and parts is None:
            while i < n and line[i] != "\n":
                i += 1
        elif c == "`":
            raise _Refused("command substitution `...`")
        elif c in "<>":
            fd = 0 if c == "<" else 1
            if parts is not None and len(parts) == 1 and not parts[0].quoted and parts[0].text.isdigit():
                fd, parts = int(parts[0].text), None
            flush()
            op = c
            i += 1
            if c == ">" and line[i : i + 1] == ">":
                op, i = ">>", i + 1
            if line[i : i + 1] == "&":
                match = re.match(r"&(\d)", line[i:])
                if match is None:
                    raise _Refused(f"the redirection {op}{line[i : i + 2]}")
                op, i = f"{op}&{match.group(1)}", i + 2
            tokens.append(f"{fd}{op}")
        elif c in ";&|":
            flush()
            op = next(o for o in _OPERATORS if line.startswith(o, i))
            tokens.append(op)
            i += len(op)
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise _SyntaxError("unterminated ' quote")
            parts = [*(parts or []), _Part(line[i + 1 : end], True)]
            i = end + 1
        elif c == '"':
            i, quoted = _double_quoted(line, i + 1)
            parts = [*(parts or []), *quoted, _Part("", True)]
        elif c == "\\":
            if i + 1 < n and line[i + 1] != "\n":
                parts = [*(parts or []), _Part(line[i + 1], True)]
            i += 2
        elif c == "$":
            name, i = _read_variable(line, i)
            parts = [*(parts or []), _Part("$", False) if name is None else _Part(name, False, True)]
        else:
            parts = [*(parts or []), _Part(c, False)]
            i += 1
    flush()
    return tokens


def _merged(parts: list[_Part]) -> _Word:
    """Adjacent literal parts of the same quoting joined into one (``FOO=bar`` is one part)."""
    merged: list[_Part] = []
    for part in parts:
        last = merged[-1] if merged else None
        if last is not None and not part.variable and not last.variable and part.quoted == last.quoted:
            merged[-1] = _Part(last.text + part.text, part.quoted)
        else:
            merged.append(part)
    return tuple(merged)


def _double_quoted(line: str, i: int) -> tuple[int, list[_Part]]:
    """The parts of a ``"..."`` string starting after its quote, and the index after its end."""
    parts: list[_Part] = []
    while i < len(line):
        c = line[i]
        if c == '"':
            return i + 1, parts
        if c == "\\" and line[i + 1 : i + 2] in ('"', "\\", "$", "`", "\n"):
            if line[i + 1] != "\n":
                parts.append(_Part(line[i + 1], True))
            i += 2
        elif c == "$":
            name, i = _read_variable(line, i)
            parts.append(_Part("$", True) if name is None else _Part(name, True, True))
        elif c == "`":
            raise _Refused("command substitution `...`")
        else:
            parts.append(_Part(c, True))
            i += 1
    raise _SyntaxError('unterminated " quote')


@dataclass
class _Command:
    words: list[_Word] = field(default_factory=list)
    redirects: list[tuple[str, _Word | None]] = field(default_factory=list)  # (operator, target word)


def _parse(tokens: list[_Word | str]) -> list[tuple[str, _Command]]:
    """(connector, command) pairs; the first connector is ``;``."""
    commands: list[tuple[str, _Command]] = []
    connector, current = ";", _Command()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if isinstance(token, tuple):
            current.words.append(token)
        elif token in ("|", "&"):
            raise _Refused(f"'{token}' (pipes and background jobs)")
        elif token[0].isdigit():  # a redirection
            if token.startswith("0<"):
                raise _Refused("input redirection '<'")
            if token[0] not in "12" or ("&" in token and token[-1] not in "12"):
                raise _Refused(f"the redirection '{token}' (only file descriptors 1 and 2 are imitated)")
            if "&" in token:
                current.redirects.append((token, None))
                continue
            target = tokens[index] if index < len(tokens) else None
            if not isinstance(target, tuple):
                raise _SyntaxError(f"'{token[1:]}' needs a file")
            current.redirects.append((token, target))
            index += 1
        else:
            if current.words or current.redirects:
                commands.append((connector, current))
            elif token != ";" or connector != ";":
                raise _SyntaxError(f"'{token}' unexpected")
            connector, current = token, _Command()
    if current.words or current.redirects:
        commands.append((connector, current))
    elif connector != ";":
        raise _SyntaxError(f"'{connector}' needs a command after it")
    return commands


# -- the shell -------------------------------------------------------------------------------------


class _Output:
    """Where a running program writes: text or bytes to its standard output and error."""

    def __init__(self, out: Write, err: Write) -> None:
        self.out_bytes, self.err_bytes = out, err

    def out(self, text: str) -> None:
        self.out_bytes(text.encode())

    def err(self, text: str) -> None:
        self.err_bytes(text.encode())


def _discard(data: bytes) -> None:
    """The writer behind ``/dev/null``."""


class Shell:
    """Runs command lines in one session; ``$?`` and ``cd`` persist across :meth:`run` calls."""

    def __init__(self, context: ShellContext) -> None:
        self.ctx = context
        self.status = 0

    def run(self, line: str, *, out: Write, err: Write) -> int:
        """Run ``line``; returns its exit status. Raises :class:`DeviceVanished` when it has none."""
        try:
            commands = _parse(_tokenize(line))
        except _Refused as exc:
            err(f"{_SH}: the ADB stand-in's shell does not imitate {exc}\n".encode())
            self.status = 2
            return 2
        except _SyntaxError as exc:
            err(f"{_SH}: syntax error: {exc}\n".encode())
            self.status = 1
            return 1
        try:
            for connector, command in commands:
                if (connector == "&&" and self.status != 0) or (connector == "||" and self.status == 0):
                    continue
                self.status = self._run_command(command, _Output(out, err))
        except _Exit as exc:
            self.status = exc.status
        return self.status

    # -- expansion

    def _value(self, name: str) -> str:
        if name == "?":
            return str(self.status)
        if name == "$":
            return "4242"
        if name == "0":
            return _SH
        return self.ctx.variables.get(name, "")

    def _fields(self, word: _Word) -> list[tuple[str, str]]:
        """A word's fields after variable expansion and splitting: (literal, glob pattern) pairs."""
        fields: list[tuple[str, str]] = []
        literal, pattern, keep = "", "", False
        for part in word:
            if part.variable and not part.quoted:
                pieces = re.split(r"[ \t\n]+", self._value(part.text))
                for number, piece in enumerate(pieces):
                    if number > 0 and (keep or literal):
                        fields.append((literal, pattern))
                        literal, pattern, keep = "", "", False
                    literal, pattern = literal + piece, pattern + piece
                continue
            text = self._value(part.text) if part.variable else part.text
            literal += text
            pattern += glob.escape(text) if part.quoted else text
            keep = keep or part.quoted
        if keep or literal:
            fields.append((literal, pattern))
        return fields

    def _expand(self, words: list[_Word]) -> list[str]:
        argv: list[str] = []
        for word in words:
            for literal, pattern in self._fields(word):
                magic = pattern != glob.escape(literal)
                matches = self.ctx.fs.glob(pattern, self.ctx.cwd) if magic else []
                argv.extend(matches or [literal])
        return argv

    def _word_text(self, word: _Word) -> str:
        return "".join(self._value(p.text) if p.variable else p.text for p in word)

    # -- running

    @contextmanager
    def _redirected(self, command: _Command, io: _Output) -> Iterator[_Output]:
        out, err = io.out_bytes, io.err_bytes
        with ExitStack() as stack:
            for op, target in command.redirects:
                if target is None:  # 2>&1, 1>&2 (2>&2 and 1>&1 change nothing)
                    if op[0] != op[-1]:
                        if op[0] == "2":
                            err = out
                        else:
                            out = err
                    continue
                path = normalize(self._word_text(target), self.ctx.cwd)
                writer: Write
                if path == "/dev/null":
                    writer = _discard
                else:
                    sink = stack.enter_context(self.ctx.fs.open_write(path, append=">>" in op))
                    writer = sink.write
                if op.startswith("2"):
                    err = writer
                else:
                    out = writer
            yield _Output(out, err)

    def _run_command(self, command: _Command, io: _Output) -> int:
        words = list(command.words)
        assignments: dict[str, str] = {}
        while words and words[0] and not words[0][0].quoted and "=" in words[0][0].text:
            name, _, first = words[0][0].text.partition("=")
            if not _NAME.fullmatch(name):
                break
            assignments[name] = first + self._word_text(words[0][1:])
            words.pop(0)
        argv = self._expand(words)
        try:
            with self._redirected(command, io) as redirected:
                if not argv:
                    self.ctx.variables.update(assignments)
                    return 0
                return self._execute(argv, redirected)
        except OSError as exc:
            io.err(f"{_SH}: {exc.filename}: {exc.strerror}\n")
            return 1

    def _execute(self, argv: list[str], io: _Output) -> int:
        name = argv[0]
        if name == "cd":
            return self._cd(argv[1:], io)
        if name in ("true", "false"):
            return 0 if name == "true" else 1
        if name == "exit":
            code = argv[1] if len(argv) > 1 else str(self.status)
            raise _Exit(int(code) & 0xFF if code.lstrip("-").isdigit() else 2)
        program = _PROGRAMS.get(name) if "/" not in name else None
        path = normalize(name, self.ctx.cwd)
        if "/" in name:
            if path == normalize(self.ctx.device.benchmark_model_path):
                return self._benchmark(path, argv[1:], io)
            if posixpath.dirname(path) in _TOOLBOX_DIRS:
                program = _PROGRAMS.get(posixpath.basename(path))
        if program is not None:
            return program(self, argv[1:], io)
        if "/" in name and self.ctx.fs.exists(path):
            io.err(f"{_SH}: {name}: can't execute: Exec format error\n")
            return 126
        io.err(f"{_SH}: {name}: inaccessible or not found\n")
        return 127

    def _cd(self, args: list[str], io: _Output) -> int:
        target = normalize(args[0] if args else "/", self.ctx.cwd)
        if not self.ctx.fs.exists(target) or not self.ctx.fs.stat(target).is_dir:
            io.err(f"{_SH}: cd: {target}: No such file or directory\n")
            return 2
        self.ctx.cwd = target
        return 0

    def _benchmark(self, path: str, args: list[str], io: _Output) -> int:
        """The device's benchmark_model: the real stand-in, or the device's fault."""
        fs = self.ctx.fs
        if not fs.exists(path):
            io.err(f"{_SH}: {path}: inaccessible or not found\n")
            return 127
        if fs.stat(path).mode & 0o111 == 0:
            io.err(f"{_SH}: {path}: can't execute: Permission denied\n")
            return 126
        fault = self.ctx.device.fault

        def emit(line: str) -> None:  # the tool logs to standard error
            io.err(line + "\n")

        if fault is None:
            cwd = self.ctx.cwd
            status = benchmark_model.run_streaming(
                args, emit=emit, root_map=lambda graph: fs.host_path(normalize(graph, cwd)), cancel=self.ctx.cancel,
                slowdown=self.ctx.device.current_slowdown,
            )  # fmt: skip
            if self.ctx.cancel.is_set():
                raise DeviceVanished("the benchmark was abandoned")
            return status
        graph = next((a.partition("=")[2] for a in args if a.startswith("--graph=")), "")
        for line in ("INFO: STARTING!", "INFO: Log parameter values verbosely: [0]", f"INFO: Graph: [{graph}]"):
            emit(line)
        if fault == "garbage":
            for line in _GARBAGE:
                emit(line.format(graph=graph))
            return 0
        if fault == "vanish":
            time.sleep(0.2)  # mid-run: the client is already waiting for more output
            self.ctx.unplug()
            raise DeviceVanished("the device vanished")
        self.ctx.cancel.wait()  # "hang": nothing more until the client gives up
        raise DeviceVanished("the client gave up on a hung benchmark_model")


_GARBAGE = (
    "INFO: Loaded model {graph}",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "INFO: The input model file size (MB): 7.14123",
    "INFO: Initialized session in 25.342ms.",
    "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.",
    "INFO: Thermal status changed: SEVERE; the power HAL capped the big cores.",
    "INFO: Benchmark session interrupted, no run stats to report.",
)

# -- programs --------------------------------------------------------------------------------------

Program = Callable[[Shell, list[str], _Output], int]


def _split_options(args: list[str], allowed: str) -> tuple[set[str], list[str]] | str:
    """Single-letter options before the operands (``--`` ends them); an unknown option's letter."""
    options: set[str] = set()
    index = 0
    while index < len(args) and args[index].startswith("-") and len(args[index]) > 1:
        if args[index] == "--":
            index += 1
            break
        for letter in args[index][1:]:
            if letter not in allowed:
                return letter
            options.add(letter)
        index += 1
    return options, args[index:]


def _getprop(shell: Shell, args: list[str], io: _Output) -> int:
    props = shell.ctx.device.props
    if not args:
        io.out("".join(f"[{key}]: [{props[key]}]\n" for key in sorted(props)))
    else:
        io.out(props.get(args[0], args[1] if len(args) > 1 else "") + "\n")
    return 0


def _cat(shell: Shell, args: list[str], io: _Output) -> int:
    status = 0
    for path in args:
        try:
            io.out_bytes(shell.ctx.fs.read(normalize(path, shell.ctx.cwd)))
        except OSError as exc:
            io.err(f"cat: {path}: {exc.strerror}\n")
            status = 1
    return status


def _mode_string(mode: int) -> str:
    kind = "d" if stat.S_ISDIR(mode) else "-"
    bits = "".join(char if mode & (0o400 >> i) else "-" for i, char in enumerate("rwxrwxrwx"))
    return kind + bits


def _ls(shell: Shell, args: list[str], io: _Output) -> int:
    parsed = _split_options(args, "1aAld")
    if isinstance(parsed, str):
        io.err(f"ls: Unknown option '{parsed}'\n")
        return 1
    options, paths = parsed
    fs, status = shell.ctx.fs, 0

    def line(name: str, device_path: str) -> str:
        if "l" not in options:
            return name + "\n"
        found = fs.stat(device_path)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.mtime))
        return f"{_mode_string(found.mode)} {found.nlink} shell shell {found.size} {when} {name}\n"

    paths = paths or ["."]
    for number, path in enumerate(paths):
        device_path = normalize(path, shell.ctx.cwd)
        try:
            found = fs.stat(device_path)
            if not found.is_dir or "d" in options:
                io.out(line(path, device_path))
                continue
            names = fs.listdir(device_path)
        except OSError as exc:
            io.err(f"ls: {path}: {exc.strerror}\n")
            status = 1
            continue
        if "a" in options:
            names = [".", "..", *names]
        elif "A" not in options:
            names = [name for name in names if not name.startswith(".")]
        if len(paths) > 1:
            io.out(("\n" if number else "") + f"{path}:\n")
        io.out("".join(line(name, posixpath.join(device_path, name)) for name in names))
    return status


def _mkdir(shell: Shell, args: list[str], io: _Output) -> int:
    parsed = _split_options(args, "p")
    if isinstance(parsed, str):
        io.err(f"mkdir: Unknown option '{parsed}'\n")
        return 1
    options, paths = parsed
    status = 0
    for path in paths:
        try:
            shell.ctx.fs.mkdir(normalize(path, shell.ctx.cwd), parents="p" in options)
        except OSError as exc:
            io.err(f"mkdir: '{path}': {exc.strerror}\n")
            status = 1
    return status


def _rm(shell: Shell, args: list[str], io: _Output) -> int:
    parsed = _split_options(args, "frR")
    if isinstance(parsed, str):
        io.err(f"rm: Unknown option '{parsed}'\n")
        return 1
    options, paths = parsed
    status = 0
    for path in paths:
        device_path = normalize(path, shell.ctx.cwd)
        if "f" in options and not shell.ctx.fs.exists(device_path):
            continue
        try:
            shell.ctx.fs.remove(device_path, recursive=bool(options & {"r", "R"}))
        except OSError as exc:
            io.err(f"rm: {path}: {exc.strerror}\n")
            status = 1
    return status


def _mv(shell: Shell, args: list[str], io: _Output) -> int:
    """``mv [-f] SOURCE TARGET`` (toybox): one rename, onto a file path or into a folder."""
    parsed = _split_options(args, "f")
    if isinstance(parsed, str):
        io.err(f"mv: Unknown option '{parsed}'\n")
        return 1
    _, paths = parsed
    if len(paths) != 2:
        io.err("mv: Needs 2 arguments\n")
        return 1
    source, target = (normalize(p, shell.ctx.cwd) for p in paths)
    if shell.ctx.fs.exists(target) and shell.ctx.fs.stat(target).is_dir:
        target = posixpath.join(target, posixpath.basename(source))
    try:
        shell.ctx.fs.rename(source, target)
    except OSError as exc:
        io.err(f"mv: {paths[0]}: {exc.strerror}\n")
        return 1
    return 0


def _new_mode(spec: str, mode: int) -> int | None:
    """``chmod``'s mode: octal, or symbolic clauses like ``u+x,go-w``; None when unreadable."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    for clause in spec.split(","):
        match = re.fullmatch(r"([ugoa]*)([-+=])([rwxX]*)", clause)
        if match is None:
            return None
        who = match.group(1) or "a"
        mask = sum({"u": 0o700, "g": 0o070, "o": 0o007, "a": 0o777}[w] for w in who) & 0o777
        perms = sum({"r": 0o444, "w": 0o222, "x": 0o111, "X": 0o111}[p] for p in match.group(3)) & mask
        if match.group(2) == "+":
            mode |= perms
        elif match.group(2) == "-":
            mode &= ~perms
        else:
            mode = (mode & ~mask) | perms
    return mode


def _chmod(shell: Shell, args: list[str], io: _Output) -> int:
    if len(args) < 2:
        io.err("chmod: Needs 2 arguments\n")
        return 1
    status = 0
    for path in args[1:]:
        device_path = normalize(path, shell.ctx.cwd)
        try:
            mode = _new_mode(args[0], shell.ctx.fs.stat(device_path).mode & 0o7777)
            if mode is None:
                io.err(f"chmod: bad mode '{args[0]}'\n")
                return 1
            shell.ctx.fs.chmod(device_path, mode)
        except OSError as exc:
            io.err(f"chmod: {path}: {exc.strerror}\n")
            status = 1
    return status


def _sha256sum(shell: Shell, args: list[str], io: _Output) -> int:
    status = 0
    for path in args:
        try:
            digest = hashlib.sha256(shell.ctx.fs.read(normalize(path, shell.ctx.cwd))).hexdigest()
        except OSError as exc:
            io.err(f"sha256sum: {path}: {exc.strerror}\n")
            status = 1
            continue
        io.out(f"{digest}  {path}\n")
    return status


_INTEGER_TESTS: dict[str, Callable[[int, int], bool]] = {
    "-eq": lambda a, b: a == b,
    "-ne": lambda a, b: a != b,
    "-lt": lambda a, b: a < b,
    "-le": lambda a, b: a <= b,
    "-gt": lambda a, b: a > b,
    "-ge": lambda a, b: a >= b,
}


def _test_expression(shell: Shell, args: list[str]) -> bool | str:
    """The truth of a ``test`` expression, or an error message."""
    if args and args[0] == "!":
        result = _test_expression(shell, args[1:])
        return result if isinstance(result, str) else not result
    if not args:
        return False
    if len(args) == 1:
        return args[0] != ""
    if len(args) == 2:
        op, operand = args
        if op in ("-n", "-z"):
            return (operand != "") == (op == "-n")
        if op not in ("-e", "-f", "-d", "-x", "-s", "-r", "-w"):
            return f"unknown operand '{op}'"
        try:
            found = shell.ctx.fs.stat(normalize(operand, shell.ctx.cwd))
        except OSError:
            return False
        checks = {
            "-e": True,
            "-f": found.is_file,
            "-d": found.is_dir,
            "-x": bool(found.mode & 0o111),
            "-s": found.size > 0,
            "-r": bool(found.mode & 0o444),
            "-w": bool(found.mode & 0o222),
        }
        return checks[op]
    if len(args) == 3:
        left, op, right = args
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        if op in _INTEGER_TESTS:
            try:
                return _INTEGER_TESTS[op](int(left), int(right))
            except ValueError:
                return f"bad number '{left if not left.lstrip('-').isdigit() else right}'"
    return "too many arguments"


def _test(shell: Shell, args: list[str], io: _Output) -> int:
    result = _test_expression(shell, args)
    if isinstance(result, str):
        io.err(f"test: {result}\n")
        return 2
    return 0 if result else 1


def _echo(shell: Shell, args: list[str], io: _Output) -> int:
    newline = True
    while args and args[0] == "-n":
        newline, args = False, args[1:]
    io.out(" ".join(args) + ("\n" if newline else ""))
    return 0


def _nproc(shell: Shell, args: list[str], io: _Output) -> int:
    io.out(f"{shell.ctx.device.cpu_count}\n")
    return 0


def _taskset(shell: Shell, args: list[str], io: _Output) -> int:
    if args and args[0].startswith("-"):
        io.err(f"taskset: the ADB stand-in does not imitate option '{args[0]}'\n")
        return 1
    if len(args) < 2:
        io.err("taskset: Needs 2 arguments\n")
        return 1
    if not re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", args[0]):
        io.err(f"taskset: bad mask '{args[0]}'\n")
        return 1
    if int(args[0], 16) & ((1 << shell.ctx.device.cpu_count) - 1) == 0:
        io.err("taskset: sched_setaffinity: Invalid argument\n")
        return 1
    return shell._execute(args[1:], io)


_PROGRAMS: dict[str, Program] = {
    "getprop": _getprop,
    "cat": _cat,
    "ls": _ls,
    "mkdir": _mkdir,
    "rm": _rm,
    "mv": _mv,
    "chmod": _chmod,
    "sha256sum": _sha256sum,
    "test": _test,
    "echo": _echo,
    "nproc": _nproc,
    "taskset": _taskset,
}
PROGRAMS = tuple(sorted(_PROGRAMS))  # the programs' names, besides the device's benchmark_model path
