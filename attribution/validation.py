"""Checks for untrusted input: size-capped JSON parsing, typed field readers, usable Unicode text.

Result JSON may come from anyone (a request to the Space, a file downloaded from the Hub), so it is
read in two stages: :func:`parse_json_text` / :func:`read_json_file` bound the size *before*
parsing and refuse what is not plain JSON (``NaN``, nesting deep enough to exhaust the stack, whole
numbers too long for ``int``); then each result class reads its fields with an :class:`ObjectReader`
(``f.text("method")``, ``f.whole("layer", minimum=0)``, ``f.list_of("edges", read_edge)``), whose
``expect_*`` checks raise :class:`~attribution.errors.ResultFormatError` with the path of the first
offending field (``nodes[3].token_index``), so nothing malformed reaches an exporter. The ``expect_*``
functions also read the items of lists and pairs.

Why these readers and not a validation library (measured on a 4.5 MB contribution graph of 1,701 nodes
and 11,239 edges, CPU time, this machine; ``json.loads`` alone takes 45 ms): the readers import in 6 ms
and check and build the whole graph in about 105 ms (every field, the edges joining stored nodes,
indices within the tokens and layers). pydantic 2.13 checks the fields' types and ranges alone in
30 ms, but importing it with the graph's models costs 94 ms on every start of the command line and the
app, the checks between fields (matrix shapes, node ids, token ranges) stay hand-written, and its
messages would need translating into the one-line ``result JSON: `field` must be ...`` that users and
tests read. jsonschema 4.26 imports in 57 ms and takes 970 ms for the types and ranges alone.
"""

from __future__ import annotations

import json
import math
import re
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from attribution.errors import InvalidInputError, ResultFormatError

#: Largest result JSON read by default (text or file); the Space's operator config sets its own cap.
DEFAULT_MAX_RESULT_BYTES = 64 * 1024**2
#: Deepest nesting accepted inside free-form fields such as ``method_params``.
MAX_FREE_FORM_DEPTH = 4

#: What a reader returns for one field or item (``read(value, path)``): lists and maps of it keep its type.
T = TypeVar("T")
#: One of a field's string choices: a ``Literal`` when the choices are typed as one (``tuple[ModelKind, ...]``).
C = TypeVar("C", bound=str)
#: A matrix as JSON holds it: rows of numbers, null where a cell has no value.
JsonMatrix = list[list[float | None]]


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1024**2:.3g} MB"


