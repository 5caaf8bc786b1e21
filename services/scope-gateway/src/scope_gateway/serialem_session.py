"""One connection to SerialEM: the single worker thread, the settings, STOP and reconnection.

Every call into SerialEM's Python module goes through ONE worker thread (SerialEM runs one
operation at a time; about_scripts.htm "Do not try to run two operations at once"), and each
driver operation runs as one job on it, so its calls are never interleaved with another's.

Two ways of connecting (:class:`SerialEMOptions` ``mode``):

- ``external``: the gateway runs in its own Python, on this or another computer, and
  ``ConnectToSEM(port, ip)`` is its first call (the module only honours the address on its
  first use; PySEMSocket.cpp 110-145);
- ``embedded``: the gateway runs inside SerialEM's own Python, whose module is already
  connected; ``ConnectToSEM`` is not called.

A SerialEM *script* starts with the first call and ends with a STOP, an ``Exit`` or a broken
socket; the next call starts a new one, which resets ``NoMessageBoxOnError``,
``AllowFileOverwrite`` and the camera parameters. So after a STOP or a lost connection the
session re-sends its settings (:meth:`SerialEMSession.send_settings`) before the next
operation, and after a STOP it sends nothing at all — not even state reads, which would take
control back from the operator — until the next operation (which the gateway allows only
after ``resume``). The module reopens a lost socket by itself on the next call.

Errors are translated in one place, :func:`translate_serialem_errors`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from gridpilot.errors import ConfigError, OperatorTookOver, ScopeError, TransientError

__all__ = ["SerialEMOptions", "SerialEMSession", "translate_serialem_errors"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_WORDS: Final[tuple[str, ...]] = ("busy", "socket", "connect", "communicat",
                                            "timed out", "timeout")


def _serialem_cause(module: Any, exc: BaseException) -> BaseException:
    """The module's own exception behind ``exc``: a failed ``bufferImage`` raises it inside the
    type's ``__init__``, and Python reports a SystemError caused by it (SEMM 140-153)."""
    kinds = tuple(k for k in (getattr(module, n, None) for n in
                              ("SEMexited", "SEMerror", "SEMmoduleError")) if k is not None)
    cause = exc.__cause__
    if isinstance(exc, SystemError) and cause is not None and isinstance(cause, kinds):
        return cause
    return exc


@contextmanager
def translate_serialem_errors(module: Any, what: str) -> Iterator[None]:
    """Map the ``serialem`` module's exceptions to gridpilot's error tree (the one place).

    ``SEMerror`` → :class:`ScopeError`; ``SEMexited`` → :class:`OperatorTookOver`;
    ``SEMmoduleError`` → :class:`TransientError` when SerialEM was busy or the socket failed,
    else :class:`ScopeError`; a ``SystemError`` caused by one of those (``bufferImage``) as
    its cause; a ``TypeError`` (the gateway called a command wrongly) → :class:`ScopeError`.

    Args:
        module: the ``serialem`` module (its exception classes are looked up on it).
        what: the operation, named in the error message.
    """
    exited = getattr(module, "SEMexited", None)
    sem_error = getattr(module, "SEMerror", None)
    module_error = getattr(module, "SEMmoduleError", None)
    try:
        yield
    except Exception as raised:
        exc = _serialem_cause(module, raised)
        text = str(exc) or type(exc).__name__
        if exited is not None and isinstance(exc, exited):
            raise OperatorTookOver(f"SerialEM stopped during {what} ({text}): the operator took "
                                   "over; the session pauses until they hand back control",
                                   serialem_message=text) from None
        if sem_error is not None and isinstance(exc, sem_error):
            raise ScopeError(f"SerialEM failed {what}: {text}", serialem_message=text) from None
        if module_error is not None and isinstance(exc, module_error):
            if any(word in text.lower() for word in _TRANSIENT_WORDS):
                raise TransientError(f"SerialEM could not run {what} now: {text}",
                                     serialem_message=text) from None
            raise ScopeError(f"SerialEM's Python module failed {what}: {text}",
                             serialem_message=text) from None
        if isinstance(exc, ConnectionError | TimeoutError):
            raise TransientError(f"lost the connection to SerialEM during {what}: {text}") from None
        if isinstance(exc, TypeError):
            raise ScopeError(f"the gateway called SerialEM wrongly during {what} ({text}); "
                             "this is a gateway bug") from None
        raise


