"""Typed errors of the measurement agents.

Two families, so that callers (the farm's scheduler, a retry wrapper) can decide without parsing messages:

- :class:`TransientAgentError`: retrying may help, here or on another device of the kind (a device that
  dropped, a timeout, a device too hot to measure, a tool whose output could not be parsed).
- :class:`PermanentAgentError`: retrying cannot help (an unsupported model, a bad spec, a missing runtime,
  an untrusted host key).

Every message says what was wrong, the value, and how to fix it where there is a fix.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AuthenticationError",
    "DeviceTooHotError",
    "DeviceUnavailableError",
    "HostKeyError",
    "MeasurementTimeoutError",
    "MissingRuntimeError",
    "OutputParseError",
    "PermanentAgentError",
    "SpecError",
    "TransientAgentError",
    "UnknownDeviceError",
    "UnsupportedModelError",
]


class AgentError(Exception):
    """Base class of every agent error."""


class TransientAgentError(AgentError):
    """Retrying, later or on another device of the same kind, may succeed."""


class PermanentAgentError(AgentError):
    """Retrying cannot succeed until something is changed."""


class DeviceUnavailableError(TransientAgentError):
    """The device or the connection to it went away (unplugged, rebooted, network dropped)."""


class MeasurementTimeoutError(TransientAgentError):
    """A command or a measurement took longer than its limit."""


class DeviceTooHotError(TransientAgentError):
    """The device stayed above the configured temperature for the whole cool-down wait."""


class OutputParseError(TransientAgentError):
    """A benchmark tool's output has no parsable timings. Never read as 0 ms; the output is kept in the message."""


class UnsupportedModelError(PermanentAgentError):
    """The model file cannot run on this kind of device (wrong format, or the runtime rejects it)."""


class SpecError(PermanentAgentError, ValueError):
    """A measurement spec or agent configuration value is invalid."""


class MissingRuntimeError(PermanentAgentError, ImportError):
    """The runtime an agent kind needs is not installed; the message says what to install."""


class UnknownDeviceError(PermanentAgentError, LookupError):
    """No device with that id (or of that kind) is reachable; the message lists the ones that are."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AuthenticationError(PermanentAgentError):
    """The device refused our credentials, or the key file cannot be used; retrying cannot help until fixed."""


class HostKeyError(PermanentAgentError):
    """An SSH host key is unknown or changed; the message says how to trust it after checking."""