def parse_json_text(text: str | bytes, *, max_bytes: int | None = None, what: str = "result JSON") -> Any:
    """Parse JSON *text* (never a path) of at most ``max_bytes`` UTF-8 bytes, checked before parsing.

    The one parser of untrusted JSON (results, run manifests, option values such as ``--method-params``):
    whatever is wrong with the text, the answer is one :class:`ResultFormatError` line naming ``what``.
    ``max_bytes=None`` means :data:`DEFAULT_MAX_RESULT_BYTES` (read at call time).
    """
    max_bytes = DEFAULT_MAX_RESULT_BYTES if max_bytes is None else max_bytes
    if isinstance(text, bytes):
        size = len(text)
    elif isinstance(text, str):
        # A character takes at most 4 bytes in UTF-8: a text this long cannot fit, whatever it holds.
        size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", "surrogatepass"))
    else:
        raise ResultFormatError(f"{what} must be text, not {type(text).__name__}")
    if size > max_bytes:
        raise ResultFormatError(f"{what} is larger than the {_megabytes(max_bytes)} accepted")

    def refuse_constant(name: str) -> Any:
        raise ResultFormatError(f"{what}: {name} is not a JSON number (only finite numbers and null are accepted)")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except ResultFormatError:
        raise
    except RecursionError:
        raise ResultFormatError(f"{what} is nested too deeply") from None
    except UnicodeDecodeError as error:
        raise ResultFormatError(f"{what} is not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ResultFormatError(f"{what} is not valid JSON ({error.msg} at line {error.lineno})") from None
    except ValueError:  # the only other one: int() refuses more digits than sys.get_int_max_str_digits()
        raise ResultFormatError(
            f"{what} holds a whole number of more than {sys.get_int_max_str_digits():,} digits"
        ) from None


def check_regular_file(path: str | Path, name: str | None = None) -> Path:
    """``path`` if it names a regular file (links followed); anything else is one :class:`InvalidInputError`.

    The one check before a file named by a user is opened for reading (result JSON, run manifests,
    corpus data): opening a FIFO waits for a writer forever and a device never ends, so they are
    refused by what they are, before any ``open``. ``name`` replaces the path in the message.
    """
    path = Path(path)
    shown = name or str(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InvalidInputError(f"{shown} not found") from None
    except OSError as error:
        raise InvalidInputError(f"cannot read {shown}: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"{shown} is {_file_kind(mode)}, not a regular file")
    return path


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "not a file")


def read_json_file(path: str | Path, *, max_bytes: int | None = None) -> Any:
    """Read and parse a JSON file, reading at most ``max_bytes`` + 1 bytes of a regular file only."""
    max_bytes = DEFAULT_MAX_RESULT_BYTES if max_bytes is None else max_bytes
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"result file not found: {path}")
    check_regular_file(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise InvalidInputError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise ResultFormatError(f"{path} is larger than the {_megabytes(max_bytes)} accepted for a result JSON")
    return parse_json_text(data, max_bytes=max_bytes)


# ------------------------------------------------------------------------------------------ field readers


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def fail(path: str, message: str) -> ResultFormatError:
    """The error for field ``path`` (raise it)."""
    return ResultFormatError(f"result JSON: `{path}` {message}")


def _wrong(path: str, expected: str, value: Any) -> ResultFormatError:
    return fail(path, f"must be {expected}, not {_kind(value)}")


def expect_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(path, "an object", value)
    return value


def field_path(prefix: str, name: str) -> str:
    """The error-message path of field ``name`` inside the object at ``prefix`` ("" at the top)."""
    return f"{prefix}.{name}" if prefix else name


def get_field(obj: dict[str, Any], key: str, path: str, *, default: Any = ...) -> Any:
    """``obj[key]``; a missing key is an error unless a ``default`` is given."""
    if key in obj:
        return obj[key]
    if default is ...:
        raise fail(f"{path}.{key}" if path else key, "is missing")
    return default


@overload
def expect_str(value: Any, path: str, *, optional: Literal[False] = False) -> str: ...
@overload
def expect_str(value: Any, path: str, *, optional: bool) -> str | None: ...
def expect_str(value: Any, path: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _wrong(path, "a string" + (" or null" if optional else ""), value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise fail(path, "holds a lone surrogate (not valid Unicode text)") from None
    return value


def expect_int(value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(path, "a whole number", value)
    if minimum is not None and value < minimum:
        raise fail(path, f"must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise fail(path, f"must be at most {maximum}, not {value}")
    return value


@overload
def expect_number(
    value: Any,
    path: str,
    *,
    optional: Literal[False] = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float: ...
@overload
def expect_number(
    value: Any, path: str, *, optional: bool, minimum: float | None = None, maximum: float | None = None
) -> float | None: ...
def expect_number(
    value: Any, path: str, *, optional: bool = False, minimum: float | None = None, maximum: float | None = None
) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _wrong(path, "a number" + (" or null" if optional else ""), value)
    if minimum is not None and value < minimum:
        raise fail(path, f"must be at least {minimum:g}, not {value:g}")
    if maximum is not None and value > maximum:
        raise fail(path, f"must be at most {maximum:g}, not {value:g}")
    return float(value)


@overload
def expect_share(value: Any, path: str, *, optional: Literal[False] = False) -> float: ...
@overload
def expect_share(value: Any, path: str, *, optional: bool) -> float | None: ...
def expect_share(value: Any, path: str, *, optional: bool = False) -> float | None:
    """A number in [0, 1]: a probability, a fraction, a proximity weight."""
    return expect_number(value, path, optional=optional, minimum=0.0, maximum=1.0)


def expect_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(path, "true or false", value)
    return value


def expect_choice(value: Any, path: str, choices: Iterable[C]) -> C:
    choices = tuple(choices)
    if value not in choices:
        shown = repr(value) if isinstance(value, str) and len(value) < 40 else _kind(value)
        raise fail(path, f"must be one of {', '.join(choices)}, not {shown}")
    return value


@overload
def expect_list(
    value: Any, path: str, *, length: int | None = None, per: str = "", optional: Literal[False] = False
) -> list[Any]: ...
@overload
def expect_list(
    value: Any, path: str, *, length: int | None = None, per: str = "", optional: bool
) -> list[Any] | None: ...
def expect_list(
    value: Any, path: str, *, length: int | None = None, per: str = "", optional: bool = False
) -> list[Any] | None:
    """A list (of ``length`` entries, one ``per`` something, when given)."""
    if value is None and optional:
        return None
    if not isinstance(value, list):
        raise _wrong(path, "a list" + (" or null" if optional else ""), value)
    if length is not None and len(value) != length:
        unit = f" (one per {per})" if per else ""
        raise fail(path, f"must have {length} entries{unit}, not {len(value)}")
    return value


@overload
def expect_list_of(
    value: Any,
    path: str,
    read: Callable[[Any, str], T],
    *,
    length: int | None = None,
    per: str = "",
    optional: Literal[False] = False,
) -> list[T]: ...
@overload
def expect_list_of(
    value: Any,
    path: str,
    read: Callable[[Any, str], T],
    *,
    length: int | None = None,
    per: str = "",
    optional: bool,
) -> list[T] | None: ...
def expect_list_of(
    value: Any,
    path: str,
    read: Callable[[Any, str], T],
    *,
    length: int | None = None,
    per: str = "",
    optional: bool = False,
) -> list[T] | None:
    """A list whose every item passes ``read(item, item_path)``."""
    items = expect_list(value, path, length=length, per=per, optional=optional)
    if items is None:
        return None
    return [read(item, f"{path}[{i}]") for i, item in enumerate(items)]


def expect_tuple(value: Any, path: str, readers: Sequence[Callable[[Any, str], Any]], *, per: str) -> tuple[Any, ...]:
    """A fixed-length list read as a tuple, its i-th entry by ``readers[i]`` (``per`` names the entries)."""
    items = expect_list(value, path, length=len(readers), per=per)
    return tuple(read(item, f"{path}[{i}]") for i, (read, item) in enumerate(zip(readers, items, strict=True)))


def expect_str_list(value: Any, path: str, *, length: int | None = None, per: str = "") -> list[str]:
    return expect_list_of(value, path, expect_str, length=length, per=per)


@overload
def expect_number_matrix(
    value: Any, path: str, shape: tuple[int, int], *, optional: Literal[False] = False, per: str = "attributed step"
) -> JsonMatrix: ...
@overload
def expect_number_matrix(
    value: Any, path: str, shape: tuple[int, int], *, optional: bool, per: str = "attributed step"
) -> JsonMatrix | None: ...
def expect_number_matrix(
    value: Any, path: str, shape: tuple[int, int], *, optional: bool = False, per: str = "attributed step"
) -> JsonMatrix | None:
    """``shape[0]`` rows of ``shape[1]`` numbers or nulls, one per ``per`` (a fast loop: matrices are the bulk
    of a result)."""
    rows = expect_list(value, path, optional=optional)
    if rows is None:
        return None
    n_rows, n_cols = shape
    if len(rows) != n_rows:
        raise fail(path, f"must have {n_rows} rows, not {len(rows)}")
    for i, row in enumerate(rows):
        if type(row) is not list:
            raise _wrong(f"{path}[{i}]", "a list", row)
        if len(row) != n_cols:
            raise fail(f"{path}[{i}]", f"must have {n_cols} values (one per {per}), not {len(row)}")
        for j, cell in enumerate(row):
            kind = type(cell)
            if kind is not float and kind is not int and cell is not None:
                raise _wrong(f"{path}[{i}][{j}]", "a number or null", cell)
    return rows


def expect_str_map(value: Any, path: str, read: Callable[[Any, str], T]) -> dict[str, T]:
    """An object whose every value passes ``read(value, path.key)`` (keys are strings in JSON)."""
    obj = expect_object(value, path)
    return {expect_str(key, f"{path} key"): read(item, f"{path}.{key}") for key, item in obj.items()}


def expect_free_form(value: Any, path: str, *, depth: int = MAX_FREE_FORM_DEPTH) -> Any:
    """Any JSON value nested at most ``depth`` levels (method parameters and the like)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return expect_number(value, path) if isinstance(value, float) else value
    if isinstance(value, str):
        return expect_str(value, path)
    if depth <= 0:
        raise fail(path, f"is nested more than {MAX_FREE_FORM_DEPTH} levels deep")
    if isinstance(value, list):
        return [expect_free_form(item, f"{path}[{i}]", depth=depth - 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            expect_str(key, f"{path} key"): expect_free_form(item, f"{path}.{key}", depth=depth - 1)
            for key, item in value.items()
        }
    raise _wrong(path, "JSON", value)


#: ``default`` of an :class:`ObjectReader` reader when none is given (a sentinel: ``None`` is a real default).
NO_DEFAULT: Any = object()


class ObjectReader:
    """Reads the fields of one JSON object with the ``expect_*`` readers, each error naming ``path.field``.

    The one way result classes read their JSON: ``reader.text("model_id")`` is
    ``expect_str(obj["model_id"], "provenance.model_id")``. What a missing field reads as:

    - an error ("is missing"), unless
    - ``optional=True``: missing and null both read as None (``text``, ``number``, ``whole``, ...);
    - ``default=value``: missing reads as ``value``, checked like any other (null stays an error unless
      optional); ``default=...`` insists on the field being present even when it is optional (nullable).
    """

    def __init__(self, data: Any, path: str) -> None:
        self.data = expect_object(data, path or "result")
        self.path = path

    def at(self, name: str) -> str:
        return field_path(self.path, name)

    def get(self, name: str, default: Any = ...) -> Any:
        return get_field(self.data, name, self.path, default=default)

    def _value(self, name: str, optional: bool, default: Any = NO_DEFAULT) -> Any:
        """The field's value, its default when missing, or the "is missing" error (read once per field of every
        node and edge of a graph: kept to one dictionary look-up)."""
        data = self.data
        if name in data:
            return data[name]
        if default is NO_DEFAULT:
            default = None if optional else ...
        if default is ...:
            raise fail(self.at(name), "is missing")
        return default

    def field(self, name: str, read: Callable[[Any, str], T], *, default: Any = NO_DEFAULT) -> T:
        """A field read by ``read(value, path)``: a nested object (``Provenance.from_dict``) or any other reader."""
        return read(self._value(name, False, default), self.at(name))

    @overload
    def text(self, name: str, *, optional: Literal[False] = False, default: Any = NO_DEFAULT) -> str: ...
    @overload
    def text(self, name: str, *, optional: bool, default: Any = NO_DEFAULT) -> str | None: ...
    def text(self, name: str, *, optional: bool = False, default: Any = NO_DEFAULT) -> str | None:
        return expect_str(self._value(name, optional, default), self.at(name), optional=optional)

    def texts(self, name: str, *, length: int | None = None, per: str = "", default: Any = NO_DEFAULT) -> list[str]:
        return expect_str_list(self._value(name, False, default), self.at(name), length=length, per=per)

    @overload
    def number(
        self,
        name: str,
        *,
        optional: Literal[False] = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float: ...
    @overload
    def number(
        self, name: str, *, optional: bool, minimum: float | None = None, maximum: float | None = None
    ) -> float | None: ...
    def number(
        self, name: str, *, optional: bool = False, minimum: float | None = None, maximum: float | None = None
    ) -> float | None:
        return expect_number(
            self._value(name, optional), self.at(name), optional=optional, minimum=minimum, maximum=maximum
        )

    @overload
    def share(self, name: str, *, optional: Literal[False] = False) -> float: ...
    @overload
    def share(self, name: str, *, optional: bool) -> float | None: ...
    def share(self, name: str, *, optional: bool = False) -> float | None:
        return expect_share(self._value(name, optional), self.at(name), optional=optional)

    @overload
    def whole(
        self,
        name: str,
        *,
        optional: Literal[False] = False,
        minimum: int | None = None,
        maximum: int | None = None,
        default: Any = NO_DEFAULT,
    ) -> int: ...
    @overload
    def whole(
        self,
        name: str,
        *,
        optional: bool,
        minimum: int | None = None,
        maximum: int | None = None,
        default: Any = NO_DEFAULT,
    ) -> int | None: ...
    def whole(
        self,
        name: str,
        *,
        optional: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
        default: Any = NO_DEFAULT,
    ) -> int | None:
        value = self._value(name, optional, default)
        return (
            None if value is None and optional else expect_int(value, self.at(name), minimum=minimum, maximum=maximum)
        )

    def flag(self, name: str, *, default: Any = NO_DEFAULT) -> bool:
        return expect_bool(self._value(name, False, default), self.at(name))

    @overload
    def choice(self, name: str, choices: Iterable[C], *, optional: Literal[False] = False) -> C: ...
    @overload
    def choice(self, name: str, choices: Iterable[C], *, optional: bool) -> C | None: ...
    def choice(self, name: str, choices: Iterable[C], *, optional: bool = False) -> C | None:
        value = self._value(name, optional)
        return None if value is None and optional else expect_choice(value, self.at(name), choices)

    @overload
    def list_of(
        self,
        name: str,
        read: Callable[[Any, str], T],
        *,
        length: int | None = None,
        per: str = "",
        optional: Literal[False] = False,
        default: Any = NO_DEFAULT,
    ) -> list[T]: ...
    @overload
    def list_of(
        self,
        name: str,
        read: Callable[[Any, str], T],
        *,
        length: int | None = None,
        per: str = "",
        optional: bool,
        default: Any = NO_DEFAULT,
    ) -> list[T] | None: ...
    def list_of(
        self,
        name: str,
        read: Callable[[Any, str], T],
        *,
        length: int | None = None,
        per: str = "",
        optional: bool = False,
        default: Any = NO_DEFAULT,
    ) -> list[T] | None:
        value = self._value(name, optional, default)
        return expect_list_of(value, self.at(name), read, length=length, per=per, optional=optional)

    def text_map(self, name: str, read: Callable[[Any, str], T], *, default: Any = NO_DEFAULT) -> dict[str, T]:
        """An object whose every value passes ``read`` (``library_versions``, ``step_scores``)."""
        return expect_str_map(self._value(name, False, default), self.at(name), read)

    def free_form(self, name: str, *, default: Any = NO_DEFAULT) -> Any:
        """Any JSON value nested at most :data:`MAX_FREE_FORM_DEPTH` levels (``method_params``)."""
        return expect_free_form(self._value(name, False, default), self.at(name))

    @overload
    def matrix(
        self,
        name: str,
        shape: tuple[int, int],
        *,
        optional: Literal[False] = False,
        default: Any = NO_DEFAULT,
        per: str = "attributed step",
    ) -> JsonMatrix: ...
    @overload
    def matrix(
        self,
        name: str,
        shape: tuple[int, int],
        *,
        optional: bool,
        default: Any = NO_DEFAULT,
        per: str = "attributed step",
    ) -> JsonMatrix | None: ...
    def matrix(
        self,
        name: str,
        shape: tuple[int, int],
        *,
        optional: bool = False,
        default: Any = NO_DEFAULT,
        per: str = "attributed step",
    ) -> JsonMatrix | None:
        """``shape[0]`` rows of ``shape[1]`` numbers or nulls (see :func:`expect_number_matrix`)."""
        value = self._value(name, optional, default)
        return expect_number_matrix(value, self.at(name), shape, optional=optional, per=per)


# ------------------------------------------------------------------------------------------------- text


def quoted(text: str, limit: int = 40) -> str:
    """``text`` as a message quotes it: its repr, cut after ``limit`` characters (a message never echoes a huge
    value whole)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text):,} characters)"


def safe_file_name(name: str, default: str = "export") -> str:
    """A plain file name: letters, digits, ``_.-`` only, no leading dot, at most 120 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:120]
    return cleaned or default


def check_unicode(text: str, role: str = "text") -> str:
    """``text`` if it is valid Unicode; a lone surrogate (what invalid UTF-8 on a command line becomes) is refused."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidInputError(
                f"The {role} is not valid text: character {error.start + 1} is a lone surrogate "
                "(invalid UTF-8 in the input). Fix the encoding and try again."
            ) from None
    return text
