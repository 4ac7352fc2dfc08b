"""The Penn Treebank task (paper section 4.3): recurrent cells searched on PTB's training words and trained from
scratch as DARTS's language model, reporting test perplexity.

prepare-data reads Mikolov's ptb.{train,valid,test}.txt from data.root or data.root/ptb; when missing they are
downloaded from the standard URL (data/ptb.py PTB_URL); offline, the stage stops with one line saying which files
to place where."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from ..data import DataError
from ..data.prepared import md5sum
from ..data.ptb import PTB_FILES, PTB_URL, Corpus, load_ptb
from ..repo import download_lock
from .text import TextTask


def download_ptb(root: Path) -> None:
    """The three Mikolov files from the standard URL into root/ptb; one-line DataError when offline."""
    target = root / "ptb"
    target.mkdir(parents=True, exist_ok=True)
    try:
        for name in PTB_FILES:
            with urllib.request.urlopen(PTB_URL + name, timeout=30) as response:
                (target / f".{name}.part").write_bytes(response.read())
        for name in PTB_FILES:
            (target / f".{name}.part").replace(target / name)
    except OSError as err:
        raise DataError(f"PTB is not in {root} and could not be downloaded ({type(err).__name__}); offline, place "
                        f"{', '.join(PTB_FILES)} (Mikolov's version) into {target}/") from None


class PTBTask(TextTask):
    name = "ptb"

    def load_raw(self, root: Path) -> tuple[Corpus, dict[str, str]]:
        def present() -> Path | None:
            return next((f for f in (root, root / "ptb") if all((f / n).is_file() for n in PTB_FILES)), None)

        folder = present()
        if folder is None:
            with download_lock(root):
                if present() is None:
                    download_ptb(root)
            folder = present() or root / "ptb"
        return load_ptb(folder), {f"{folder.name}/{n}": md5sum(folder / n) for n in PTB_FILES}


PTB = PTBTask()
