"""Export networks and single blocks to ONNX, ``.tflite`` (LiteRT) and ``.pt2`` (torch.export, for GPUs),
and check the exported files.

Two exporters (:data:`EXPORTERS`), chosen per call with ``exporter=``:

- ``"direct"`` (the default for ONNX and ``.tflite``): the graph is built from the block specs, without
  torch, in milliseconds: ONNX with the ``onnx`` package (:mod:`nag.space.onnx_graph`, NCHW as torch's
  exporter writes it), ``.tflite`` with the TFLite schema LiteRT ships and ``flatbuffers``
  (:mod:`nag.space.tflite_graph`, NHWC as an app ships it). Not ``.pt2``.
- ``"torch"`` (the reference, and the only one for ``.pt2``): the torch module of the specs is exported
  with torch's dynamo exporter (needs ``onnxscript``), ``litert-torch`` for ``.tflite`` (an optional extra,
  ``pip install 'nag-farm[litert]'``; NCHW input and output, with TRANSPOSE ops at both ends), or
  ``torch.export``. :func:`export_model` exports a given torch module (trained weights, say) this way.

Both give a block spec and seed the same weights (:func:`nag.space.weights.seeded_weights`). Files are
written to a temporary name beside the target and moved into place, so a crash never leaves a half-written
model under the final name.

Every exported file can be checked against the torch module of the same weights: :func:`verify_export` runs
it in ONNX Runtime or the LiteRT interpreter and compares outputs.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nag.errors import ExportError, MissingDependencyError, UnknownNameError
from nag.files import atomic_write, atomic_write_bytes
from nag.space.blocks import Block

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "EXPORTERS",
    "FORMATS",
    "ExportResult",
    "cache_path",
    "cached_export",
    "export_blocks",
    "export_model",
    "exporter_identity",
    "resolve_exporter",
    "run_exported",
    "verify_export",
]

FORMATS = ("onnx", "tflite", "pt2")
EXPORTERS = ("direct", "torch")  # direct: ONNX and .tflite built from the block specs; torch: torch's exporters (every format)
DIRECT_FORMATS = ("onnx", "tflite")


# Capturing output swaps file descriptors 1 and 2, which are process-wide, and torch's exporters are not
# thread-safe: one captured section at a time in a process, whatever threads ask (a farm on threads
# exports and checks models for every device at once).
_CAPTURE_LOCK = threading.RLock()


@contextlib.contextmanager
def _captured_output() -> Iterator[io.StringIO]:
    """Silence the exporters' own chatter (Python and native, stdout and stderr) and warnings.

    What they printed is kept in the yielded buffer (filled on exit) so a failure can show it.
    """
    import sys
    import warnings

    log = io.StringIO()
    with _CAPTURE_LOCK, tempfile.TemporaryFile(mode="w+b") as sink:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield log
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            log.write(sink.read().decode(errors="replace"))


def _export_onnx(module: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    import torch

    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it; say so clearly)
    except ImportError as exc:
        raise MissingDependencyError("ONNX export needs onnxscript: pip install onnxscript") from exc
    with torch.no_grad():
        program = torch.onnx.export(
            module.eval(), (example,), dynamo=True, input_names=["input"], output_names=["output"], verbose=False
        )
    if program is None:  # pragma: no cover - dynamo export always returns a program
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(out), external_data=False)


def _export_tflite(module: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    try:
        import litert_torch
    except ImportError as exc:
        raise MissingDependencyError(
            "export to .tflite needs litert-torch: pip install 'nag-farm[litert]' (after torch==2.13.0 is installed)"
        ) from exc
    edge_model = litert_torch.convert(module.eval(), (example,))
    edge_model.export(str(out))


def _export_pt2(module: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    import torch

    torch.export.save(torch.export.export(module.eval(), (example,)), str(out))


_EXPORTERS: dict[str, Callable[[Any, Any, Path], None]] = {"onnx": _export_onnx, "tflite": _export_tflite, "pt2": _export_pt2}


def export_model(module: torch.nn.Module, example: torch.Tensor, *, fmt: str, out: str | os.PathLike[str]) -> Path:
    """Export ``module`` traced on ``example`` (NCHW) to ``out`` in format ``fmt`` ('onnx', 'tflite' or 'pt2')
    with torch's exporters: the path for any module and its own weights (the direct exporter knows only
    block specs and seeded weights)."""
    if fmt not in _EXPORTERS:
        raise UnknownNameError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    target = Path(out)

    def write(tmp: Path) -> None:
        log = io.StringIO()
        try:
            with _captured_output() as log:  # converters print progress trees and native logs; keep the CLI's output ours
                _EXPORTERS[fmt](module, example, tmp)
        except (MissingDependencyError, ExportError):
            raise
        except Exception as exc:  # the exporters raise many types; report them as one typed error
            printed = " ".join(log.getvalue().split())[-400:]
            raise ExportError(
                f"{fmt} export to {target} failed: {type(exc).__name__}: {exc}"
                + (f" (exporter output: ...{printed})" if printed else "")
            ) from exc

    atomic_write(target, write, suffix=target.suffix)  # converters choose the format by the extension
    return target


def _run_tflite(path: str | os.PathLike[str], x: np.ndarray) -> np.ndarray:
    """Run a ``.tflite`` once on ``x`` (NCHW), transposed to NHWC for a model that takes NHWC (the direct
    exporter's, named by its input tensor, or any whose input has x's shape only as NHWC); a 4-D output of
    such a model comes back NCHW."""
    import numpy as np

    from agents.runtimes import litert_interpreter
    from nag.space.tflite_graph import INPUT_NAME

    interpreter = litert_interpreter(path)
    detail = interpreter.get_input_details()[0]
    shape = tuple(int(d) for d in detail["shape"])
    nhwc = x.ndim == 4 and (
        detail["name"] == INPUT_NAME or (shape != x.shape and shape == (x.shape[0], *x.shape[2:], x.shape[1]))
    )
    interpreter.set_tensor(detail["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x)
    interpreter.invoke()
    output: np.ndarray = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return output.transpose(0, 3, 1, 2) if nhwc and output.ndim == 4 else output


def run_exported(path: str | os.PathLike[str], x: np.ndarray) -> np.ndarray:
    """Run an exported file once on ``x`` (NCHW float32) in its runtime; returns the single output, NCHW as
    torch's (an NHWC ``.tflite`` gets ``x`` transposed, and gives its output back transposed)."""
    from agents.runtimes import onnx_session

    suffix = Path(path).suffix
    if suffix == ".onnx":
        session = onnx_session(path)
        (output,) = session.run(None, {session.get_inputs()[0].name: x})
        return output
    if suffix == ".tflite":
        return _run_tflite(path, x)
    if suffix == ".pt2":
        import torch

        with torch.no_grad():
            return torch.export.load(str(path)).module()(torch.from_numpy(x)).numpy()
    raise UnknownNameError(f"cannot run {path}: unknown model file type {suffix!r}; expected .onnx, .tflite or .pt2")


