"""Write outputs atomically and never delete what cervseg did not write.

Why: a run that fails half-way must leave no half-written file or folder that a planning
system or a later step could mistake for a result; and a re-run that replaces an output
folder must not take a reviewer's grades, a user's extra mask or an input folder with it.

The rules, shared by every command that replaces a folder:
- outputs are staged under a hidden name (``.<name>.cervseg-<pid>-<random>.partial``)
  beside the target and renamed into place when complete; staging entries of a process
  that is no longer running are removed, and every reader ignores them;
- every folder written by ``atomic_dir`` holds a record (``.cervseg-written.json``) of the
  files it wrote with their size and SHA-256; an existing folder is only replaced when
  everything in it is in that record and unchanged (``check_replaceable``);
- an output folder may neither lie inside an input nor contain one (``check_output_folder``).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from cervseg.errors import InputError

#: The record of what cervseg wrote into a folder it replaces as a whole.
WRITTEN_RECORD = ".cervseg-written.json"
_STAGING = re.compile(r"\.cervseg-(\d+)-[^/]*\.(partial|old)$")
_NAME_MAX_FALLBACK = 255
_STAGING_EXTRA = 40  # bytes the staging decoration adds to a name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_permissions(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create owner-only entries; a planning-system import account must read ours."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


# ---------------------------------------------------------------- staging names


def staging_prefix(name: str) -> str:
    """Prefix of a staging entry for ``name``, carrying this process's id."""
    return f".{name}.cervseg-{os.getpid()}-"


def is_staging(name: str) -> bool:
    """True for the name of a cervseg staging entry (of any process)."""
    return bool(_STAGING.search(name))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging entries in ``folder`` left by cervseg processes that died (e.g. SIGKILL)."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _STAGING.search(entry.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def make_staging_dir(parent: Path, name: str) -> Path:
    """A fresh hidden staging folder in ``parent`` for an output called ``name``."""
    remove_stale_staging(parent)
    return Path(tempfile.mkdtemp(prefix=staging_prefix(name), suffix=".partial", dir=parent))


