"""Model folders in the cache: built once (under a file lock), written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder in a temporary sibling, then move it into place with os.replace:
    a crash never leaves half a model behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        for p in [tmp, *tmp.rglob("*")]:  # mkdtemp and some writers create owner-only modes
            p.chmod(0o755 if p.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_once(target: Path, marker: str, write: Callable[[Path], None]) -> Path:
    """The folder `target`, written by write(tmp) unless complete already (`marker` inside it).

    A file lock makes concurrent first use build it once; the marker is checked again under
    the lock, since another process may have finished meanwhile.
    """
    if (target / marker).is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / marker).is_file():
            replace_atomically(target, write)
    return target
