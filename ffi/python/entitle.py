"""entitle for Python: the entitle license engine through its C ABI (ctypes).

One module, no dependencies. It loads ``libentitle_ffi`` (``.so``,
``.dylib`` or ``entitle_ffi.dll``) from ``$ENTITLE_FFI_LIB`` if set, else
from the repository's ``target/release`` or ``target/debug``, else from the
system's library path.

    import entitle

    with entitle.Engine("acme-cad", VENDOR_PUB, state_dir,
                        version="2.3.1", channel="stable") as engine:
        export = engine.gate("export")          # once
        if export.check():                      # wherever the feature is used
            ...
        try:
            engine.consume("render")
        except entitle.EntitleError as e:       # e.code == "CONSUMPTION_LIMIT"
            show(e.user_message)
        with engine.lease("simulate"):          # a floating seat, while needed
            ...
        with engine.lease_from_server("http://licenses.lan:8740", LEASE_PUB,
                                      "simulate") as seat:   # from the LAN's server
            print(seat.id, seat.expires_at)
        print(engine.license_info())            # a list of dicts

Failures raise :class:`EntitleError`, whose ``code`` is the stable code
(docs/errors.md: ``"SEAT_LIMIT"``, ``"MALFORMED"``, ``"NULL"``...),
``status`` its number in ``entitle.h``, ``message`` the library's message
(for logs) and ``user_message`` a sentence for the program's user. Strings
are ``str`` both ways.
"""

from __future__ import annotations

import ctypes
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence, Union

__all__ = [
    "Decision",
    "Engine",
    "EntitleError",
    "Gate",
    "Lease",
    "reason_message",
    "status_code",
    "version",
]

OK = 0
_BUFFER_TOO_SMALL = 1001


def _library_names() -> list[str]:
    if sys.platform == "win32":
        return ["entitle_ffi.dll"]
    if sys.platform == "darwin":
        return ["libentitle_ffi.dylib"]
    return ["libentitle_ffi.so"]


def _load() -> ctypes.CDLL:
    explicit = os.environ.get("ENTITLE_FFI_LIB")
    if explicit:
        return ctypes.CDLL(explicit)
    repository = Path(__file__).resolve().parents[2]
    for profile in ("release", "debug"):
        for name in _library_names():
            candidate = repository / "target" / profile / name
            if candidate.exists():
                return ctypes.CDLL(str(candidate))
    return ctypes.CDLL(_library_names()[0])


_lib = _load()


class _Decision(ctypes.Structure):
    _fields_ = [
        ("allowed", ctypes.c_bool),
        ("reason", ctypes.c_uint32),
        ("warning", ctypes.c_uint32),
        ("until_unix", ctypes.c_int64),
    ]


_status = ctypes.c_uint32
_handle = ctypes.c_void_p
_size_p = ctypes.POINTER(ctypes.c_size_t)


def _declare(name: str, restype: Any, *argtypes: Any) -> None:
    function = getattr(_lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)


_declare("entitle_engine_open", _status, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(_handle))
_declare("entitle_engine_open_with", _status, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
         _handle, ctypes.POINTER(_handle))
