"""Pickles read without running code: only plain Python values and NumPy arrays and scalars come back.

``pickle.load`` imports and calls whatever a file names, so a planted file runs code.
``loads`` instead:

- walks the opcodes first without building anything, refusing lengths that run past the
  data and memo indices no pickler writes (either would have the unpickler allocate
  gigabytes);
- resolves only the globals in ``ALLOWED``, refusing any other with ``RefusedGlobal``
  before it is imported, and persistent ids;
- builds arrays and scalars itself, with ``np.frombuffer`` and a dtype that NumPy derives
  afresh from the pickled one's description (NumPy's own rebuilders trust a pickled dtype's
  internal flags), and refuses arrays of Python objects;
- checks that what it built holds only ``None``, bools, ints, floats, complex numbers,
  strings, ``bytes``, ``bytearray``, lists, tuples, dicts, sets, ``OrderedDict`` and NumPy
  arrays and scalars (a bare dtype is refused: store ``dtype.str``).

``dumps`` writes every array as NumPy writes a contiguous one (``_frombuffer``), so that a
strided view or a datetime array reads back too. A generator's ``bit_generator.state`` is a
dict of allowed values.
"""

from __future__ import annotations

import collections
import importlib
import io
import pickle
import pickletools
import warnings
from typing import Any, Literal

import numpy as np
from numpy.lib import format as npy_format

PROTOCOL = 5
"""The pickle protocol ``dumps`` writes."""

_NUMPY_PACKAGES = ("numpy._core", "numpy.core")
"""Where NumPy 2 and NumPy 1 pickles say its rebuilders live."""
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_LEAVES = (type(None), bool, int, float, complex, str, bytes, bytearray, np.generic)
_CONTAINERS = (list, tuple, set, frozenset, dict)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global outside ``ALLOWED``."""

    def __init__(self, name: str) -> None:
        name = name if name.isprintable() else ascii(name)
        super().__init__(f"{name} is not among the globals a checkpoint may name")
        self.name = name
        """The refused global, ``module.name`` (quoted, if it is not printable)."""


def _plain_dtype(value: Any) -> np.dtype:
    """A dtype NumPy builds afresh from ``value``'s description; refuses one of Python objects."""
    if not isinstance(value, np.dtype):
        raise pickle.UnpicklingError(f"a NumPy array or scalar names {type(value).__name__}, not a dtype")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a dtype's metadata is dropped, with a warning
        fresh = npy_format.descr_to_dtype(npy_format.dtype_to_descr(value))
    if fresh.hasobject:
        raise pickle.UnpicklingError("NumPy arrays and scalars of Python objects are not allowed")
    return fresh


def _dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype`` as NumPy's pickles call it: from a type string, always a copy (never a shared one)."""
    if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise pickle.UnpicklingError("numpy.dtype called with other than a type string and two flags")
    dtype = np.dtype(spec, align, True)  # a pickle goes on to set the state of what this returns
    if dtype.hasobject:
        raise pickle.UnpicklingError("NumPy arrays and scalars of Python objects are not allowed")
    return dtype


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """An array from its bytes, as NumPy pickles a contiguous one (protocol 5)."""
    if not isinstance(buffer, (bytes, bytearray)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("a NumPy array's bytes or order are not what NumPy writes")
    return np.frombuffer(buffer, dtype=_plain_dtype(dtype)).reshape(shape, order=order)


def _scalar(dtype: Any, data: Any) -> np.generic:
    """A NumPy scalar from its bytes."""
    fresh = _plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != fresh.itemsize or not fresh.itemsize:
        raise pickle.UnpicklingError("a NumPy scalar's bytes do not fit its dtype")
    return np.frombuffer(data, dtype=fresh)[0]


def _bytearray(data: Any = b"") -> bytearray:
    """``bytearray`` as protocols 3 and 4 call it: from bytes (never from a size)."""
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError("bytearray called with other than bytes")
    return bytearray(data)


_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "complex"): complex,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): _bytearray,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "dtype"): _dtype,
    **{(f"{package}.numeric", "_frombuffer"): _frombuffer for package in _NUMPY_PACKAGES},
    **{(f"{package}.multiarray", "scalar"): _scalar for package in _NUMPY_PACKAGES},
}
ALLOWED: tuple[str, ...] = tuple(f"{module}.{name}" for module, name in _GLOBALS)
"""Every global a pickle read by ``loads`` may name, as ``module.name``."""


