"""The callback signature and message encryption WeChat official accounts and WeCom share ("WXBizMsgCrypt").

From the documentation of both ("消息加解密说明" / "加解密方案说明"):

* signature: ``sha1`` hex of the sorted concatenation of the callback token, ``timestamp``, ``nonce`` (and,
  for an encrypted message, the ``Encrypt`` text) -- ``signature`` / ``msg_signature`` in the query;
* key: ``AESKey = base64_decode(EncodingAESKey + "=")`` (43 characters -> 32 bytes); AES-256-CBC with
  ``IV = AESKey[:16]`` and PKCS#7 padding to 32-byte blocks;
* plaintext: 16 random bytes, the message length (4 bytes, network order), the message, then the receiver
  id (the official account's AppID, or the WeCom corp id).

Plugins using it depend on ``cryptography`` (imported on first use).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct


class CryptoError(ValueError):
    """A signature that does not match, or a message that does not decrypt to this receiver."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(expected: str, *parts: str) -> None:
    if not hmac.compare_digest(signature(*parts).encode(), (expected or "").encode()):
        raise CryptoError("the signature does not match")


def _key(encoding_aes_key: str) -> bytes:
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except ValueError:
        raise CryptoError("EncodingAESKey is not 43 characters of base64") from None
    if len(key) != 32:
        raise CryptoError("EncodingAESKey is not 43 characters of base64")
    return key


def decrypt(encoding_aes_key: str, encrypted: str, receiver_id: str) -> bytes:
    """The message in ``encrypted`` (base64); CryptoError unless it decrypts and names ``receiver_id``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = _key(encoding_aes_key)
    try:
        data = base64.b64decode(encrypted, validate=True)
    except ValueError:
        raise CryptoError("Encrypt is not base64") from None
    if not data or len(data) % 16:
        raise CryptoError("Encrypt is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
        raise CryptoError("bad padding")
    plain = plain[:-pad]
    if len(plain) < 20:
        raise CryptoError("too short")
    (length,) = struct.unpack(">I", plain[16:20])
    message, receiver = plain[20:20 + length], plain[20 + length:]
    if len(message) != length or receiver.decode("utf-8", "replace") != receiver_id:
        raise CryptoError("the message is not for this receiver")
    return message


def encrypt(encoding_aes_key: str, message: bytes, receiver_id: str, *, random: bytes | None = None) -> str:
    """``message`` encrypted for ``receiver_id`` as the provider sends it (base64); tests use this."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = _key(encoding_aes_key)
    plain = (random or os.urandom(16)) + struct.pack(">I", len(message)) + message + receiver_id.encode("utf-8")
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")
