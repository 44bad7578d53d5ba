"""Writing results safely: atomic files in an output directory, never touching files palm-bayes did not write.

Every output directory gets a small manifest (``.palm-bayes-manifest.json``) listing the files palm-bayes wrote
there. A file is (re)written only if it does not exist yet or the manifest says it is ours; anything else in the
directory is left alone, and a name clash with a user's file is an :class:`~palm_bayes.errors.OutputError`.
Each file is written to a temporary name in the same directory and moved into place with :func:`os.replace`, so
a reader never sees half a file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import OutputError

MANIFEST = ".palm-bayes-manifest.json"


def _file_mode() -> int:
    """Permission bits a plain ``open()`` would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_move(tmp: str | Path, target: Path) -> None:
    os.chmod(tmp, _file_mode())
    os.replace(tmp, target)


class OutputDir:
    """An output directory that palm-bayes writes into atomically and without clobbering user files.

    Parameters
    ----------
    path : path
        The directory; created (with parents) when the first file is written.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path}: exists and is not a directory (expected an output folder)")
        # created with the first file written, so a command that stops on bad input leaves no empty folder
        parent = next(p for p in (self.path, *self.path.absolute().parents) if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            why = "not a directory" if not parent.is_dir() else "permission denied"
            raise OutputError(f"{self.path}: cannot create the output folder ({parent}: {why})")
        self._manifest = self.path / MANIFEST
        self.owned: set[str] = set()
        if self._manifest.exists():
            try:
                self.owned = set(json.loads(self._manifest.read_text()).get("files", []))
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                raise OutputError(f"{self._manifest}: unreadable palm-bayes manifest; "
                                  "choose another output folder") from None

    def _refuse_if_foreign(self, target: Path) -> None:
        if target.exists() and target.relative_to(self.path).as_posix() not in self.owned:
            raise OutputError(f"{target}: exists and was not written by palm-bayes; not overwriting it "
                              "(move it or choose another output folder)")

    def _commit(self, name: str, write: Callable[[io.BufferedWriter], None]) -> Path:
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                write(fh)

        return self.write_with(name, save)

    def _save_manifest(self) -> None:
        data = json.dumps({"tool": "palm-bayes", "files": sorted(self.owned)}, indent=1).encode()
        fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=self.path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _atomic_move(tmp, self._manifest)

    def check(self, *names: str) -> None:
        """Fail early (before any work) if any of ``names`` would clobber a file that is not ours."""
        for n in names:
            self._refuse_if_foreign(self.path / n)

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write raw bytes to ``name`` atomically."""
        return self._commit(name, lambda fh: fh.write(data))

    def write_text(self, name: str, text: str) -> Path:
        """Write UTF-8 text to ``name`` atomically."""
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj) -> Path:
        """Write ``obj`` as indented JSON."""
        return self.write_text(name, json.dumps(obj, indent=2, default=_json_default) + "\n")

    def write_csv(self, name: str, df: pd.DataFrame) -> Path:
        """Write a DataFrame as CSV (no index)."""
        return self.write_text(name, df.to_csv(index=False))

    def write_npy(self, name: str, array: np.ndarray) -> Path:
        """Write a NumPy array as ``.npy``."""
        return self._commit(name, lambda fh: np.save(fh, np.asarray(array)))

    def write_figure(self, name: str, fig, dpi: int = 150) -> Path:
        """Save a Matplotlib figure (format from the file name) and close it."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, dpi=dpi, format=Path(name).suffix.lstrip(".") or "png", bbox_inches="tight")
        plt.close(fig)
        return self.write_bytes(name, buf.getvalue())

    def write_with(self, name: str, save: Callable[[Path], None]) -> Path:
        """Let ``save(tmp_path)`` write a file (e.g. a NetCDF writer that wants a path), then move it in place.

        The file is refused if it exists and palm-bayes did not write it; the manifest records it once written.
        """
        target = self.path / name
        self._refuse_if_foreign(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
        os.close(fd)
        try:
            save(Path(tmp))
            _atomic_move(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.owned.add(target.relative_to(self.path).as_posix())
        self._save_manifest()
        return target


def _json_default(o):
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
