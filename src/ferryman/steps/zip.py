"""``zip``: pack the item's files into one archive, optionally encrypted.

Replaces the ``7za a -p…`` calls of the old cron scripts: ``password`` is a
secret reference.  By default the archive uses WinZip AES-256 (readable by 7-Zip,
WinZip, macOS Archive Utility and the ``unzip`` step).  ``encryption = "zipcrypto"``
writes the old PKWARE encryption instead (`ferryman.steps.zipcrypto`), which Info-ZIP
``unzip`` and Windows Explorer open but which is weak: only for recipients who cannot
open AES.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ferryman import templates
from ferryman.errors import PermanentError
from ferryman.item import Item
from ferryman.secrets import Secret
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.transports.local import os_errors

METHODS = {
    "deflate": zipfile.ZIP_DEFLATED,
    "store": zipfile.ZIP_STORED,
    "bzip2": zipfile.ZIP_BZIP2,
    "lzma": zipfile.ZIP_LZMA,
}


class ZipConfig(StepConfig):
    """Pack every selected file into one zip archive; the item then carries the archive."""

    type: Literal["zip"]
    name: templates.Template = Field(
        "{stem}.zip",
        description="Archive name template; fields of the item's first file, e.g. '{meta.db}_{now:%Y%m%d}.zip'.",
    )
    password: Secret | None = Field(None, description="Encrypt with this secret (none: no encryption).")
    encryption: Literal["aes256", "zipcrypto"] = Field(
        "aes256", description="With a password: 'aes256' (WinZip AES-256), or 'zipcrypto', the weak "
        "old PKWARE encryption, only for recipients whose unzip or Windows Explorer cannot open AES.")
    method: Literal["deflate", "store", "bzip2", "lzma"] = Field("deflate", description="Compression method.")
    level: int = Field(6, ge=0, le=9, description="Compression level for deflate and bzip2: 1 fastest … 9 smallest.")
    include: list[str] | None = Field(None, description="Only pack files matching these globs (others pass through).")
    keep_files: bool = Field(False, description="Keep carrying the packed files after the archive.")

    @model_validator(mode="after")
    def _encryption_needs_password(self) -> ZipConfig:
        if "encryption" in self.model_fields_set and self.password is None:
            raise ValueError(f"encryption = {self.encryption!r} needs a password")
        return self


class ZipStep(Step[ZipConfig]):
    """Writes ``<name>`` in the work folder holding the selected files under their own names."""

    Config = ZipConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        selected = list(ctx.files(self.config.include))
        if not selected:
            return StepResult(outputs={"zipped": 0})
        name = templates.render_name(self.config.name, ctx.values(selected[0]))
        names = [p.name for p in selected]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PermanentError(f"zip: several files are named {', '.join(map(repr, dupes))}")
        target = ctx.work_dir / name
        kwargs: dict[str, Any] = {"compression": METHODS[self.config.method]}
        if self.config.method in ("deflate", "bzip2"):
            kwargs["compresslevel"] = self.config.level or (1 if self.config.method == "bzip2" else 0)
        with os_errors("zip: cannot write"):
            if self.config.password is not None and self.config.encryption == "zipcrypto":
                from ferryman.steps.zipcrypto import ZipCryptoFile

                with ZipCryptoFile(target, "w", **kwargs) as zf:
                    zf.setpassword(self.config.password.reveal().encode("utf-8"))
                    for path in selected:
                        zf.write(path, path.name)
            elif self.config.password is not None:
                import pyzipper  # 26 ms of imports (AES): only for flows that zip with a password

                password = self.config.password.reveal().encode("utf-8")
                with pyzipper.AESZipFile(target, "w", encryption=pyzipper.WZ_AES, **kwargs) as zf:
                    zf.setpassword(password)
                    zf.setencryption(pyzipper.WZ_AES, nbits=256)
                    for path in selected:
                        zf.write(path, path.name)
            else:
                with zipfile.ZipFile(target, "w", **kwargs) as zf:
                    for path in selected:
                        zf.write(path, path.name)
        rest = [p for p in item.files if p not in selected]
        files: list[Path] = [*(selected if self.config.keep_files else []), *rest, target]
        outputs: dict[str, Any] = {"zipped": len(selected), "archive": name}
        if self.config.password is not None:
            outputs["encryption"] = self.config.encryption
        return StepResult(files=files, outputs=outputs)
