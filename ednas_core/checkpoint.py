"""Atomic writes and state files.

Atomic writes: a temp file in the same folder, fsync, then rename, so a killed process never leaves a
half-written checkpoint, genotype or metrics file behind (the previous version stays intact).

State files (the resumable checkpoints, the search's supernet, the trained model) are safetensors files, which
loading reads as JSON and raw tensor bytes only, so a tampered file can never run code (a pickle, which torch.load
reads, can). Every tensor of the nested state (numpy arrays too) is stored under its path in the state, e.g.
`state/child/net/cells.0.ops.3.weight`; everything else (dicts, lists, tuples, ints, floats including NaN and
infinities, strings, booleans, None, numpy scalars) is JSON in the header metadata, with a reference where each
tensor goes. A state saved and loaded comes back equal, with its types (tuple or list, numpy array or tensor,
dtype) and tied weights (the same tensor in two places) kept; equal states give byte-identical files."""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

FORMAT = "ednas-state/1"
STATE_KEY = "ednas.state"  # the only metadata key: safetensors writes several keys in no fixed order
SCALAR_KINDS = "biufU"  # numpy scalar kinds a state may hold: bool, int, uint, float, str


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None and err.errno:  # a write to the open file (ENOSPC) names no file: name this one
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class StateFileError(ValueError):
    """A state file that cannot be used; the message is one line naming the file and what to do."""


class CorruptStateFile(StateFileError):
    """Empty, cut short or not a state file of this project: what a killed copy, a foreign or a tampered file
    looks like."""

    def __init__(self, path: Path, reason: str, fix: str):
        super().__init__(f"{path} cannot be read ({reason}); {fix}")
        self.path, self.reason = Path(path), reason


class _Malformed(Exception):
    """Why bytes are not a state file (CorruptStateFile adds the file and the fix)."""


def save_checkpoint(state: Any, path: Path) -> None:
    """Writes a nested state (see the module docstring) as a safetensors file, atomically."""
    atomic_write_bytes(path, encode_state(state))