_declare("entitle_engine_free", None, _handle)
_declare("entitle_options_new", _status, ctypes.POINTER(_handle))
_declare("entitle_options_set_version", _status, _handle, ctypes.c_char_p)
_declare("entitle_options_set_channel", _status, _handle, ctypes.c_char_p)
_declare("entitle_options_set_release_date", _status, _handle, ctypes.c_int64)
_declare("entitle_options_free", None, _handle)
_declare("entitle_add_license", _status, _handle, ctypes.c_char_p)
_declare("entitle_activate_this_device", _status, _handle)
_declare("entitle_request", _status, _handle, ctypes.c_char_p, ctypes.c_size_t, _size_p)
_declare("entitle_apply", _status, _handle, ctypes.c_char_p)
_declare("entitle_check_feature", _status, _handle, ctypes.c_char_p, ctypes.POINTER(_Decision))
_declare("entitle_consume", _status, _handle, ctypes.c_char_p, ctypes.c_uint64)
_declare("entitle_license_info_json", _status, _handle, ctypes.c_char_p, ctypes.c_size_t, _size_p)
_declare("entitle_gate_new", _status, _handle, ctypes.c_char_p, ctypes.POINTER(_handle))
_declare("entitle_gate_check", ctypes.c_int, _handle)
_declare("entitle_gate_decision", _status, _handle, ctypes.POINTER(_Decision))
_declare("entitle_gate_free", None, _handle)
_declare("entitle_lease_acquire", _status, _handle, ctypes.c_char_p, ctypes.POINTER(_handle))
_declare("entitle_lease_acquire_from_server", _status, _handle, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.c_char_p, ctypes.POINTER(_handle))
_declare("entitle_lease_check", _status, _handle, ctypes.POINTER(_Decision))
_declare("entitle_lease_id", _status, _handle, ctypes.c_char_p, ctypes.c_size_t, _size_p)
_declare("entitle_lease_expires_unix", _status, _handle, ctypes.POINTER(ctypes.c_int64))
_declare("entitle_lease_free", None, _handle)
_declare("entitle_user_add", _status, _handle, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.POINTER(_Decision))
_declare("entitle_user_remove", _status, _handle, ctypes.c_char_p)
_declare("entitle_can_add_user", _status, _handle, ctypes.POINTER(_Decision))
_declare("entitle_deactivate_this_device", _status, _handle, ctypes.c_char_p, ctypes.c_char_p,
         ctypes.c_size_t, _size_p)
_declare("entitle_last_error", _status, ctypes.c_char_p, ctypes.c_size_t, _size_p)
_declare("entitle_reason_message", ctypes.c_char_p, ctypes.c_uint32)
_declare("entitle_status_code", ctypes.c_char_p, ctypes.c_uint32)
_declare("entitle_version", ctypes.c_char_p)


def version() -> str:
    """The library's version, such as ``"0.1.0"``."""
    return _lib.entitle_version().decode("utf-8")


def status_code(status: int) -> str:
    """The stable code of a status number: ``status_code(12) == "SEAT_LIMIT"``."""
    return _lib.entitle_status_code(status).decode("utf-8")


def _status_of(code: str) -> int:
    global _NUMBERS
    if _NUMBERS is None:
        # Where the statuses are (entitle.h): reasons 0-27, errors 100-126,
        # warnings 500, the library's own 1000-1005, each group growing at
        # its end. A number the library does not know says UNKNOWN_ERROR.
        numbers = [*range(0, 100), *range(100, 200), *range(500, 510), *range(1000, 1010)]
        _NUMBERS = {status_code(n): n for n in numbers}
        _NUMBERS["UNKNOWN_ERROR"] = 1005
    if code not in _NUMBERS:
        raise ValueError(f"no status has the code {code!r}")
    return _NUMBERS[code]


_NUMBERS: Optional[dict[str, int]] = None


def reason_message(reason: int | str) -> str:
    """A sentence for the program's user for a reason or error, by its
    number or its code: ``reason_message("EXPIRED") == "Your license has
    expired."``."""
    number = _status_of(reason) if isinstance(reason, str) else reason
    return _lib.entitle_reason_message(number).decode("utf-8")


def _last_error() -> str:
    needed = ctypes.c_size_t(0)
    buf = ctypes.create_string_buffer(512)
    if _lib.entitle_last_error(buf, len(buf), ctypes.byref(needed)) == _BUFFER_TOO_SMALL:
        buf = ctypes.create_string_buffer(needed.value)
        _lib.entitle_last_error(buf, len(buf), ctypes.byref(needed))
    return buf.value.decode("utf-8", errors="replace")


