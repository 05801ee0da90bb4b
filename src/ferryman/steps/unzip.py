"""``unzip``: extract zip, tar (plain, gz, bz2, xz) and gzip files into the item's work folder.

Members keep their sub-folders; the item then carries the extracted files in
archive order, plus the files that were not archives (unchanged), plus the
archive itself only with ``keep_archive = true``.  What is refused and why is
in `ferryman.steps.archive`: nothing is ever written outside the work folder,
and a bomb stops at ``max_size``/``max_ratio`` before it fills the disk.

Archives inside the archive are files like any other unless
``recursive = true``; then they are extracted in place (up to ``max_depth``
levels) and every level counts against the same budget, so a nested bomb
is stopped as early as a flat one.
"""

from __future__ import annotations

import shutil
import tarfile
from fnmatch import fnmatch
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from ferryman.errors import PermanentError
from ferryman.item import Item
from ferryman.secrets import Secret
from ferryman.steps import archive
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.units import Size

ARCHIVES = ["*.zip", "*.tar", "*.tar.gz", "*.tgz", "*.tar.bz2", "*.tbz2", "*.tar.xz", "*.txz", "*.gz"]
Kind = Literal["zip", "tar", "gz"]


class ExtractConfig(StepConfig):
    """What every extracting step takes (``unzip``, ``gunzip``): which files, the bomb limits,
    whether the archive stays.  Passwords, member counts and nesting are `UnzipConfig`'s alone:
    a gzip file has one member and no password."""

    include: list[str] = Field(
        default_factory=lambda: list(ARCHIVES),
        description="Which of the item's files are archives to extract (globs on the file name).",
    )
    max_size: Size = Field(
        10 * 1024**3, description="Stop (and fail the item) before more than this is written in total, e.g. '10GiB'."
    )
    max_ratio: float = Field(
        1000.0, gt=1, description="Stop before writing more than this many times the archive's size (zip bombs)."
    )
    keep_archive: bool = Field(False, description="Keep carrying the archive after its extracted files.")

    def secret(self) -> Secret | None:
        """The password of encrypted archives (none here)."""
        return None

    def member_limit(self) -> int:
        """Most members an archive may have."""
        return MAX_FILES

    def nesting(self) -> int:
        """How many levels of archives inside archives are extracted (0: none)."""
        return 0


MAX_FILES = 100_000


class UnzipConfig(ExtractConfig):
    """Extract archives safely; other files pass through unchanged."""

    type: Literal["unzip"]
    password: Secret | None = Field(
        None, description="Password of encrypted zips (ZipCrypto or AES), e.g. { env = \"EXPORT_ZIP_PASSWORD\" }."
    )
    max_files: int = Field(MAX_FILES, ge=1, description="Refuse archives with more members than this.")
    recursive: bool = Field(False, description="Also extract archives found inside archives (same limits).")
    max_depth: int = Field(3, ge=1, le=20, description="With recursive: how many levels of nesting are extracted.")

    def secret(self) -> Secret | None:
        return self.password

    def member_limit(self) -> int:
        return self.max_files

    def nesting(self) -> int:
        return self.max_depth if self.recursive else 0


def archive_kind(path: Path, include: list[str] | None = None) -> Kind | None:
    """What kind of archive `path` is, by its name, else by its first bytes (None: not an archive)."""
    name = path.name.lower()
    if include is not None and not any(fnmatch(path.name, pattern) for pattern in include):
        return None
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    if name.endswith(".gz"):
        return "gz"
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        return None
    if magic.startswith(b"PK"):
        return "zip"
    if magic.startswith(b"\x1f\x8b"):
        return "gz"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except OSError:
        return None


class UnzipStep(Step[ExtractConfig]):
    """Extracts each archive of the item into the work folder under one shared budget."""

    Config: ClassVar[type[StepConfig]] = UnzipConfig
    force: ClassVar[Kind | None] = None
    """Treat every selected file as this kind (``gunzip`` sets ``"gz"``)."""

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        config = self.config
        secret = config.secret()
        password = secret.reveal().encode("utf-8") if secret is not None else None
        files: list[Path] = []
        extracted = 0
        try:
            for path in item.files:
                kind = self.force if self.force and self._selected(path) else archive_kind(path, config.include)
                if kind is None:
                    files.append(path)
                    continue
                budget = archive.ExtractionBudget(
                    config.max_size, config.max_ratio, path.stat().st_size, config.member_limit()
                )
                out = self._extract(kind, path, ctx.work_dir, budget, password, path.name)
                if config.nesting():
                    out = self._nested(out, budget, password, path.name, depth=1)
                extracted += len(out)
                files += [*out, *([path] if config.keep_archive else [])]
        except BaseException:
            _empty(ctx.work_dir)  # a refused bomb leaves nothing behind
            raise
        return StepResult(files=files, outputs={"extracted": extracted})

    def _selected(self, path: Path) -> bool:
        return any(fnmatch(path.name, pattern) for pattern in self.config.include)

    def _extract(self, kind: Kind, path: Path, root: Path, budget: archive.ExtractionBudget,
                 password: bytes | None, label: str) -> list[Path]:
        if kind == "zip":
            return archive.extract_zip(path, root, budget, password, label)
        if kind == "tar":
            return archive.extract_tar(path, root, budget, label)
        return archive.extract_gz(path, root, budget, label)

    def _nested(self, files: list[Path], budget: archive.ExtractionBudget, password: bytes | None,
                label: str, depth: int) -> list[Path]:
        """Extract archives among `files` next to themselves, depth first, under the same budget."""
        result: list[Path] = []
        for path in files:
            kind = archive_kind(path, self.config.include)
            if kind is None:
                result.append(path)
                continue
            inner = f"{label} → {path.name}"
            if depth >= self.config.nesting():
                raise PermanentError(f"{inner}: archives nested deeper than max_depth={self.config.nesting()}")
            out = self._extract(kind, path, path.parent, budget, password, inner)
            result += self._nested(out, budget, password, inner, depth + 1)
            if self.config.keep_archive:
                result.append(path)
            else:
                path.unlink()
        return result


def _empty(folder: Path) -> None:
    """Remove everything inside `folder` (this attempt's own output)."""
    for child in folder.iterdir() if folder.is_dir() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