def load_checkpoint(path: Path, fix: str = "delete it to start over") -> Any:
    """The state saved in `path`; never runs code. A missing or unreadable file raises StateFileError, bytes that
    are not a state file raise CorruptStateFile; both say `fix`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise StateFileError(f"{path} cannot be read ({err.strerror or type(err).__name__}); {fix}") from None
    try:
        return decode_state(data)
    except _Malformed as err:
        raise CorruptStateFile(path, str(err), fix) from None


def set_aside(path: Path) -> Path:
    """Renames an unusable state file to `<name>.corrupt-<n>` (the first n not taken) and returns that path."""
    path = Path(path)
    n = 1
    while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    os.replace(path, aside)
    return aside


def require_keys(state: Any, keys: Iterable[str], path: Path, fix: str) -> dict[str, Any]:
    """`state` if it is a dict with all `keys`; otherwise one StateFileError line naming the file."""
    if not isinstance(state, dict):
        raise StateFileError(_lacks(path, f"holds a {type(state).__name__}, not a dict", fix))
    missing = [key for key in keys if key not in state]
    if missing:
        raise StateFileError(_lacks(path, "no entry " + ", ".join(repr(k) for k in missing), fix))
    return state


@contextmanager
def applying(path: Path, fix: str) -> Iterator[None]:
    """Around the code that applies a loaded state (load_state_dict): what a state without the expected entries
    raises there (a missing key, a wrong shape or type) becomes one StateFileError line naming the file."""
    try:
        yield
    except StateFileError:
        raise
    except KeyError as err:
        raise StateFileError(_lacks(path, f"no entry {err.args[0]!r}" if err.args else "a missing entry", fix)) \
            from None
    except (IndexError, TypeError, AttributeError, ValueError) as err:
        raise StateFileError(_lacks(path, _first_lines(err), fix)) from None
    except RuntimeError as err:  # nn.Module.load_state_dict: missing, unexpected or mis-shaped weights
        if not str(err).startswith("Error(s) in loading state_dict"):
            raise
        raise StateFileError(_lacks(path, _first_lines(err), fix)) from None


def _lacks(path: Path, what: str, fix: str) -> str:
    return f"{path} does not hold the expected state ({what}); {fix}"


def _first_lines(err: BaseException, limit: int = 200) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = ": ".join(lines[:2]) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the format ------------------------------------------------------------------------------------------------

def encode_state(state: Any) -> bytes:
    """The bytes of a state file; the same for equal states."""
    encoder = _Encoder()
    skeleton = encoder.encode(state, ())
    header = json.dumps({"format": FORMAT, "state": skeleton}, separators=(",", ":"), allow_nan=False)
    return save_tensors(encoder.tensors, metadata={STATE_KEY: header})


def decode_state(data: bytes) -> Any:
    """The state of a state file's bytes; raises _Malformed saying why they are not one. Parses JSON and reads
    tensor bytes, nothing else."""
    if not data:
        raise _Malformed("empty file")
    size = int.from_bytes(data[:8], "little") if len(data) >= 8 else None
    if size is None or 8 + size > len(data):
        raise _Malformed("cut short, or not a safetensors file")
    try:
        header = json.loads(data[8 : 8 + size])
    except (ValueError, RecursionError):
        raise _Malformed("its header is not JSON: not a safetensors file") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    text = metadata.get(STATE_KEY) if isinstance(metadata, dict) else None
    if not isinstance(text, str):
        raise _Malformed("a safetensors file without an EDNAS state")
    offsets = [entry.get("data_offsets") for entry in header.values() if isinstance(entry, dict)]
    ends = [pair[1] for pair in offsets if isinstance(pair, list) and len(pair) == 2]
    if any(isinstance(end, int) and end > len(data) - 8 - size for end in ends):
        raise _Malformed("cut short")
    try:
        tensors = load_tensors(data)
    except (SafetensorError, KeyError, ValueError, TypeError, RuntimeError) as err:  # KeyError: an unknown dtype
        raise _Malformed(f"tensor data damaged: {_first_lines(err)}") from None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise _Malformed("its state is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or "state" not in document:
        found = document.get("format") if isinstance(document, dict) else None
        raise _Malformed(f"state format {found!r}, expected {FORMAT!r}")
    try:
        return _Decoder(tensors).decode(document["state"])
    except RecursionError:
        raise _Malformed("its state is nested too deeply") from None
    except (TypeError, ValueError, OverflowError) as err:  # e.g. a numpy array of a dtype numpy lacks, 300 as int8
        raise _Malformed(f"unexpected state entry: {_first_lines(err)}") from None


class _Encoder:
    """Turns a nested state into a JSON skeleton and the tensors it refers to."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.views: dict[tuple, str] = {}  # a tensor view already stored -> its key: tied weights are stored once
        self.originals: list[torch.Tensor] = []  # kept alive so that no later tensor reuses a seen address

    def encode(self, value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, np.generic):  # before float/str: np.float64 and np.str_ are subclasses
            if value.dtype.kind not in SCALAR_KINDS:
                raise TypeError(f"a state file cannot hold a numpy {value.dtype} scalar (at {_where(path)})")
            return {"numpy_scalar": value.dtype.str, "value": self.encode(value.item(), path)}
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}  # 'nan', 'inf' or '-inf'
        if isinstance(value, torch.Tensor):
            return {"tensor": self.add(value, path)}
        if isinstance(value, np.ndarray):
            return {"ndarray": self.add(torch.from_numpy(np.ascontiguousarray(value)), path)}
        if isinstance(value, dict):
            for key in value:
                if not (key is None or isinstance(key, (bool, int, float, str))):
                    raise TypeError(f"a state file cannot hold a {type(key).__name__} dict key (at {_where(path)})")
            return {"dict": [[self.encode(k, path), self.encode(v, path + (str(k),))] for k, v in value.items()]}
        if isinstance(value, list):
            return [self.encode(v, path + (str(i),)) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"tuple": [self.encode(v, path + (str(i),)) for i, v in enumerate(value)]}
        raise TypeError(f"a state file cannot hold a {type(value).__name__} (at {_where(path)})")

    def add(self, tensor: torch.Tensor, path: tuple[str, ...]) -> str:
        tensor = tensor.detach()
        if tensor.layout != torch.strided:
            raise TypeError(f"a state file cannot hold a {tensor.layout} tensor (at {_where(path)})")
        view = None
        if tensor.numel():
            view = (tensor.device, tensor.dtype, tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                    tuple(tensor.shape), tensor.stride())
            if view in self.views:
                return self.views[view]
        base = "/".join(path) or "."
        key, n = base, 1
        while key in self.tensors:  # e.g. keys 1 and "1" of one dict
            key, n = f"{base}#{n}", n + 1
        # a contiguous copy of its own: safetensors stores neither views of a shared storage nor strided tensors
        self.tensors[key] = tensor.to("cpu", copy=True, memory_format=torch.contiguous_format)
        self.originals.append(tensor)
        if view is not None:
            self.views[view] = key
        return key


class _Decoder:
    """Rebuilds a state from its JSON skeleton and tensors; anything unexpected raises _Malformed."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors  # one tensor per key: a tensor referred to twice comes back as one (tied)

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        keys = set(node) if isinstance(node, dict) else set()
        if keys == {"tuple"} and isinstance(node["tuple"], list):
            return tuple(self.decode(v) for v in node["tuple"])
        if keys == {"dict"} and isinstance(node["dict"], list):
            return dict(self.pair(item) for item in node["dict"])
        if keys == {"float"} and node["float"] in ("nan", "inf", "-inf"):
            return float(node["float"])
        if keys == {"tensor"}:
            return self.tensor(node["tensor"])
        if keys == {"ndarray"}:
            return self.tensor(node["ndarray"]).numpy()
        if keys == {"numpy_scalar", "value"} and isinstance(node["numpy_scalar"], str):
            try:
                dtype = np.dtype(node["numpy_scalar"])
            except TypeError:
                dtype = None
            value = self.decode(node["value"])
            if dtype is not None and dtype.kind in SCALAR_KINDS and isinstance(value, (bool, int, float, str)):
                return dtype.type(value)
        raise _Malformed(f"unexpected state entry {json.dumps(node)[:60]}")

    def pair(self, item: Any) -> tuple[Any, Any]:
        if not (isinstance(item, list) and len(item) == 2):
            raise _Malformed(f"unexpected dict item {json.dumps(item)[:60]}")
        key = self.decode(item[0])
        if not (key is None or isinstance(key, (bool, int, float, str))):
            raise _Malformed(f"unexpected dict key {json.dumps(item[0])[:60]}")
        return key, self.decode(item[1])

    def tensor(self, key: Any) -> torch.Tensor:
        if not isinstance(key, str) or key not in self.tensors:
            raise _Malformed(f"its state refers to a tensor {key!r} the file does not hold")
        return self.tensors[key]


def _where(path: tuple[str, ...]) -> str:
    return "/".join(path) or "the top"