class EntitleError(Exception):
    """A call the library refused: ``code`` (stable, docs/errors.md),
    ``status`` (its number), ``message`` (for logs and support) and
    ``user_message`` (a sentence for the program's user)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.code = status_code(status)
        self.message = message
        self.user_message = _lib.entitle_reason_message(status).decode("utf-8")
        super().__init__(f"{self.code}: {message}")


def _check(status: int) -> None:
    if status != OK:
        raise EntitleError(status, _last_error())


def _text(value: Optional[str], name: str, optional: bool = False) -> Optional[bytes]:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{name} holds a NUL character")
    return value.encode("utf-8")


def _text_out(call: Any) -> str:
    """A string the library writes into a buffer: the size asked, then the
    text, the size asked again should it grow in between."""
    needed = ctypes.c_size_t(0)
    buf = ctypes.create_string_buffer(1024)
    for _ in range(4):
        status = call(buf, len(buf), ctypes.byref(needed))
        if status == _BUFFER_TOO_SMALL:
            buf = ctypes.create_string_buffer(needed.value)
            continue
        _check(status)
        return buf.value.decode("utf-8")
    _check(status)
    return ""


class Decision(NamedTuple):
    """The answer to a check."""

    allowed: bool
    """Whether the feature may be used now."""
    reason: str
    """Why: ``"OK"``, ``"IN_GRACE"``, ``"OVERAGE"``, ``"EXPIRED_KEPT"``
    allow; every other code denies."""
    warning: Optional[str]
    """A notice to show while allowed (``"IN_GRACE"``, ``"OVERAGE"``,
    ``"EXPIRED_KEPT"``, ``"ENDING"``), or None."""
    until: Optional[int]
    """When the answer stops holding by time alone, in Unix seconds."""
    message: str
    """The reason in words for the program's user."""

    @classmethod
    def _of(cls, raw: _Decision) -> "Decision":
        return cls(
            allowed=bool(raw.allowed),
            reason=status_code(raw.reason),
            warning=status_code(raw.warning) if raw.warning != OK else None,
            until=raw.until_unix or None,
            message=_lib.entitle_reason_message(raw.reason).decode("utf-8"),
        )


class _Handle:
    """Owns one handle of the library and frees it once."""

    _free: Any = None

    def __init__(self, handle: ctypes.c_void_p) -> None:
        self._handle: Optional[ctypes.c_void_p] = handle

    @property
    def _ptr(self) -> Optional[ctypes.c_void_p]:
        # After close() this is None: the library answers ENTITLE_NULL.
        return self._handle

    def close(self) -> None:
        """Frees the handle (again: nothing)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            type(self)._free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class Gate(_Handle):
    """One feature's gate, made once by :meth:`Engine.gate`: ``check()`` is
    the fastest check there is."""

    _free = _lib.entitle_gate_free

    def check(self) -> bool:
        """Whether the feature may be used now."""
        return _lib.entitle_gate_check(self._ptr) == 1

    def decision(self) -> Decision:
        """The full answer: why, a notice, until when."""
        raw = _Decision()
        _check(_lib.entitle_gate_decision(self._ptr, ctypes.byref(raw)))
        return Decision._of(raw)


class Lease(_Handle):
    """A floating seat held by this program (from the install's state, or
    from a license server) until :meth:`close` (or the end of a ``with``
    block), renewed in the background."""

    _free = _lib.entitle_lease_free

    def check(self) -> Decision:
        """Whether the seat is held now."""
        raw = _Decision()
        _check(_lib.entitle_lease_check(self._ptr, ctypes.byref(raw)))
        return Decision._of(raw)

    @property
    def id(self) -> str:
        """The lease's id, as the server or ``entitle lease list`` knows it.
        Raises :class:`EntitleError` while the seat is lost."""
        return _text_out(lambda buf, n, needed: _lib.entitle_lease_id(self._ptr, buf, n, needed))

    @property
    def expires_at(self) -> int:
        """When the lease ends unless renewed (renewals move it), in Unix
        seconds. Raises :class:`EntitleError` while the seat is lost."""
        ends = ctypes.c_int64(0)
        _check(_lib.entitle_lease_expires_unix(self._ptr, ctypes.byref(ends)))
        return ends.value


def _unix(value: "int | datetime.datetime | datetime.date", name: str) -> int:
    """Unix seconds of an int, an aware datetime or a date (midnight UTC)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, a datetime or a date, not bool")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (datetime.timezone.utc)")
        return int(value.timestamp())
    if isinstance(value, datetime.date):
        return int(datetime.datetime(value.year, value.month, value.day,
                                     tzinfo=datetime.timezone.utc).timestamp())
    raise TypeError(f"{name} must be an int, a datetime or a date, not {type(value).__name__}")


