"""Where the app keeps the files it offers for download (and those users upload): bounded in age and size, gone at
shutdown.

Each app process writes into its own folder ``app-<pid>-<random>`` under one root (the app puts the
root inside Gradio's cache folder, so Gradio serves the file without keeping a second copy). A
file is written only once its content exists, atomically (a failed export creates nothing), into a
fresh sub-folder so concurrent exports never collide. Before each write, files older than
``max_age_s`` go, then the oldest files until the new one fits in ``max_bytes``. At start-up the
folders of processes that no longer run are removed; at shutdown (``close``, also registered with
``atexit``) the process's own folder is.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from attribution.validation import safe_file_name

DEFAULT_ROOT = Path(tempfile.gettempdir()) / "attribution-explorer-exports"
_FOLDER = re.compile(r"^app-(\d+)-[0-9a-f]+$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_folders(root: Path) -> list[Path]:
    """Delete the export folders of app processes that no longer run (a crash or a kill skips ``close``)."""
    removed = []
    if not root.is_dir():
        return removed
    for folder in root.iterdir():
        match = _FOLDER.match(folder.name)
        if match and folder.is_dir() and not _process_alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class ExportStore:
    """Download files of one app process, pruned by age and total size."""

    def __init__(self, root: Path = DEFAULT_ROOT, *, max_age_s: float = 3600, max_bytes: int = 500 * 1024**2) -> None:
        self.root = Path(root)
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.folder = self.root / f"app-{os.getpid()}-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        remove_stale_folders(self.root)
        atexit.register(self.close)

    def write(self, name: str, content: str | bytes) -> Path:
        """Write ``content`` as ``name`` (sanitised) in a fresh sub-folder; return its path."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        return self._place(safe_file_name(name), len(data), lambda staging: staging.write_bytes(data))

    def adopt(self, source: Path) -> Path:
        """Move the file ``source`` (on the same file system) into a fresh sub-folder, keeping its name; return
        its new path. The store then bounds it like a file it wrote."""
        return self._place(source.name, source.stat().st_size, lambda staging: os.replace(source, staging))

    def _place(self, name: str, size: int, put: Callable[[Path], object]) -> Path:
        """Prune to make room for ``size`` bytes, then ``put`` the file at a staging path renamed into place."""
        if size > self.max_bytes:
            raise OSError(f"a file of {size} bytes is larger than the {self.max_bytes} bytes kept")
        with self._lock:
            self.prune(incoming=size)
            folder = self.folder / secrets.token_hex(8)
            folder.mkdir(parents=True)
            path = folder / name
            staging = folder / f".{path.name}.partial"
            try:
                put(staging)
                staging.replace(path)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        return path

    def files(self) -> list[tuple[Path, float, int]]:
        """(path, modification time, size) of every stored file, oldest first (files deleted meanwhile skipped)."""
        found = []
        for path in self.folder.glob("*/*") if self.folder.is_dir() else []:
            try:
                stat = path.stat()
            except FileNotFoundError:  # Gradio's own cache clean-up may delete files too
                continue
            found.append((path, stat.st_mtime, stat.st_size))
        return sorted(found, key=lambda item: item[1])

    @property
    def n_bytes(self) -> int:
        return sum(size for _, _, size in self.files())

    def prune(self, incoming: int = 0) -> None:
        """Drop files past ``max_age_s``, then the oldest until ``incoming`` more bytes fit; drop empty folders."""
        now = time.time()
        kept = []
        for path, modified, size in self.files():
            if now - modified > self.max_age_s:
                path.unlink(missing_ok=True)
            else:
                kept.append((path, size))
        total = sum(size for _, size in kept)
        while kept and total + incoming > self.max_bytes:
            oldest, size = kept.pop(0)
            total -= size
            oldest.unlink(missing_ok=True)
        for sub in self.folder.iterdir() if self.folder.is_dir() else []:
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()

    def close(self) -> None:
        """Remove this process's folder and everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
