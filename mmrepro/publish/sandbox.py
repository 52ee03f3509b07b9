"""The submission's side of grading: a process that runs a student's code cells and answers calls of its
functions, and nothing else (``python -m mmrepro.publish.sandbox IN OUT MEMORY``).

:mod:`mmrepro.publish.grading` starts it in an empty folder with a memory limit; it never sees a check
or an expected value. The grader sends requests through pipe ``IN`` (pickled, from the grader) and
reads replies from pipe ``OUT``; a reply is plain JSON that :func:`decode` rebuilds into numbers,
strings, lists, tuples, dicts, numpy arrays and torch tensors only, so that nothing the submission
returns can run code in the grader (unpickling its objects could). Anything else comes back as an
:class:`Opaque` stand-in, which equals nothing. Requests:

* ``("cell", source)`` runs a code cell with IPython (magics included); the reply says whether it
  raised, and what (a syntax error with its line);
* ``("describe", name)``: whether the cell code defined ``name``, and for a function its name, module
  and the names its code uses (what :func:`mmrepro.publish.exercises.own` checks), else its value;
* ``("call", name, args, kwargs)``: the function's result, or the exception it raised.
"""
from __future__ import annotations

import base64
import json
import math
import os
import pickle
import struct
import sys
from typing import Any

__all__ = ["encode", "decode", "Opaque", "send", "receive", "MAX_MESSAGE"]

MAX_MESSAGE = 256 << 20  # bytes of one message; a larger reply counts as no reply
_HEADER = struct.Struct("!Q")
_NUMERIC_KINDS = "biufc"  # numpy dtype kinds a reply may carry (never objects)
_DEPTH = 32


# ----------------------------------------------------------------------------- framing

def send(fd: int, payload: bytes) -> None:
    """Write one length-prefixed message to file descriptor ``fd``."""
    data = _HEADER.pack(len(payload)) + payload
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int) -> bytes:
    """Read one length-prefixed message from ``fd`` (EOFError when the writer is gone, ValueError when
    the announced length is over :data:`MAX_MESSAGE`)."""
    (n,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size))
    if n > MAX_MESSAGE:
        raise ValueError(f"a message of {n} bytes (at most {MAX_MESSAGE})")
    return _read_exactly(fd, n)


# ----------------------------------------------------------------------------- values as plain JSON