class _Unpickler(pickle.Unpickler):
    """An unpickler that finds only the allowed globals (most of them checking stand-ins)."""

    def find_class(self, module: str, name: str) -> Any:
        """The allowed object ``module.name``; ``RefusedGlobal`` for any other, never importing it."""
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse: a checkpoint holds no references to outside objects."""
        raise pickle.UnpicklingError("persistent ids are not allowed")


class _Pickler(pickle.Pickler):
    """A pickler that writes every NumPy array as its bytes, the way ``_frombuffer`` reads them."""

    def reducer_override(self, obj: Any) -> Any:
        """``_frombuffer(bytes, dtype, shape, order)`` for an array; the default for everything else."""
        if type(obj) is not np.ndarray or obj.dtype.hasobject:
            return NotImplemented
        order: Literal["C", "F"] = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
        return _numpy_module("numeric")._frombuffer, (bytearray(obj.tobytes(order)), obj.dtype, obj.shape, order)


def _numpy_module(name: str) -> Any:
    """``numpy._core.<name>`` (NumPy 2), else ``numpy.core.<name>`` (NumPy 1)."""
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{name}")


def _scan(data: bytes | memoryview) -> None:
    """Walk the opcodes without building anything: every length within the data, memo indices in order."""
    for count, (opcode, arg, _) in enumerate(pickletools.genops(io.BytesIO(data))):
        if opcode.name in _PUTS and isinstance(arg, int) and arg > count:
            raise pickle.UnpicklingError(f"memo index {arg} out of order")


MAX_VALUES = 5_000_000
"""The most values (containers and what they hold) a pickle read by ``loads`` may unfold to. Pickles share
objects, so a kilobyte can describe a list of 2**60 items ([x, x] nested 60 deep), and whatever walks what was
loaded (``repr``, ``json.dumps``, comparisons) unfolds it. The committed checkpoints hold at most about 6,000
(arrays count one each)."""


def _check(value: Any) -> None:
    """Refuse anything but the allowed values in what ``load`` built, a value that holds itself, and one that
    unfolds to more than ``MAX_VALUES`` values."""
    unfolded: dict[int, int] = {}  # id of a container -> how many values it unfolds to, itself included
    open_: set[int] = set()  # containers whose contents are being walked: one met again among them holds itself
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, walked = stack.pop()
        if isinstance(item, _LEAVES) or type(item) is np.ndarray or id(item) in unfolded:
            continue
        if walked:
            open_.discard(id(item))
            unfolded[id(item)] = 1 + sum(unfolded.get(id(part), 1) for part in _parts(item))
            if unfolded[id(item)] > MAX_VALUES:
                raise pickle.UnpicklingError(f"a checkpoint unfolds to more than {MAX_VALUES:,} values")
        elif id(item) in open_:
            raise pickle.UnpicklingError("a checkpoint may not hold a value that contains itself")
        elif type(item) in _CONTAINERS or (type(item) is collections.OrderedDict and not vars(item)):
            open_.add(id(item))
            stack.append((item, True))
            stack.extend((part, False) for part in _parts(item))
        else:
            what = "bare NumPy dtype (store dtype.str)" if isinstance(item, np.dtype) else type(item).__name__
            raise pickle.UnpicklingError(f"a checkpoint may not hold a {what}")


def _parts(container: Any) -> list[Any]:
    """What a list, tuple, set or dict holds (a dict's keys and values)."""
    return [*container.keys(), *container.values()] if isinstance(container, dict) else list(container)


def loads(data: bytes | memoryview) -> Any:
    """Unpickle ``data`` (all of it) building only allowed values; ``RefusedGlobal`` or another error if not."""
    _scan(data)
    stream = io.BytesIO(data)
    value = _Unpickler(stream).load()
    extra = memoryview(data).nbytes - stream.tell()
    if extra:
        raise pickle.UnpicklingError(f"{extra} bytes follow the end of the pickle")
    _check(value)
    return value


def dumps(value: Any) -> bytes:
    """Pickle ``value`` (protocol 5); ``loads`` reads it back only if it holds allowed values alone."""
    stream = io.BytesIO()
    _Pickler(stream, protocol=PROTOCOL).dump(value)
    return stream.getvalue()
