"""The ``.nntrace`` zip as untrusted input: the file, the archive and its entries.

Before any table or tensor is looked at, the source (a path, bytes or a binary file) is opened
once and hashed, its first bytes are checked (empty, pickle, not a zip), and every entry of the
archive is checked: its name (no absolute path, no ``..``, no pickle, only the names a trace
has), its compression method, its expansion ratio, and the total size against the limit.
:class:`_Archive` then reads entries into memory on demand. :class:`TraceFormatError`, the one
error every malformed trace raises, lives here; :mod:`nn_tracing.store` is its public home.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "MAX_COMPRESSION_RATIO",
    "MAX_ENTRIES",
    "MAX_MANIFEST_BYTES",
    "MAX_TRACE_BYTES",
    "TraceFormatError",
]

#: Default bound on the total uncompressed size of a trace file.
MAX_TRACE_BYTES = 4 * 2**30
MAX_MANIFEST_BYTES = 32 * 2**20
MAX_ENTRIES = 20_000
MAX_COMPRESSION_RATIO = 200

_ENTRY_PATTERNS = (
    re.compile(r"^manifest\.json$"),
    re.compile(r"^tables/(neurons|history|steps)\.parquet$"),
    re.compile(r"^tensors/(probe|final_weights)\.safetensors$"),
    re.compile(r"^tensors/epoch_(0|[1-9][0-9]{0,8})\.safetensors$"),
)
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin", ".joblib", ".npy", ".npz")


class TraceFormatError(ValueError):
    """A trace file that cannot be read; the message says why, for a person."""

    __module__ = "nn_tracing.store"  # its public home: tracebacks and pickles name it there


def _fail(message: str) -> TraceFormatError:
    return TraceFormatError(message)


def _check_entry_name(name: str) -> None:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise _fail(f"the archive names an absolute path ({name!r}); refusing to read it")
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        raise _fail(f"the archive names a path outside itself ({name!r}); refusing to read it")
    if name.lower().endswith(_PICKLE_SUFFIXES) or name.endswith("data.pkl"):
        raise _fail(
            f"the file contains {name!r}, a pickle or other executable format; nn_tracing never "
            "unpickles trace files (is this a torch.save checkpoint rather than a .nntrace?)"
        )
    if not any(p.match(name) for p in _ENTRY_PATTERNS):
        raise _fail(f"the archive holds an entry that a .nntrace file does not have: {name!r}")


class _Archive:
    """A validated zip archive: bounded, named entries read into memory on demand."""

    def __init__(self, data: bytes | None, handle: BinaryIO | None, max_bytes: int) -> None:
        # One ZipFile over the bytes or over a file handle held open for the trace's life:
        # replacing the file on disk later cannot change what a loaded trace reads.
        self.max_bytes = max_bytes
        self._handle = handle
        self._zip = self._make_zip(data, handle)
        infos = self._zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise _fail(f"the archive has {len(infos)} entries; a trace has at most {MAX_ENTRIES}")
        self.infos: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            _check_entry_name(info.filename)
            if info.filename in self.infos:
                raise _fail(f"the archive holds {info.filename!r} twice")
            if info.is_dir():
                raise _fail(f"the archive holds a directory entry {info.filename!r}")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _fail(f"{info.filename!r} uses a compression method nn_tracing does not read")
            if (
                info.compress_type == zipfile.ZIP_DEFLATED
                and info.file_size > 2**20
                and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)
            ):
                raise _fail(
                    f"{info.filename!r} would expand {info.file_size // max(info.compress_size, 1)}"
                    "-fold; refusing to read a possible zip bomb"
                )
            total += info.file_size
            self.infos[info.filename] = info
        if total > max_bytes:
            raise _fail(
                f"the trace would take {total / 2**20:.0f} MiB uncompressed, over the limit of "
                f"{max_bytes / 2**20:.0f} MiB"
            )

    def close(self) -> None:
        self._zip.close()
        if self._handle is not None:
            self._handle.close()

    @contextlib.contextmanager
    def _open(self) -> Iterator[zipfile.ZipFile]:
        yield self._zip  # ZipFile reads are thread-safe on one instance (a shared-file lock)

    @staticmethod
    def _make_zip(data: bytes | None, handle: BinaryIO | None) -> zipfile.ZipFile:
        try:
            if handle is not None:
                handle.seek(0)
                return zipfile.ZipFile(handle)
            return zipfile.ZipFile(io.BytesIO(data))  # type: ignore[arg-type]
        except zipfile.BadZipFile as exc:
            raise _fail(
                f"the file is not a .nntrace (zip) archive or it is truncated: {exc}"
            ) from None
        except OSError as exc:
            raise _fail(f"the file cannot be read: {exc}") from None
        except Exception as exc:  # NotImplementedError, UnicodeDecodeError, ... for odd headers
            raise _fail(f"the file is a damaged or unsupported zip archive: {exc}") from None

    def read(self, name: str, limit: int | None = None) -> bytes:
        info = self.infos[name]
        size_limit = min(info.file_size, limit) if limit is not None else info.file_size
        try:
            with self._open() as zf, zf.open(info) as handle:
                data = handle.read(size_limit + 1)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise _fail(f"{name!r} is truncated or corrupted: {exc}") from None
        except Exception as exc:  # zlib.error and friends
            raise _fail(f"{name!r} cannot be decompressed: {exc}") from None
        if limit is None and len(data) != info.file_size:
            raise _fail(f"{name!r} is not the size the archive says; the file is corrupted")
        return data[:size_limit]

    def read_head(self, name: str, n: int) -> bytes:
        try:
            with self._open() as zf, zf.open(self.infos[name]) as handle:
                return handle.read(n)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise _fail(f"{name!r} is truncated or corrupted: {exc}") from None
        except Exception as exc:
            raise _fail(f"{name!r} cannot be decompressed: {exc}") from None


def _looks_like_pickle(head: bytes) -> bool:
    return head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6)


def _source_bytes(
    source: Any, max_bytes: int, *, hash_file: bool = True
) -> tuple[bytes | None, BinaryIO | None, str]:
    """Return (data, handle, digest) for a path, bytes or a binary file object.

    A path is opened once and its handle returned (``data`` is then ``None``); the digest is
    computed from that same handle.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _fail(f"the file is larger than the limit of {max_bytes / 2**20:.0f} MiB")
        return data, None, hashlib.sha256(data).hexdigest()
    if isinstance(source, (str, os.PathLike)):
        handle, digest = _open_path(Path(source), max_bytes, hash_file=hash_file)
        return None, handle, digest
    if hasattr(source, "read"):
        data = source.read(max_bytes + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise _fail("the file object must be opened in binary mode")
        if len(data) > max_bytes:
            raise _fail(f"the file is larger than the limit of {max_bytes / 2**20:.0f} MiB")
        return bytes(data), None, hashlib.sha256(data).hexdigest()
    raise TypeError(f"load_trace takes a path, bytes or a binary file, not {type(source).__name__}")


def _open_path(path: Path, max_bytes: int, *, hash_file: bool) -> tuple[BinaryIO, str]:
    """The open file at ``path`` and the sha256 of its bytes (of nothing unless ``hash_file``)."""
    if not path.exists():
        raise _fail(f"no such file: {str(path)!r}")
    if not path.is_file():
        raise _fail(f"{str(path)!r} is not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise _fail(f"{path.name} is larger than the limit of {max_bytes / 2**20:.0f} MiB")
    digest = hashlib.sha256()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _fail(f"{path.name} cannot be read: {exc}") from None
    try:
        if hash_file:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
    except OSError as exc:
        handle.close()
        raise _fail(f"{path.name} cannot be read: {exc}") from None
    return handle, digest.hexdigest()


def _check_start(data: bytes | None, handle: BinaryIO | None) -> None:
    """Name the common wrong files (empty, pickle, not a zip) before zipfile looks at them."""
    if data is not None:
        head = data[:2]
    else:
        assert handle is not None
        try:
            handle.seek(0)
            head = handle.read(2)
        except OSError as exc:
            raise _fail(f"the file cannot be read: {exc}") from None
    if not head:
        raise _fail("the file is empty (0 bytes); it is not a .nntrace file")
    if head != b"PK":
        if _looks_like_pickle(head):
            raise _fail("this is a pickle file, not a .nntrace; nn_tracing never unpickles files")
        raise _fail("the file is not a .nntrace archive (it does not start like a zip file)")
