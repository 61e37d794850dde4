"""``cuda``: a CUDA GPU of this machine.

``.pt2`` models (``torch.export``, written by ``nag arch export --format pt2``) run in torch and are timed
with CUDA events recorded around the timed inferences after a synchronisation; ``.onnx`` models run in
ONNX Runtime's CUDA execution provider (``onnxruntime-gpu``). A machine without a CUDA GPU probes to no
device: that is not an error.

Temperatures and SM clocks come from NVML through torch where ``pynvml`` is installed, else None.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from agents._base import Agent, Runner, check_device_id
from agents.config import AgentsConfig
from agents.errors import MissingRuntimeError, UnsupportedModelError
from agents.runtimes import onnx_session, random_inputs
from agents.types import DeviceInfo, MeasurementSpec, PreparedModel

__all__ = ["CudaAgent"]


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingRuntimeError("the cuda agent needs torch with CUDA: pip install torch") from exc
    return torch


def _gpu_count() -> int:
    try:
        torch = _torch()
    except MissingRuntimeError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


class _TorchEventRunner:
    """Times a torch module on one GPU with CUDA events (the GPU's own clock, not the host's)."""

    def __init__(self, path: str, index: int) -> None:
        torch = _torch()
        self._torch = torch
        self._device = torch.device("cuda", index)
        program = torch.export.load(path)
        inputs = [
            n.meta["val"] for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs
        ]
        if not inputs:
            raise UnsupportedModelError(f"{path} has no tensor inputs")
        self._module = program.module().to(self._device)
        self._inputs = [torch.randn(tuple(t.shape), device=self._device, dtype=t.dtype) for t in inputs]

    def _run(self, runs: int) -> None:
        with self._torch.inference_mode():
            for _ in range(runs):
                self._module(*self._inputs)

    def warmup(self, runs: int) -> None:
        self._run(runs)
        self._torch.cuda.synchronize(self._device)

    def sample(self, runs: int) -> float:
        cuda = self._torch.cuda
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        cuda.synchronize(self._device)
        with cuda.device(self._device):
            start.record()
            self._run(runs)
            end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / runs

    def close(self) -> None:
        del self._module, self._inputs
        self._torch.cuda.empty_cache()


class _OrtCudaRunner:
    """ONNX Runtime's CUDA provider; ``run`` returns host outputs, so each call ends synchronised."""

    def __init__(self, path: str, index: int, threads: int) -> None:
        session = onnx_session(path, threads=threads, providers=[("CUDAExecutionProvider", {"device_id": index})])  # type: ignore[list-item]
        if "CUDAExecutionProvider" not in session.get_providers():
            raise MissingRuntimeError("ONNX Runtime has no CUDA provider here: pip install onnxruntime-gpu")
        feeds = random_inputs([(i.name, i.shape, i.type) for i in session.get_inputs()])
        self._invoke: Callable[[], object] = lambda: session.run(None, feeds)

    def warmup(self, runs: int) -> None:
        for _ in range(runs):
            self._invoke()

    def sample(self, runs: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(runs):
            self._invoke()
        return (time.perf_counter_ns() - start) / runs / 1e6

    def close(self) -> None:
        """The session is released with the runner."""


class CudaAgent(Agent):
    kind: ClassVar[str] = "cuda"
    model_formats = (".pt2", ".onnx")

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index
        torch = _torch()
        props = torch.cuda.get_device_properties(index)
        uuid = str(getattr(props, "uuid", "") or f"{socket.gethostname()}-{index}")
        self._info = DeviceInfo(
            kind=self.kind,
            device_id=f"cuda:{uuid}",
            fingerprint={
                "gpu": str(props.name),
                "capability": f"{props.major}.{props.minor}",
                "memory_mib": str(props.total_memory // (1 << 20)),
                "cuda": str(torch.version.cuda),
                "host": socket.gethostname(),
                "index": str(index),
            },
        )
        self._last_format = ".pt2"

    @classmethod
    def probe(cls, config: AgentsConfig) -> list[DeviceInfo]:
        if not config.local:
            return []
        return [cls(index).describe() for index in range(_gpu_count())]

    @classmethod
    def open(cls, device_id: str | None, config: AgentsConfig) -> Agent:
        devices = cls.probe(config)
        chosen = check_device_id(cls.kind, device_id, devices)
        return cls(int(chosen.fingerprint["index"]))

    def describe(self) -> DeviceInfo:
        return self._info

    def runtime(self) -> tuple[str, str, str | None]:
        if self._last_format == ".onnx":
            import onnxruntime

            return "onnxruntime-cuda", onnxruntime.__version__, None
        torch = _torch()
        return "torch-cuda", f"torch {torch.__version__} cuda {torch.version.cuda}", None

    def _place(self, path: Path, sha256: str) -> tuple[str, bool]:
        return str(path.resolve()), False

    def _open_runner(self, prepared: PreparedModel, spec: MeasurementSpec) -> Runner:
        self._last_format = Path(prepared.device_path).suffix
        if self._last_format == ".onnx":
            return _OrtCudaRunner(prepared.device_path, self._index, spec.threads)
        return _TorchEventRunner(prepared.device_path, self._index)

    def read_temperatures(self) -> list[float] | None:
        with contextlib.suppress(Exception):  # needs pynvml; absent is "unknown", not an error
            return [float(_torch().cuda.temperature(self._index))]
        return None

    def read_cpu_freqs(self) -> list[int] | None:
        """The GPU's SM clock in kHz (the frequency that matters here), where NVML is available."""
        with contextlib.suppress(Exception):
            return [int(_torch().cuda.clock_rate(self._index)) * 1000]
        return None