class _Options(_Handle):
    """What the program says of itself when opening its engine."""

    _free = _lib.entitle_options_free

    def __init__(self, version: Optional[str], channel: Optional[str],
                 release_date: "int | datetime.datetime | datetime.date | None") -> None:
        out = _handle()
        _check(_lib.entitle_options_new(ctypes.byref(out)))
        super().__init__(out)
        try:
            if version is not None:
                _check(_lib.entitle_options_set_version(self._ptr, _text(version, "version")))
            if channel is not None:
                _check(_lib.entitle_options_set_channel(self._ptr, _text(channel, "channel")))
            if release_date is not None:
                seconds = _unix(release_date, "release_date")
                if not -2**63 <= seconds < 2**63:
                    raise ValueError("release_date is out of range")
                _check(_lib.entitle_options_set_release_date(self._ptr, seconds))
        except BaseException:
            self.close()
            raise


class Engine(_Handle):
    """The engine of ``product`` on ``state_dir`` (made if missing; None
    keeps state in memory only), trusting the vendor keys in
    ``trusted_keys_pem`` (the text of ``VENDOR.pub``).

    ``version`` (semver, ``"2.3.1"``), ``channel`` (``"stable"``) and
    ``release_date`` (Unix seconds, an aware ``datetime`` or a ``date``:
    when this build was made) say what this program is, for licenses
    limited to ``versions``, ``channels`` or a ``maintenance_until``; a
    value that is not one raises ``EntitleError`` (``INVALID_ARGUMENT``)."""

    _free = _lib.entitle_engine_free

    def __init__(
        self,
        product: str,
        trusted_keys_pem: str,
        state_dir: Optional[str] = None,
        *,
        version: Optional[str] = None,
        channel: Optional[str] = None,
        release_date: "int | datetime.datetime | datetime.date | None" = None,
    ):
        out = _handle()
        product_c = _text(product, "product")
        keys_c = _text(trusted_keys_pem, "trusted_keys_pem")
        dir_c = _text(os.fspath(state_dir) if state_dir is not None else None, "state_dir", True)
        with _Options(version, channel, release_date) as options:
            status = _lib.entitle_engine_open_with(
                product_c, keys_c, dir_c, options._ptr, ctypes.byref(out)
            )
        _check(status)
        super().__init__(out)

    def add_license(self, text: str) -> None:
        """Verifies and installs a license (the text of a ``.lic`` file)."""
        _check(_lib.entitle_add_license(self._ptr, _text(text, "text")))

    def apply(self, text: str) -> None:
        """Applies a signed file from the vendor: a license, a machine
        certificate, a revocation list or a key rotation."""
        _check(_lib.entitle_apply(self._ptr, _text(text, "text")))

    def activate_this_device(self) -> None:
        """Activates this device for the node-locked licenses installed."""
        _check(_lib.entitle_activate_this_device(self._ptr))

    def request(self) -> str:
        """This device's offline activation request, as JSON text."""
        return _text_out(lambda buf, n, needed: _lib.entitle_request(self._ptr, buf, n, needed))

    def check_feature(self, feature: str) -> Decision:
        """Whether ``feature`` may be used now (slower than a gate)."""
        raw = _Decision()
        _check(_lib.entitle_check_feature(self._ptr, _text(feature, "feature"), ctypes.byref(raw)))
        return Decision._of(raw)

    def consume(self, feature: str, amount: int = 1) -> None:
        """Records ``amount`` units of a metered feature, all or nothing."""
        if not isinstance(amount, int) or not 0 <= amount < 2**64:
            raise ValueError("amount must be an int from 0 to 2**64 - 1")
        _check(_lib.entitle_consume(self._ptr, _text(feature, "feature"), amount))

    def gate(self, feature: str) -> Gate:
        """The gate of ``feature``: make it once, check it often."""
        out = _handle()
        _check(_lib.entitle_gate_new(self._ptr, _text(feature, "feature"), ctypes.byref(out)))
        return Gate(out)

    def lease(self, feature: Optional[str] = None) -> Lease:
        """Takes a seat of ``feature``'s floating pool (None: the license's)."""
        out = _handle()
        name = _text(feature, "feature", optional=True)
        _check(_lib.entitle_lease_acquire(self._ptr, name, ctypes.byref(out)))
        return Lease(out)

    def lease_from_server(
        self,
        server_url: Union[str, Sequence[str]],
        server_key_pem: str,
        feature: Optional[str] = None,
    ) -> Lease:
        """Takes a seat of ``feature``'s floating pool (None: the license's)
        from the license server at ``server_url`` (``http://HOST:PORT``, or
        a list of redundant servers asked in order while one does not
        answer), whose leases must be signed by ``server_key_pem`` (what
        ``entitle serve --print-lease-pub`` prints). Blocks while the server is asked
        (up to 5 s to connect); ``EntitleError`` ``SERVER_UNREACHABLE``
        when it cannot be reached, ``LEASE_KEY_MISMATCH`` when its leases
        are signed with another key, or as the server refuses
        (``FLOATING_EXHAUSTED``...)."""
        out = _handle()
        _check(_lib.entitle_lease_acquire_from_server(
            self._ptr,
            _text(server_url if isinstance(server_url, str) else " ".join(server_url),
                  "server_url"),
            _text(server_key_pem, "server_key_pem"),
            _text(feature, "feature", optional=True),
            ctypes.byref(out),
        ))
        return Lease(out)

    def add_user(self, user_id: str, user_type: str = "named") -> Decision:
        """Adds a named user, taking a seat unless they are active already;
        the decision that let them in (``"OK"`` or ``"OVERAGE"``).
        ``EntitleError`` ``SEAT_LIMIT`` when no seat is free."""
        raw = _Decision()
        _check(_lib.entitle_user_add(self._ptr, _text(user_id, "user_id"),
                                     _text(user_type, "user_type"), ctypes.byref(raw)))
        return Decision._of(raw)

    def remove_user(self, user_id: str) -> None:
        """Removes a user, freeing their seat (``USER_NOT_FOUND``)."""
        _check(_lib.entitle_user_remove(self._ptr, _text(user_id, "user_id")))

    def can_add_user(self) -> Decision:
        """Whether one more user could be added now, or why not."""
        raw = _Decision()
        _check(_lib.entitle_can_add_user(self._ptr, ctypes.byref(raw)))
        return Decision._of(raw)

    def deactivate_this_device(self, license_id: Optional[str] = None) -> str:
        """Gives this device up for a node-locked license (``license_id``,
        or the one it is activated for), counting a transfer, and returns
        the signed receipt to send the vendor. Asked again, it returns the
        same receipt."""
        name = _text(license_id, "license_id", optional=True)
        return _text_out(lambda buf, n, needed: _lib.entitle_deactivate_this_device(
            self._ptr, name, buf, n, needed))

    def license_info_json(self) -> str:
        """The installed licenses as JSON text."""
        return _text_out(
            lambda buf, n, needed: _lib.entitle_license_info_json(self._ptr, buf, n, needed)
        )

    def license_info(self) -> list[dict[str, Any]]:
        """The installed licenses, each a dict as ``entitle license list``
        shows it."""
        return json.loads(self.license_info_json())