def verify_export(
    path: str | os.PathLike[str], module: torch.nn.Module, example: torch.Tensor, *, rtol: float = 1e-3, atol: float = 1e-4
) -> float:
    """Raise :class:`ExportError` unless the exported file's output matches torch's; returns the max abs error."""
    import numpy as np
    import torch

    with torch.no_grad():
        expected = module.eval()(example).numpy()
    with _captured_output():  # LiteRT announces its delegate on stderr
        actual = run_exported(path, example.numpy())
    if actual.shape != expected.shape:
        raise ExportError(f"{path}: output shape {actual.shape} differs from torch's {expected.shape}")
    error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    if not np.allclose(actual, expected, rtol=rtol, atol=atol):
        raise ExportError(f"{path}: output differs from torch's by up to {error:.3g} (rtol={rtol}, atol={atol})")
    return error


@dataclass(frozen=True)
class ExportResult:
    path: Path
    fmt: str  # "onnx", "tflite" or "pt2"
    max_abs_error: float | None  # largest |exported - torch| on a random input; None when not compared with torch
    exporter: str = "torch"  # "direct" or "torch" (see EXPORTERS)


def resolve_exporter(fmt: str, exporter: str | None = None) -> str:
    """The exporter that writes ``fmt``: ``exporter`` when it can, else the default (``direct`` for ONNX and
    ``.tflite``, ``torch`` for ``.pt2``)."""
    if fmt not in FORMATS:
        raise UnknownNameError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if exporter is None:
        return "direct" if fmt in DIRECT_FORMATS else "torch"
    if exporter not in EXPORTERS:
        raise UnknownNameError(f"unknown exporter {exporter!r}; valid exporters: {', '.join(EXPORTERS)}")
    if exporter == "direct" and fmt not in DIRECT_FORMATS:
        raise UnknownNameError(f"the direct exporter writes ONNX and tflite only, not {fmt}; use exporter 'torch' for {fmt}")
    return exporter