class Opaque:
    """A value the submission returned that a reply cannot carry (a model, a generator, an object of its
    own class): it shows as its type and equals nothing, so a check comparing it fails."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.text}>" if self.text else f"<{self.type_name}>"

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


def _array(kind: str, array: Any) -> dict[str, Any]:
    return {"t": kind, "dtype": array.dtype.str, "shape": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def encode(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-able data that :func:`decode` rebuilds (by value: a subclass of float or ndarray
    becomes a plain float or ndarray); anything else as an :class:`Opaque` description."""
    import numpy as np

    if depth > _DEPTH:
        return {"t": "opaque", "type": type(value).__name__, "text": "nested too deeply"}
    if value is None or isinstance(value, (bool, str)):
        return {"t": "v", "v": bool(value) if isinstance(value, bool) else None if value is None else str(value)}
    if isinstance(value, int):
        return {"t": "int", "v": str(int(value))}
    if isinstance(value, float):
        return {"t": "float", "v": repr(float(value))}
    if isinstance(value, complex):
        return {"t": "complex", "v": [repr(value.real), repr(value.imag)]}
    if "torch" in sys.modules and isinstance(value, sys.modules["torch"].Tensor):
        torch = sys.modules["torch"]
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return {**_array("tensor", np.array(tensor.numpy(), order="C")), "torch": str(tensor.dtype)}
    if isinstance(value, np.ndarray) and value.dtype.kind in _NUMERIC_KINDS:
        return _array("ndarray", np.array(value, order="C", subok=False))  # np.array keeps a 0-d shape
    if isinstance(value, np.generic) and np.asarray(value).dtype.kind in _NUMERIC_KINDS:
        return _array("scalar", np.asarray(value))
    if isinstance(value, (list, tuple)):
        return {"t": "tuple" if isinstance(value, tuple) else "list", "v": [encode(v, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {"t": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    try:
        text = " ".join(repr(value).split())[:120]
    except Exception:  # noqa: BLE001 - its own repr may fail
        text = ""
    return {"t": "opaque", "type": type(value).__name__, "text": text}


def _rebuild(node: dict[str, Any]) -> Any:
    import numpy as np

    dtype = np.dtype(str(node["dtype"]))
    if dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"dtype {dtype} is not numeric")
    shape = tuple(int(n) for n in node["shape"])
    data = base64.b64decode(str(node["data"]), validate=True)
    if len(data) != dtype.itemsize * math.prod(shape):
        raise ValueError("the array's data does not match its shape")
    array = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if node["t"] == "scalar":
        return array[()]
    if node["t"] == "tensor":
        import torch

        wanted = str(node["torch"]).removeprefix("torch.")
        if not isinstance(getattr(torch, wanted, None), torch.dtype):
            raise ValueError(f"unknown tensor type {node['torch']!r}")
        return torch.from_numpy(array).to(getattr(torch, wanted))
    return array


def decode(node: Any, depth: int = 0) -> Any:
    """The value :func:`encode` described; ValueError for anything that is not such a description."""
    if depth > _DEPTH + 1 or not isinstance(node, dict) or not isinstance(node.get("t"), str):
        raise ValueError("not a value description")
    kind, v = node["t"], node.get("v")
    if kind == "v":
        if v is not None and not isinstance(v, (bool, str)):
            raise ValueError("a plain value must be null, a boolean or a string")
        return v
    if kind == "int":
        return int(str(v)[:5000])
    if kind == "float":
        return float(str(v))
    if kind == "complex":
        return complex(float(v[0]), float(v[1]))
    if kind in ("ndarray", "scalar", "tensor"):
        return _rebuild(node)
    if kind in ("list", "tuple"):
        items = [decode(x, depth + 1) for x in v]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        out = {}
        for pair in v:
            key, value = decode(pair[0], depth + 1), decode(pair[1], depth + 1)
            try:
                out[key] = value
            except TypeError:  # an unhashable key (an array): the dict cannot be rebuilt as it was
                return Opaque("dict", "with unhashable keys")
        return out
    if kind == "opaque":
        return Opaque(str(node.get("type", "object"))[:80], str(node.get("text", ""))[:120])
    raise ValueError(f"unknown value kind {kind!r}")


# ----------------------------------------------------------------------------- the submission's process

_NAMESPACE: dict[str, Any] = {}


def user_global(name: str) -> Any:
    """The submission's global ``name`` (how a student's function passed as an argument arrives here)."""
    return _NAMESPACE[name]


def _error(err: BaseException) -> dict[str, Any]:
    found = {"type": type(err).__qualname__, "module": type(err).__module__, "message": str(err)[:2000]}
    if isinstance(err, SyntaxError):
        found["line"] = err.lineno
        found["message"] = str(err.msg)
    return found


def _run_cell(shell: Any, source: str) -> dict[str, Any]:
    result = shell.run_cell(source, store_history=False)
    err = result.error_before_exec or result.error_in_exec
    return {"ok": True} if err is None else {"ok": False, "error": _error(err)}


def _describe(name: str) -> dict[str, Any]:
    if name not in _NAMESPACE:
        return {"defined": False}
    obj = _NAMESPACE[name]
    if not callable(obj):
        return {"defined": True, "callable": False, "value": encode(obj)}
    from mmrepro.publish.exercises import used_names

    return {"defined": True, "callable": True, "name": str(getattr(obj, "__name__", name)),
            "module": str(getattr(obj, "__module__", "") or ""), "names": sorted(used_names(obj))}


def _call(name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    try:
        return {"ok": True, "value": encode(_NAMESPACE[name](*args, **kwargs))}
    except Exception as err:  # noqa: BLE001 - the submission's own exception, reported to the grader
        return {"ok": False, "error": _error(err)}


def _limit_memory(gigabytes: float) -> None:
    import resource

    limit = int(gigabytes * (1 << 30))
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str]) -> None:
    fd_in, fd_out, memory = int(argv[0]), int(argv[1]), float(argv[2])
    _limit_memory(memory)
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    shell = InteractiveShell.instance(config=config, user_ns=_NAMESPACE)
    while True:
        try:
            request = pickle.loads(receive(fd_in))  # from the grader: trusted
        except EOFError:
            return
        op = request[0]
        try:
            if op == "cell":
                reply = _run_cell(shell, request[1])
            elif op == "describe":
                reply = _describe(request[1])
            elif op == "call":
                reply = _call(request[1], request[2], request[3])
            else:
                reply = {"ok": False, "error": {"type": "ValueError", "module": "builtins",
                                                "message": f"unknown request {op!r}"}}
        except BaseException as err:  # noqa: BLE001 - SystemExit, KeyboardInterrupt from the submission
            reply = {"ok": False, "error": _error(err)}
        send(fd_out, json.dumps(reply).encode())


if __name__ == "__main__":  # run as the imported module, whose namespace user_global() reads
    from mmrepro.publish import sandbox

    sandbox.main(sys.argv[1:])
