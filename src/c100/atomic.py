"""Atomic file writes: a crash or a full disk never leaves a truncated file in place of a good one.

Write to a temporary file ``.<name>.<random>.tmp`` in the same folder, flush and fsync it, then
``os.replace`` it over the target (atomic on POSIX) and fsync the folder. On any failure the
temporary file is removed and the old target is untouched; a process killed between the two steps
leaves only the temporary file, which ``remove_stale_temp_files`` clears on the next start. The new
file gets the mode a plain ``open()`` would give it (the old file's, else 0666 less the umask).

Test hook (used only by the tests, never set in normal use): ``C100_TEST_SLOW_WRITE=SECONDS`` or
``SECONDS:PATTERN`` sleeps SECONDS between writing the temporary file and replacing the target, for
every target whose file name matches the fnmatch PATTERN (default: every file), so that a test can
kill the process while a write is in flight.
"""
import errno
import fnmatch
import io
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from c100.errors import ResourceError

SLOW_WRITE_ENV = "C100_TEST_SLOW_WRITE"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes-like, or a list of bytes-like chunks written in order) to ``path`` atomically."""
    path = Path(path)
    chunks = data if isinstance(data, (list, tuple)) else [data]
    existed, tmp = False, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.is_file()
        mode = path.stat().st_mode & 0o7777 if existed else 0o666 & ~_UMASK
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        _test_slow_write(path)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError):
            raise write_error(path, e, existed) from e
        raise
    _fsync_dir(path.parent)


def write_error(path, e: OSError, existed) -> ResourceError:
    """The ResourceError for a failed write of ``path`` (a file or a folder); the old one is intact."""
    kept = f"{path} still holds its previous version" if existed else f"{path} was not created"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceError(f"disk full while writing {path}; nothing already written was lost ({kept})")
    return ResourceError(f"cannot write {path}: {e.strerror or e}; {kept}")


@contextmanager
def atomic_folder(path):
    """Build a folder in a temporary sibling ``.<name>.<random>.tmp`` (yielded), then rename it to
    ``path``, replacing the old folder only once the new one is whole. On any failure the temporary
    folder is removed and ``path`` is left as it was; a failed write (disk full, read-only file system,
    no permission) raises ResourceError. A crash between the two renames of a replacement leaves the
    old folder as ``.<name>.<random>.old.tmp`` beside it."""
    path = Path(path)
    existed, tmp = path.is_dir(), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; a plain mkdir would give this
        yield tmp
        if existed:
            old = tmp.with_name(tmp.name[:-len(".tmp")] + ".old.tmp")
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
        tmp = None
    except OSError as e:
        raise write_error(path, e, existed) from e
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(path.parent)


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def torch_save_bytes(obj) -> memoryview:
    """What ``torch.save(obj, file)`` would write, as a view of one in-memory buffer (no copy)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getbuffer()


def remove_stale_temp_files(folder) -> list:
    """Remove the temporary files that writes killed in flight left in ``folder``; return their paths."""
    removed = []
    try:
        candidates = list(Path(folder).glob(".*.tmp"))
    except OSError:
        return removed
    for p in candidates:
        # only our own pattern: .<name>.<8 random chars>.tmp
        if p.is_file() and p.name.count(".") >= 3:
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def _test_slow_write(path):
    spec = os.environ.get(SLOW_WRITE_ENV)
    if not spec:
        return
    seconds, _, pattern = spec.partition(":")
    if fnmatch.fnmatch(path.name, pattern or "*"):
        time.sleep(float(seconds))


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