def _export_direct(specs: Block | Sequence[Block], *, fmt: str, seed: int, out: Path) -> Path:
    """Write the directly built ONNX or ``.tflite`` graph of ``specs`` to ``out`` (atomically)."""
    if fmt == "tflite":
        try:
            import flatbuffers  # noqa: F401
            from ai_edge_litert import schema_py_generated  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("direct .tflite export needs ai-edge-litert: pip install ai-edge-litert") from exc
        from nag.space.tflite_graph import tflite_model

        return atomic_write_bytes(out, tflite_model(specs, seed=seed))
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("direct ONNX export needs the onnx package: pip install onnx") from exc
    from nag.space.onnx_graph import onnx_model

    return atomic_write_bytes(out, onnx_model(specs, seed=seed).SerializeToString())


def _check_direct(path: Path, specs: Block | Sequence[Block], seed: int) -> float | None:
    """Compare a direct export with torch's module of the same weights where torch is installed (the max abs
    error); else check that the runtime loads it (LiteRT) or that the ONNX checker with shape inference
    passes, and check the output shape (None)."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        from nag.space.models import example_input, seeded_module

        return verify_export(path, seeded_module(specs, seed=seed), example_input(specs, seed=seed))
    blocks = [specs] if not isinstance(specs, Sequence) else list(specs)
    if path.suffix == ".tflite":
        import numpy as np

        with _captured_output():  # LiteRT announces its delegate on stderr
            output = run_exported(path, np.zeros(blocks[0].input_shape_nchw, dtype=np.float32))
        if output.shape != tuple(blocks[-1].output_shape_nchw):
            raise ExportError(f"{path}: output shape {output.shape} differs from the block specs' {blocks[-1].output_shape_nchw}")
        return None
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: the ONNX checker rejects the direct export: {exc}") from exc
    dims = onnx.load(str(path), load_external_data=False).graph.output[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value for d in dims)
    if shape != tuple(blocks[-1].output_shape_nchw):
        raise ExportError(f"{path}: output shape {shape} differs from the block specs' {blocks[-1].output_shape_nchw}")
    return None


def export_blocks(
    specs: Block | Sequence[Block], *, fmt: str, out: str | os.PathLike[str], seed: int = 0, verify: bool = True,
    exporter: str | None = None,
) -> ExportResult:  # fmt: skip
    """Export one block, or a whole network given as its block list, with seeded random weights.

    ``exporter``: ``"direct"`` (ONNX or ``.tflite`` built from the specs; the default for both) or ``"torch"``
    (torch's exporters; the reference, and the only one for ``.pt2``). With ``verify`` (the default) the file
    is run once in its runtime and compared with torch's module of the same weights; a direct export on a
    machine without torch is checked by the ONNX checker or by loading it in LiteRT instead, and its output
    shape (``max_abs_error`` None).
    """
    exporter = resolve_exporter(fmt, exporter)
    if exporter == "direct":
        path = _export_direct(specs, fmt=fmt, seed=seed, out=Path(out))
        error = _check_direct(path, specs, seed) if verify else None
        return ExportResult(path=path, fmt=fmt, max_abs_error=error, exporter=exporter)
    from nag.space.models import example_input, seeded_module

    module = seeded_module(specs, seed=seed)
    example = example_input(specs, seed=seed)
    path = export_model(module, example, fmt=fmt, out=out)
    error = verify_export(path, module, example) if verify else None
    return ExportResult(path=path, fmt=fmt, max_abs_error=error, exporter=exporter)


def default_cache_dir() -> Path:
    return Path(os.environ.get("NAG_CACHE_DIR", "~/.cache/nag")).expanduser() / "models"


@functools.cache
def _exporter_identity(exporter: str, fmt: str) -> str:
    """What an exported file depends on besides the specs: the exporter, its version and the weights' version."""
    from nag.space.weights import WEIGHTS_VERSION

    if exporter == "direct" and fmt == "tflite":
        from nag.space.tflite_graph import GRAPH_VERSION as TFLITE_GRAPH_VERSION

        return f"direct-tflite{TFLITE_GRAPH_VERSION}-weights{WEIGHTS_VERSION}"
    if exporter == "direct":
        from nag.space.onnx_graph import GRAPH_VERSION, OPSET

        return f"direct-{GRAPH_VERSION}-opset{OPSET}-weights{WEIGHTS_VERSION}"
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "missing"  # the export itself will say what to install
    return f"torch-{torch_version}-weights{WEIGHTS_VERSION}"


def exporter_identity(fmt: str, exporter: str | None = None) -> str:
    """The identity of the exporter that writes ``fmt`` (as :func:`resolve_exporter` picks it): its name, the
    version of the graph it emits (or torch's) and of the seeded weights, e.g. ``direct-tflite1-weights1``. Two
    files of one block spec with the same identity hold the same graph; the farm records it with each measurement."""
    return _exporter_identity(resolve_exporter(fmt, exporter), fmt)


def cache_path(
    specs: Block | Sequence[Block], *, fmt: str, cache_dir: str | os.PathLike[str] | None = None, seed: int = 0,
    exporter: str | None = None,
) -> Path:  # fmt: skip
    """Where :func:`cached_export` keeps these block specs' file, ``<digest>-<exporter>.<fmt>``.

    The digest covers the content: every field of every block spec (not just the table keys), the format,
    the weight seed, and the exporter's identity (its name and version, the version of the seeded weights),
    so files of the two exporters never mix and a changed exporter never serves a stale file.
    """
    import hashlib

    exporter = resolve_exporter(fmt, exporter)
    blocks = [specs] if not isinstance(specs, Sequence) else list(specs)
    content = "|".join([fmt, str(seed), _exporter_identity(exporter, fmt), *(repr(b) for b in blocks)])
    digest = hashlib.sha256(content.encode()).hexdigest()[:20]
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / f"{digest}-{exporter}.{fmt}"


def cached_export(
    specs: Block | Sequence[Block], *, fmt: str, cache_dir: str | os.PathLike[str] | None = None, seed: int = 0,
    exporter: str | None = None,
) -> Path:  # fmt: skip
    """The exported file for these block specs, exported (and verified) only when the cache lacks it.

    The file is named by :func:`cache_path` (a digest of the specs' content, the format, the weight seed and
    the exporter), so the same network or block at the same setting is exported once per machine and
    exporter. ``exporter`` as :func:`export_blocks` takes it (``direct`` for ONNX and ``.tflite`` by default).
    """
    target = cache_path(specs, fmt=fmt, cache_dir=cache_dir, seed=seed, exporter=exporter)
    if not target.exists():
        try:
            export_blocks(specs, fmt=fmt, out=target, seed=seed, exporter=exporter)
        except BaseException:
            target.unlink(missing_ok=True)  # a file that failed its check must not be served from the cache
            raise
    return target
