"""``litert-cpu``: the LiteRT interpreter (``ai-edge-litert``, or the older ``tflite_runtime``) on this CPU."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import ClassVar

from agents._base import Runner
from agents.local import InProcessRunner, LocalCpuAgent
from agents.runtimes import litert_interpreter, litert_version, random_inputs
from agents.types import MeasurementSpec, PreparedModel

__all__ = ["LitertCpuAgent"]


class LitertCpuAgent(LocalCpuAgent):
    kind: ClassVar[str] = "litert-cpu"
    model_formats = (".tflite",)

    @classmethod
    def available(cls) -> bool:
        return any(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime"))

    def runtime(self) -> tuple[str, str, str | None]:
        return "litert", litert_version(), None

    def provenance(self) -> dict[str, str]:
        # LiteRT's default op resolver applies XNNPACK, as an app's default interpreter does
        # (tests/space/test_tflite_graph.py checks that it takes the whole graph)
        return {"delegate": "xnnpack (LiteRT's default op resolver)"}

    def _open_runner(self, prepared: PreparedModel, spec: MeasurementSpec) -> Runner:
        def make_invoke() -> Callable[[], object]:
            interpreter = litert_interpreter(prepared.device_path, num_threads=spec.threads)
            details = interpreter.get_input_details()
            feeds = random_inputs([(d["name"], list(d["shape"]), d["dtype"]) for d in details])
            for detail in details:
                interpreter.set_tensor(detail["index"], feeds[detail["name"]])
            return interpreter.invoke

        return InProcessRunner(make_invoke, spec.affinity)