@dataclass(frozen=True)
class SerialEMOptions:
    """Where SerialEM is, how to reach it, and what this microscope has.

    Attributes:
        host, port: SerialEM's external-Python socket (``EnableExternalPython 1``; 48888).
        mode: ``external`` (own process, ``ConnectToSEM``) or ``embedded`` (inside SerialEM).
        directory: SerialEM's working folder on its own computer (``SetDirectory``).
        frames_folder: where SerialEM saves movie frames (on its computer).
        frames_local: the same folder as mounted here, to read the frames back.
        save_copies: keep an MRC copy of every image in SerialEM's folder (``SaveToOtherFile``).
        record_exposure_s: exposure of a Record when the command does not give one.
        autoloader: ``thermo`` (slots) or ``jeol`` (inventory indices).
        camera: ``k3`` (Gatan K2/K3), ``falcon`` or ``de``: how frame saving is switched.
        atlas_imaging_state: an Imaging State to set before the atlas montage (or None).
        refine_zlp_interval_min: refine the energy filter's zero-loss peak before a Record
            when this many minutes have passed (None: never).
    """

    host: str = "127.0.0.1"
    port: int = 48888
    mode: Literal["external", "embedded"] = "external"
    directory: str | None = None
    frames_folder: str | None = None
    frames_local: Path | None = None
    save_copies: bool = False
    record_exposure_s: float = 2.5
    autoloader: Literal["thermo", "jeol"] = "thermo"
    camera: Literal["k3", "falcon", "de"] = "k3"
    atlas_imaging_state: str | None = None
    refine_zlp_interval_min: float | None = None


class SerialEMSession:
    """The single writer to SerialEM, with the settings it re-sends after a STOP."""

    def __init__(self, options: SerialEMOptions, module: Any = None) -> None:
        self.options = options
        self.module = module
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serialem")
        self._settings_pending = True
        self._addressed = False
        self._hands_off = False
        self._stopped: OperatorTookOver | None = None
        self.busy = False
        #: How many times the settings were sent (1 at connection, +1 after each STOP/loss).
        self.settings_sent = 0

    @property
    def hands_off(self) -> bool:
        """True after a STOP until the next operation: send nothing, the operator has control."""
        return self._hands_off

    def import_module(self) -> None:
        if self.module is None:
            try:
                self.module = importlib.import_module("serialem")
            except ImportError as exc:
                raise ConfigError(
                    "the serialem module is not installed; copy it from SerialEM's PythonModules "
                    "folder or build it from mastcu/PythonModule, or use the twin driver") from exc

    def send_settings(self, sem: Any) -> None:
        """What a new SerialEM script forgets: sent at connection and after a STOP or loss."""
        o = self.options
        sem.NoMessageBoxOnError(1)
        sem.AllowFileOverwrite(1)
        if o.directory:
            sem.SetDirectory(o.directory)
        if o.frames_folder:
            sem.SetFolderForFrames(o.frames_folder)
        sem.OpenNavigator()
        self.settings_sent += 1

    def note_stop(self, exc: OperatorTookOver) -> None:
        """A STOP was seen while reading the state: raise it before the next operation."""
        self._stopped = exc
        self._hands_off = True
        self._settings_pending = True

    async def run(self, what: str, job: Callable[[Any], T], *, operation: bool = True) -> T:
        """Run ``job(module)`` on the SerialEM thread, with errors translated.

        Args:
            what: the operation, for messages.
            job: the calls to make.
            operation: False for state reads, which never end the operator's control.
        """
        if self.module is None:
            raise TransientError("not connected to SerialEM")
        if operation and self._stopped is not None:
            stopped, self._stopped = self._stopped, None
            raise stopped
        if operation:
            self._hands_off = False
        sem = self.module

        def call() -> T:
            with translate_serialem_errors(sem, what):
                if not self._addressed:
                    if self.options.mode == "external":
                        sem.ConnectToSEM(int(self.options.port), str(self.options.host))
                    self._addressed = True
                if self._settings_pending:
                    self.send_settings(sem)
                    self._settings_pending = False
                return job(sem)

        self.busy = True
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except OperatorTookOver:
            self._hands_off = True
            self._settings_pending = True
            raise
        except TransientError:
            self._settings_pending = True
            raise
        finally:
            self.busy = False

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
        logger.debug("SerialEM worker thread stopped")
