"""The official aclImdb v1 archive or folder: read, checked against its MD5, downloaded when online."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from ..errors import UserError, first_line
from .splits import Split, Splits, default_cache_dir, stratified_partition

ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ACLIMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
_ACLIMDB_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt$")


def load_aclimdb(data_dir, cache_dir, seed: int, download: bool) -> Splits:
    if data_dir is None:
        data_dir = _download_aclimdb(Path(cache_dir) if cache_dir else default_cache_dir(), download)
    path = Path(data_dir)
    if not path.exists():
        raise UserError(
            f"--data-dir {path} does not exist; give the aclImdb folder or aclImdb_v1.tar.gz, "
            "or use --data embedded"
        )
    official, notes = _read_aclimdb_archive(path) if path.is_file() else _read_aclimdb_folder(path)
    for split_name in ("train", "test"):
        for label_name in ("pos", "neg"):
            if not official[split_name][label_name]:
                raise UserError(
                    f"{path}: no reviews under aclImdb/{split_name}/{label_name}/; expected the "
                    "aclImdb v1 layout aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"
                )

    def as_split(split_name: str) -> Split:
        # Sorted by member name so the split does not depend on file-system order.
        rows = [
            (name, text, label)
            for label_name, label in (("neg", 0), ("pos", 1))
            for name, text in official[split_name][label_name]
        ]
        rows.sort()
        return Split([text for _, text, _ in rows], [label for _, _, label in rows])

    full_train = as_split("train")
    train_idx, valid_idx = stratified_partition(full_train.labels, (0.7, 0.3), seed)
    return Splits("imdb", full_train.subset(train_idx), full_train.subset(valid_idx), as_split("test"), notes)


def _decode(raw: bytes, name: str, replaced: list[str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        replaced.append(name)
        return raw.decode("utf-8", errors="replace")


def _empty_official():
    return {s: {"pos": [], "neg": []} for s in ("train", "test")}


def _decoding_notes(replaced: list[str]) -> list[str]:
    if not replaced:
        return []
    return [
        f"imdb: {len(replaced)} review file(s) had invalid UTF-8 bytes, replaced by U+FFFD "
        f"(first: {replaced[0]})"
    ]


def _read_aclimdb_folder(path: Path):
    root = path if path.name == "aclImdb" else path / "aclImdb"
    if not root.is_dir():
        raise UserError(
            f"{path} has no aclImdb/ folder; expected the aclImdb v1 layout "
            "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt, or give the .tar.gz"
        )
    official, replaced = _empty_official(), []
    for file in root.glob("*/*/*.txt"):
        name = file.relative_to(root.parent).as_posix()  # the archive's member name
        match = _ACLIMDB_MEMBER.search(name)
        if match:
            split_name, label_name = match.groups()
            official[split_name][label_name].append((name, _decode(file.read_bytes(), name, replaced)))
    return official, _decoding_notes(replaced)


def _read_aclimdb_archive(path: Path):
    official, replaced = _empty_official(), []
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                match = _ACLIMDB_MEMBER.search(member.name)
                if not (match and member.isfile()):
                    continue
                split_name, label_name = match.groups()
                raw = archive.extractfile(member).read()
                official[split_name][label_name].append((member.name, _decode(raw, member.name, replaced)))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise UserError(
            f"{path} is not a readable .tar.gz archive ({type(exc).__name__}: {first_line(exc)}); it may be "
            "truncated or corrupt: download aclImdb_v1.tar.gz again"
        ) from None
    return official, _decoding_notes(replaced)


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_aclimdb(cache_dir: Path, download: bool) -> Path:
    target = cache_dir / "aclImdb_v1.tar.gz"
    if target.exists():
        if md5_of(target) == ACLIMDB_MD5:
            return target
        raise UserError(
            f"{target} fails its MD5 check (expected {ACLIMDB_MD5}); delete it and run again"
        )
    offline_hint = (
        "give the archive with --data-dir PATH (folder or aclImdb_v1.tar.gz), "
        "or use the default --data embedded"
    )
    if not download:
        raise UserError(f"aclImdb is not in {cache_dir}: {offline_hint}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(ACLIMDB_URL, timeout=30) as response, open(partial, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot download aclImdb ({exc}); {offline_hint}") from None
    if md5_of(partial) != ACLIMDB_MD5:
        partial.unlink(missing_ok=True)
        raise UserError(f"the downloaded aclImdb archive fails its MD5 check; {offline_hint}")
    partial.rename(target)
    return target


def write_aclimdb_archive(path: Path, official: dict) -> None:
    """Write an aclImdb-layout .tar.gz from {split: {pos|neg: [(id, text)]}} (tests, tools)."""
    with tarfile.open(path, "w:gz") as archive:
        for split_name, by_label in official.items():
            for label_name, rows in by_label.items():
                for review_id, text in rows:
                    data = text if isinstance(text, bytes) else text.encode("utf-8")
                    info = tarfile.TarInfo(f"aclImdb/{split_name}/{label_name}/{review_id}_7.txt")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
