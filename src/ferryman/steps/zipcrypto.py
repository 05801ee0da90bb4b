"""Traditional PKWARE encryption ("ZipCrypto", APPNOTE.TXT section 6.1) for archives written by pyzipper.

pyzipper writes the archive (headers, compression, ZIP64, the central directory) and calls an
encrypter for each member's bytes; it ships a WinZip AES encrypter and only a *decrypter*
for ZipCrypto, and the standard library's `zipfile` reads ZipCrypto but cannot write it.  This
module is the missing encrypter: the three-key stream cipher, 12 random header bytes, and
the check byte that Info-ZIP ``unzip``, Windows Explorer and 7-Zip test a password against.

ZipCrypto is weak (a known-plaintext attack recovers the keys from 12 known bytes, and tools
that do it are public): the ``zip`` step offers it only for recipients who cannot open AES.
"""

from __future__ import annotations

import secrets
from typing import Any

import pyzipper.zipfile as pz

_KEYS = (0x12345678, 0x23456789, 0x34567890)


def _crc_table() -> list[int]:
    """The CRC-32 table of APPNOTE 6.1.6 (the standard reflected 0xEDB88320 polynomial)."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


class ZipCryptoEncrypter:
    """Encrypts one member (pyzipper's encrypter interface); made fresh per member by
    `ZipCryptoFile.get_encrypter`."""

    def __init__(self, password: bytes) -> None:
        if not password:
            raise ValueError("ZipCrypto needs a password")
        self.k0, self.k1, self.k2 = _KEYS
        for byte in password:
            self._update(byte)
        self._check = 0

    def _update(self, plain: int) -> None:
        self.k0 = (self.k0 >> 8) ^ _TABLE[(self.k0 ^ plain) & 0xFF]
        self.k1 = ((self.k1 + (self.k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        self.k2 = (self.k2 >> 8) ^ _TABLE[(self.k2 ^ (self.k1 >> 24)) & 0xFF]

    def encrypt(self, data: bytes) -> bytes:
        # The key update inlined, with locals: 3x the speed of calling `_update` per byte.
        table, k0, k1, k2 = _TABLE, self.k0, self.k1, self.k2
        out = bytearray(len(data))
        for n, plain in enumerate(data):
            k = (k2 | 2) & 0xFFFF
            out[n] = plain ^ (((k * (k ^ 1)) >> 8) & 0xFF)
            k0 = (k0 >> 8) ^ table[(k0 ^ plain) & 0xFF]
            k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
        self.k0, self.k1, self.k2 = k0, k1, k2
        return bytes(out)

    def update_zipinfo(self, zinfo: Any) -> None:
        # The CRC is known only after the data, so the member gets a data descriptor (bit 3) and
        # readers check the password against the high byte of its DOS time instead (APPNOTE 6.1.5).
        zinfo.flag_bits |= pz._MASK_USE_DATA_DESCRIPTOR
        _, _, _, hour, minute, second = zinfo.date_time
        self._check = ((hour << 11) | (minute << 5) | (second // 2)) >> 8 & 0xFF

    def finalize_zipinfo(self, zinfo: Any) -> None:
        """Nothing to change once the member is written."""

    def encryption_header(self) -> bytes:
        return self.encrypt(secrets.token_bytes(11) + bytes([self._check]))

    def flush(self) -> bytes:
        return b""


class ZipCryptoFile(pz.ZipFile):  # type: ignore[misc]
    """pyzipper's `ZipFile` writing every member ZipCrypto-encrypted with the password set by
    `setpassword` (pyzipper's own seam: `get_encrypter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.encryption = "zipcrypto"

    def get_encrypter(self) -> ZipCryptoEncrypter:
        return ZipCryptoEncrypter(self.pwd)