# ---------------------------------------------------------------- the record of what we wrote


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    """Every file (or symlink) below ``folder``, staging entries and our record left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not is_staging(d)]
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if d not in links]
        found.extend(Path(dirpath) / d for d in links)  # a symlinked folder is an entry cervseg never writes
        for name in filenames:
            if name == WRITTEN_RECORD and Path(dirpath) == Path(folder):
                continue
            if not is_staging(name):
                found.append(Path(dirpath) / name)
    return sorted(found)


def _record_entry(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def _record_text(files: Mapping[str, object]) -> str:
    return json.dumps({"writer": "cervseg", "files": files}, indent=0)


def write_record(folder: Path) -> None:
    """Record every file now in ``folder`` (size, mtime, SHA-256) as written by cervseg."""
    folder = Path(folder)
    files = {path.relative_to(folder).as_posix(): _record_entry(path) for path in _files(folder)}
    (folder / WRITTEN_RECORD).write_text(_record_text(files), encoding="utf-8")


def _read_record(folder: Path) -> dict[str, dict] | None:
    path = folder / WRITTEN_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return dict(record["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _unchanged(path: Path, entry: Mapping[str, object]) -> bool:
    stat = path.stat()
    if stat.st_size != entry.get("size"):
        return False
    if stat.st_mtime_ns == entry.get("mtime_ns"):
        return True
    return sha256_file(path) == entry.get("sha256")


def _listing(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_replaceable(target: Path, carried: Iterable[str] = ()) -> None:
    """Refuse to replace an existing folder holding anything cervseg did not write, or changed since.

    ``carried``: files (relative paths) whose user edits the caller carries over into the
    new output (evaluate's grades in slices.csv); a change to them does not refuse.
    """
    target = Path(target)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InputError(f"{target}: output exists and is not a folder; choose a new folder")
    if not target.is_dir():
        return
    files = _files(target)
    if not files:
        return
    record = _read_record(target)
    if record is None:
        raise InputError(
            f"{target}: output folder is not empty and not a previous cervseg output (no record of what "
            f"cervseg wrote; holds {_listing([p.relative_to(target).as_posix() for p in files])}); "
            "choose a new folder or empty this one"
        )
    carried = set(carried)
    foreign, changed = [], []
    for path in files:
        rel = path.relative_to(target).as_posix()
        if rel not in record:
            foreign.append(rel)
        elif rel not in carried and (path.is_symlink() or not _unchanged(path, record[rel])):
            changed.append(rel)
    if foreign:
        raise InputError(
            f"{target}: output folder holds files cervseg did not write ({_listing(foreign)}); "
            "replacing the folder would delete them: move them or choose a new folder"
        )
    if changed:
        raise InputError(
            f"{target}: files of the previous output were changed since cervseg wrote them "
            f"({_listing(changed)}); replacing the folder would lose those changes: move them or choose a new folder"
        )


def check_file_replaceable(path: Path) -> None:
    """Refuse to overwrite a file that cervseg did not write into its folder, or that changed since.

    Why: a command that writes a few named files into a folder the user keeps (``segment``'s
    RS_<uid>.dcm) must not overwrite the user's own or edited copy of the same name.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()) or path.is_dir():
        return
    entry = (_read_record(path.parent) or {}).get(path.name)
    if entry is None or path.is_symlink() or not _unchanged(path, entry):
        raise InputError(f"{path}: exists and is not cervseg's unchanged earlier output (edited since, or not "
                         "written by cervseg); move it or choose another --out")


def record_written_files(folder: Path, names: Iterable[str]) -> None:
    """Add the files ``names`` of ``folder`` to its record of what cervseg wrote (others kept)."""
    folder = Path(folder)
    record = _read_record(folder) or {}
    for name in names:
        if (folder / name).is_file():
            record[name] = _record_entry(folder / name)
    with atomic_file(folder / WRITTEN_RECORD) as tmp:
        tmp.write_text(_record_text(record), encoding="utf-8")


# ---------------------------------------------------------------- checks before the long work


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return _NAME_MAX_FALLBACK


def check_writable(target: Path, what: str = "output") -> None:
    """Refuse, before any long work, an output path that cannot be created or written.

    Checks every path component's length against the file system's limit (with room for the
    staging name), and that the nearest existing folder accepts a new file (permissions,
    read-only or immutable file systems).
    """
    target = Path(target).absolute()
    limit = _name_max(Path(target.anchor))
    for part in target.parts:  # first: a stat() of an overlong name fails itself
        if len(os.fsencode(part)) + _STAGING_EXTRA > limit:
            raise InputError(
                f"{target.parent / (part[:40] + '...')}: the name is {len(os.fsencode(part))} bytes; "
                f"this file system allows {limit} (choose a shorter {what} name)"
            )
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{existing}: exists and is not a folder, cannot write the {what} {target} there")
    try:
        fd, probe = tempfile.mkstemp(prefix=staging_prefix("write-test"), suffix=".partial", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else (exc.strerror or str(exc))
        raise InputError(f"{existing}: cannot write the {what} here ({reason})") from None


def check_output_folder(out: Path, inputs: Mapping[Path, str] | Iterable[Path], carried: Iterable[str] = ()) -> None:
    """The one rule for an output folder that will be replaced as a whole.

    It must not lie inside an input nor contain one, may only hold a previous cervseg output
    (check_replaceable), and must be writable.
    """
    check_writable(out)
    items = inputs.items() if isinstance(inputs, Mapping) else ((p, "input folder") for p in inputs)
    for folder, what in items:
        ensure_apart(out, folder, what)
    check_replaceable(out, carried)


# ---------------------------------------------------------------- atomic writers


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename onto target only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=staging_prefix(target.name), suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _default_permissions(tmp_path, is_dir=False)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV}


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2 RENAME_EXCHANGE).

    Why: replacing a folder by two renames leaves a moment with no folder at all; a kill
    then leaves the user's previous output under a hidden staging name. False where the
    system or file system cannot exchange (the caller falls back to two renames).
    """
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


@contextmanager
def atomic_dir(target: Path, carried: Iterable[str] = (), overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside target; on success it replaces target as a whole.

    An existing target is only replaced when it holds nothing but an unchanged previous
    cervseg output (check_replaceable; ``carried`` as there), unless the caller passes
    ``overwrite`` (an API caller's explicit choice; no command does), and only once the new
    content is complete, in one exchange where the system can (``exchange_paths``). The new
    folder records what it holds (WRITTEN_RECORD).
    """
    target = Path(target)
    if not overwrite:
        check_replaceable(target, carried)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = make_staging_dir(target.parent, target.name)
    try:
        yield tmp_path
        write_record(tmp_path)
        _default_permissions(tmp_path, is_dir=True)
        if target.exists():
            if not overwrite:
                check_replaceable(target, carried)  # nothing slipped in while we worked
            if not exchange_paths(tmp_path, target):  # then tmp_path holds the old content
                old = Path(tempfile.mkdtemp(prefix=staging_prefix(target.name), suffix=".old", dir=target.parent))
                os.replace(target, old)
                os.replace(tmp_path, target)
                shutil.rmtree(old)
        else:
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            shutil.rmtree(tmp_path)


def ensure_not_inside(output: Path, protected: Path, what: str = "input folder") -> None:
    """Refuse to write an output inside a folder the user gave us as input."""
    out = Path(output).resolve()
    prot = Path(protected).resolve()
    if out == prot or prot in out.parents:
        raise InputError(f"{output}: output must not be inside the {what} {protected}")


def ensure_apart(output: Path, protected: Path, what: str = "input folder") -> None:
    """Refuse an output folder inside an input, or one that contains it (replacing it would delete the input)."""
    ensure_not_inside(output, protected, what)
    if Path(output).resolve() in Path(protected).resolve().parents:
        raise InputError(f"{output}: output folder contains the {what} {protected} and would replace it")
