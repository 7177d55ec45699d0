"""Signed checkpoints: the chain anchored outside the database, as Certificate Transparency's signed tree heads.

A checkpoint states "entry ``seq`` of this log has hash ``head``" at a time, signed with an Ed25519 key that
the database never holds. Checkpoints are appended as JSON lines to a file the operator ships elsewhere.
Whoever can write to the database can recompute every hash and the head, but cannot sign: any rewrite,
truncation or deletion before the latest checkpoint then disagrees with a signature (docs/deploy.md).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cds.audit.chain import canonical_json
from cds.errors import CdsError

log = logging.getLogger("cds.audit")

# what a signature is for: a checkpoint signature can never be replayed as the signature of something else
CONTEXT = b"imatinib-cds audit checkpoint v1\n"
FIELDS = ("seq", "head", "time", "key_id")


class CheckpointError(CdsError):
    code = "checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: str
    time: str
    key_id: str
    signature: str = ""  # base64url of the Ed25519 signature of message()

    def fields(self) -> dict[str, Any]:
        return {"seq": self.seq, "head": self.head, "time": self.time, "key_id": self.key_id}

    def message(self) -> bytes:
        return CONTEXT + canonical_json(self.fields()).encode()

    def line(self) -> str:
        return canonical_json({**self.fields(), "signature": self.signature})


def key_id(public: Ed25519PublicKey) -> str:
    """16 hex digits of the sha256 of the raw public key: names the key in every checkpoint it signs."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class CheckpointSigner:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.key_id = key_id(private.public_key())

    @classmethod
    def from_file(cls, path: Path) -> CheckpointSigner:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read the checkpoint key {path}: {exc.strerror}") from exc
        if path.stat().st_mode & 0o077:
            log.warning("the checkpoint key %s is readable by other users; make it 0600", path)
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise CheckpointError(f"{path} is not a PEM private key") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise CheckpointError(f"{path} is not an Ed25519 private key")
        return cls(private)

    def sign(self, seq: int, head: str, time: datetime) -> Checkpoint:
        unsigned = Checkpoint(seq, head, time.astimezone(UTC).isoformat(timespec="seconds"), self.key_id)
        signature = base64.urlsafe_b64encode(self._private.sign(unsigned.message())).decode().rstrip("=")
        return Checkpoint(unsigned.seq, unsigned.head, unsigned.time, unsigned.key_id, signature)


def generate_key_pair(private_path: Path, public_path: Path) -> str:
    """A new Ed25519 key pair: the private key 0600 (never beside the database), the public key for auditors.
    Refuses to overwrite either file. Returns the key id."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in (private_path, public_path):
        if path.exists():
            raise CheckpointError(f"{path} exists; a key is never overwritten")
    _write_new(private_path, pem, 0o600)
    _write_new(public_path, public, 0o644)
    return key_id(private.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Key id -> public key: every key that signed checkpoints still kept (old keys stay after a rotation)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            public = serialization.load_pem_public_key(path.read_bytes())
        except OSError as exc:
            raise CheckpointError(f"cannot read the public key {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CheckpointError(f"{path} is not a PEM public key") from exc
        if not isinstance(public, Ed25519PublicKey):
            raise CheckpointError(f"{path} is not an Ed25519 public key")
        keys[key_id(public)] = public
    return keys


def append_checkpoint(path: Path, make: Callable[[], Checkpoint]) -> Checkpoint:
    """Append one checkpoint line under an exclusive lock of the file (workers of one host share it, and the
    head is read inside the lock, so the file's sequence numbers never go back), then fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        checkpoint = make()
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    return checkpoint


def read_checkpoints(path: Path) -> list[Checkpoint]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CheckpointError(f"cannot read the checkpoints {path}: {exc.strerror}") from exc
    found = [_parsed(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not found:
        raise CheckpointError(f"{path} holds no checkpoint")
    return found


def _parsed(path: Path, number: int, line: str) -> Checkpoint:
    try:
        raw: Any = json.loads(line)
        if not isinstance(raw, dict) or set(raw) != {*FIELDS, "signature"}:
            raise ValueError("expected the fields seq, head, time, key_id, signature")
        if not isinstance(raw["seq"], int) or raw["seq"] < 0 or isinstance(raw["seq"], bool):
            raise ValueError("seq is not a sequence number")
        if not all(isinstance(raw[k], str) for k in ("head", "time", "key_id", "signature")):
            raise ValueError("head, time, key_id and signature are strings")
    except ValueError as exc:
        raise CheckpointError(f"{path} line {number}: not a checkpoint ({exc})") from exc
    return Checkpoint(raw["seq"], raw["head"], raw["time"], raw["key_id"], raw["signature"])


def unsigned(checkpoints: Sequence[Checkpoint], keys: dict[str, Ed25519PublicKey]) -> str:
    """Why a checkpoint cannot be trusted (unknown key, bad signature, two heads for one entry), or ""."""
    heads: dict[int, str] = {}
    for checkpoint in checkpoints:
        public = keys.get(checkpoint.key_id)
        where = f"checkpoint at entry {checkpoint.seq} ({checkpoint.time})"
        if public is None:
            return f"{where} is signed by key {checkpoint.key_id}, which is not among the public keys given"
        try:
            public.verify(_unbase64(checkpoint.signature), checkpoint.message())
        except (InvalidSignature, ValueError):
            return f"{where} does not carry a valid signature of key {checkpoint.key_id}"
        if heads.setdefault(checkpoint.seq, checkpoint.head) != checkpoint.head:
            return f"two signed checkpoints give entry {checkpoint.seq} different hashes (the chain was rewritten)"
    return ""


def _unbase64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Checkpoints:
    """The service's checkpoint writer: after every ``every`` entries this process appended, or ``interval_s``
    seconds after the last checkpoint if the head moved meanwhile, and once more on close (shutdown).

    A thread of its own signs and writes, so a decision never waits for a checkpoint."""

    def __init__(
        self,
        head: Callable[[], tuple[int, str]],
        signer: CheckpointSigner,
        path: Path,
        *,
        every: int = 1000,
        interval_s: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._head = head
        self._signer = signer
        self.path = path
        self._every = max(1, every)
        self._interval_s = interval_s
        self._clock = clock
        self._since = 0
        self._last_seq: int | None = None
        self._wake = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cds-audit-checkpoints", daemon=True)
        self._thread.start()

    def appended(self, count: int) -> None:
        self._since += count  # a lost update under a race only delays a checkpoint by an entry
        if self._since >= self._every:
            self._wake.set()

    def write_now(self) -> Checkpoint:
        with self._lock:
            self._since = 0
            checkpoint = append_checkpoint(self.path, self._make)
            self._last_seq = checkpoint.seq
            return checkpoint

    def _make(self) -> Checkpoint:
        seq, digest = self._head()
        return self._signer.sign(seq, digest, self._clock())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        with contextlib.suppress(Exception):
            self._write_logged()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            if self._closed:
                return
            try:
                if self._since >= self._every or self._head()[0] != self._last_seq:
                    self._write_logged()
            except Exception:
                log.exception("could not write an audit checkpoint to %s", self.path)

    def _write_logged(self) -> None:
        try:
            self.write_now()
        except Exception:
            log.exception("could not write an audit checkpoint to %s", self.path)
            raise
