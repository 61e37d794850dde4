"""``ort-cpu``: ONNX Runtime on this machine's CPU (intra-op threads, sequential execution, pinned)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import ClassVar

from agents._base import Runner
from agents.local import InProcessRunner, LocalCpuAgent
from agents.runtimes import onnx_session, random_inputs
from agents.types import MeasurementSpec, PreparedModel

__all__ = ["OrtCpuAgent"]


class OrtCpuAgent(LocalCpuAgent):
    kind: ClassVar[str] = "ort-cpu"
    model_formats = (".onnx",)

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def runtime(self) -> tuple[str, str, str | None]:
        import onnxruntime

        return "onnxruntime", onnxruntime.__version__, None

    def _open_runner(self, prepared: PreparedModel, spec: MeasurementSpec) -> Runner:
        def make_invoke() -> Callable[[], object]:
            session = onnx_session(prepared.device_path, threads=spec.threads)
            feeds = random_inputs([(i.name, i.shape, i.type) for i in session.get_inputs()])
            return lambda: session.run(None, feeds)

        return InProcessRunner(make_invoke, spec.affinity)
