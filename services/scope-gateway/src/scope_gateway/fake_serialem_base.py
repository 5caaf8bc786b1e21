"""The plumbing of the fake ``serialem`` module: arguments, reports, scripts, sockets, faults.

Everything here follows mastcu/PythonModule (``SerialEMModule.cpp``, ``PySEMSocket.cpp``):

- :func:`parse_args` checks a call against the command's keys in
  :data:`~scope_gateway.serialem_commands.COMMANDS`, as ``PyArg_ParseTuple`` does
  (``RunCommand``, SEMM 583-660): floats take ints, ints refuse floats, strings refuse
  numbers, no keywords, optional arguments only after the required ones.
- :func:`report` shapes what a command reports: ``None``, one bare float or str, or a tuple
  (SEMM 766-800; ``ReturnAllValuesAsTuples`` makes a single number a 1-tuple).
- A *script* starts with the first command after connecting, a STOP or an ``Exit``
  (``CheckInitialization``, SEMM 555-575; ``sInitializedScript`` is cleared on every exit,
  SEMM 752-764). A new script resets ``NoMessageBoxOnError``, ``AllowFileOverwrite`` and the
  camera parameters a script changed — which is why the driver re-sends its settings.
- The socket: ``ConnectToSEM(port, ip)`` sets the address on the first use only
  (PySEMSocket.cpp 110-145); a lost connection is re-opened by the next call
  (PySEMSocket.cpp 251-254), and SerialEM has ended the script meanwhile.

Fault injection: :meth:`FakeBase.inject_error`, :meth:`FakeBase.press_stop`,
:meth:`FakeBase.drop_connection`, :meth:`FakeBase.set_busy`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final, Literal, TypeVar

from gridpilot.errors import ScopeError, TransientError
from gridpilot_sim.instrument.microscope import TwinMicroscope

from .serialem_commands import COMMANDS, required_count

__all__ = [
    "DEFAULT_IP",
    "DEFAULT_PORT",
    "EMBEDDED_PORT",
    "Args",
    "FakeBase",
    "SEMerror",
    "SEMexited",
    "SEMmoduleError",
    "command",
    "parse_args",
    "report",
]

T = TypeVar("T")
Args = tuple[Any, ...]
FaultKind = Literal["error", "module", "exited", "socket"]

#: The module's default target, and the port of Python run inside SerialEM (about_scripts.htm
#: 1193-1201; PySEMSocket.cpp:116).
DEFAULT_PORT: Final[int] = 48888
EMBEDDED_PORT: Final[int] = 48889
DEFAULT_IP: Final[str] = "127.0.0.1"


class SEMerror(Exception):
    """An error in a SerialEM operation (the text is SerialEM's message)."""


class SEMmoduleError(Exception):
    """An error inside the Python module itself (socket, busy, bad state)."""


class SEMexited(Exception):
    """SerialEM ended the script: the operator pressed STOP ('User STOP'), or ``Exit``."""


_FAULTS: Final[dict[str, type[Exception]]] = {
    "error": SEMerror, "module": SEMmoduleError, "exited": SEMexited, "socket": SEMmoduleError}


def parse_args(name: str, keys: str, args: Args) -> Args:
    """Check and convert positional ``args`` as the compiled module does.

    Returns the converted values, padded with None for optional arguments not given.

    >>> parse_args("MoveStageTo", "DDd", (1, 2.5))
    (1.0, 2.5, None)
    >>> parse_args("LoadCartridge", "I", (1.0,))
    Traceback (most recent call last):
    ...
    TypeError: 'float' object cannot be interpreted as an integer
    """
    required, most = required_count(keys), len(keys)
    if not required <= len(args) <= most:
        bound = "exactly" if required == most else ("at least" if len(args) < required
                                                    else "at most")
        count = required if len(args) < required else most
        raise TypeError(f"{name}() takes {bound} {count} argument{'s' * (count != 1)} "
                        f"({len(args)} given)")
    out: list[Any] = []
    for i, (key, arg) in enumerate(zip(keys, args, strict=False)):
        kind = key.lower()
        if kind == "s":
            if not isinstance(arg, str):
                raise TypeError(f"{name}() argument {i + 1} must be str, not "
                                f"{type(arg).__name__}")
            out.append(arg)
        elif kind == "i":
            if isinstance(arg, float):
                raise TypeError("'float' object cannot be interpreted as an integer")
            if not hasattr(arg, "__index__"):
                raise TypeError(f"{name}() argument {i + 1} must be int, not "
                                f"{type(arg).__name__}")
            out.append(int(arg.__index__()))
        else:
            if isinstance(arg, str) or not (hasattr(arg, "__float__") or hasattr(arg, "__index__")):
                raise TypeError(f"{name}() argument {i + 1} must be real number, not "
                                f"{type(arg).__name__}")
            out.append(float(arg))
    return (*out, *([None] * (most - len(out))))


def report(values: Any, *, always_tuple: bool = False) -> Any:
    """What the module returns for a command's reported values (None, one value, a tuple)."""
    if values is None:
        return None
    items = tuple(values) if isinstance(values, tuple | list) else (values,)
    if not items:
        return None
    shaped = tuple(v if isinstance(v, str) else float(v) for v in items)
    if len(shaped) == 1 and (isinstance(shaped[0], str) or not always_tuple):
        return shaped[0]
    return shaped


def command(handler: Callable[[Any, Args], Any]) -> Callable[..., Any]:
    """Make ``handler(self, parsed_args)`` the module function of the same name.

    The name must be a row of :data:`COMMANDS` (an import-time KeyError otherwise), so the
    fake offers no command the table does not describe.
    """
    name = handler.__name__
    keys = COMMANDS[name].keys

    @functools.wraps(handler)
    def call(self: FakeBase, *args: Any) -> Any:
        return self._call(name, keys, args, lambda parsed: handler(self, parsed))

    return call


class FakeBase:
    """State and plumbing shared by the fake's command groups."""

    SEMerror = SEMerror
    SEMmoduleError = SEMmoduleError
    SEMexited = SEMexited

    def __init__(self, twin: TwinMicroscope, *, embedded: bool = False) -> None:
        self.twin = twin
        self.embedded = embedded
        #: Every command called, in order (module functions included).
        self.calls: list[str] = []
        #: (ip, port) the module's socket went to; set by the first use.
        self.connected_to: tuple[str, int] | None = (DEFAULT_IP, EMBEDDED_PORT) if embedded else None
        #: How many scripts SerialEM has started (one per connection, STOP or Exit).
        self.scripts_started = 0
        #: Errors that would have shown a modal message box (no NoMessageBoxOnError).
        self.message_boxes = 0
        self.no_message_box = False
        self.allow_overwrite = False
        self.always_tuple = False
        self._script_running = False
        self._socket_up = embedded
        self._refuse_connects = 0
        self._busy_elsewhere = False
        self._stop_pressed = False
        self._faults: dict[str, list[tuple[FaultKind, str]]] = {}
        self._guard = threading.Lock()
        self._running: str | None = None
        self._loop = asyncio.new_event_loop()

    # ---- fault injection ------------------------------------------------------------------------
    def inject_error(self, name: str, message: str, times: int = 1, *,
                     kind: FaultKind = "error") -> None:
        """Make the next ``times`` calls of ``name`` fail: ``error`` → SEMerror(message),
        ``module`` → SEMmoduleError, ``exited`` → SEMexited (STOP during it), ``socket`` → the
        connection breaks during it (SEMmoduleError; SerialEM ends the script)."""
        if kind not in _FAULTS:
            raise ValueError(f"kind must be one of {sorted(_FAULTS)}, got {kind!r}")
        self._faults.setdefault(name, []).extend([(kind, message)] * times)

    def press_stop(self) -> None:
        """The operator presses STOP: the running call (or the next one) raises SEMexited."""
        self._stop_pressed = True
        self.twin.abort()

    def drop_connection(self, refuse_reconnects: int = 0) -> None:
        """The socket breaks now; the next ``refuse_reconnects`` attempts to reopen it fail."""
        self._socket_up = False
        self._script_running = False
        self._refuse_connects = refuse_reconnects

    def set_busy(self, busy: bool) -> None:
        """SerialEM is busy with something else (a new script cannot start)."""
        self._busy_elsewhere = busy

    def close(self) -> None:
        """Close the fake's private event loop."""
        if not self._loop.is_closed():
            self._loop.close()

    # ---- the call path --------------------------------------------------------------------------
    def _open_socket(self, port: int | None = None, ip: str | None = None) -> None:
        if self._socket_up:
            return
        if self.connected_to is None:
            self.connected_to = (ip or DEFAULT_IP, port or DEFAULT_PORT)
        if self._refuse_connects > 0:
            self._refuse_connects -= 1
            host, at = self.connected_to
            raise SEMmoduleError(f"PySEMSocket: Error connecting to Server socket at IP {host} "
                                 f"on port {at} (10061)")
        self._socket_up = True

    def _start_script(self) -> None:
        if self._script_running:
            return
        if self._busy_elsewhere:
            raise SEMmoduleError("SerialEM is busy and not ready to run a script")
        self._script_running = True
        self.scripts_started += 1
        self.no_message_box = False
        self.allow_overwrite = False
        self._on_new_script()

    def _on_new_script(self) -> None:
        """Reset what a new script resets (the camera groups extend this)."""

    def _end_script(self) -> None:
        self._script_running = False

    def _call(self, name: str, keys: str, args: Args, body: Callable[[Args], Any]) -> Any:
        self.calls.append(name)
        if not self._guard.acquire(blocking=False):
            raise SEMmoduleError(f"{name} was sent while {self._running} was running; the "
                                 "module runs one operation at a time (about_scripts.htm 1237)")
        self._running = name
        try:
            self._open_socket()
            self._start_script()
            parsed = parse_args(name, keys, args)
            self._check_stop()
            self._check_faults(name)
            try:
                return report(body(parsed), always_tuple=self.always_tuple)
            except SEMerror:
                if not self.no_message_box:
                    self.message_boxes += 1
                raise
        finally:
            self._running = None
            self._guard.release()

    def _check_stop(self) -> None:
        if self._stop_pressed:
            self._stop_pressed = False
            self._end_script()
            raise SEMexited("User STOP")

    def _check_faults(self, name: str) -> None:
        pending = self._faults.get(name)
        if not pending:
            return
        kind, message = pending.pop(0)
        if kind in ("exited", "socket"):
            self._end_script()
        if kind == "socket":
            self._socket_up = False
        raise _FAULTS[kind](message)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a twin operation; its failures become SerialEM's exceptions."""
        try:
            return self._loop.run_until_complete(coro)
        except ScopeError as exc:
            if exc.details.get("aborted") and self._stop_pressed:
                self._check_stop()
            raise SEMerror(exc.message) from None
        except TransientError as exc:
            self._socket_up = False
            self._end_script()
            raise SEMmoduleError(f"PySEMSocket: recv error 10054: {exc.message}") from None
