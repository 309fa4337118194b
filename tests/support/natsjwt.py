"""NATS decentralized auth (operator / account / user JWTs) made in the test, with the `nkeys` package, for a
real `nats-server` in operator mode (`resolver: MEMORY`, the account JWT preloaded). What `nsc` would make:

  operator  a self-signed operator JWT (`operator:` in the server config)
  account   signed by the operator, JetStream enabled (unlimited), preloaded in the server
  user      signed by the account; its JWT and NKey seed written as a `.creds` file (nsc's layout)

The claim layout follows the NATS JWT v2 format (nats-io/jwt, docs.nats.io "JWTs"): header
{"typ":"JWT","alg":"ed25519-nkey"}; base64url without padding; `jti` is the base32 (no padding) of the
SHA-512/256 of the standard claims (JSON, without jti); `iat`, `iss` (the signer's public key), `sub`, `name`,
and `nats` {type, version: 2, ...}; the signature is Ed25519 over "header.claims"."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

nkeys = pytest.importorskip("nkeys", reason="the .creds tests need the nkeys package (nats-py[nkeys])")

UNLIMITED = -1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Identity:
    """An NKey pair: `seed` (S...) and `public` (O..., A... or U...)."""

    seed: str
    public: str

    @classmethod
    def new(cls, prefix: int) -> Identity:
        seed = nkeys.encode_seed(os.urandom(32), prefix)
        return cls(seed=seed.decode(), public=nkeys.from_seed(bytearray(seed)).public_key.decode())

    def sign(self, data: bytes) -> bytes:
        return bytes(nkeys.from_seed(bytearray(self.seed.encode())).sign(data))


def operator() -> Identity:
    return Identity.new(nkeys.PREFIX_BYTE_OPERATOR)


def account() -> Identity:
    return Identity.new(nkeys.PREFIX_BYTE_ACCOUNT)


def user() -> Identity:
    return Identity.new(nkeys.PREFIX_BYTE_USER)


def encode_jwt(signer: Identity, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A NATS v2 JWT about `subject`, signed by `signer`."""
    standard: dict[str, Any] = {"iat": int(time.time()), "iss": signer.public, "name": name, "sub": subject}
    jti = base64.b32encode(hashlib.new("sha512_256", json.dumps(standard, separators=(",", ":")).encode())
                           .digest()).rstrip(b"=").decode()
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = _b64(json.dumps({"jti": jti, **standard, "nats": {**nats, "version": 2}}).encode())
    signature = _b64(signer.sign(f"{header}.{claims}".encode()))
    return f"{header}.{claims}.{signature}"


def operator_jwt(op: Identity, name: str = "qamoe-test-op") -> str:
    return encode_jwt(op, op.public, name, {"type": "operator"})


def account_jwt(op: Identity, acct: Identity, name: str = "qamoe", *, jetstream: bool = True) -> str:
    """An account with no limits; JetStream enabled (storage limits other than 0 turn it on) unless not."""
    limits = {"subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "imports": UNLIMITED,
              "exports": UNLIMITED, "wildcards": True, "conn": UNLIMITED, "leaf": UNLIMITED}
    if jetstream:
        limits |= {"mem_storage": UNLIMITED, "disk_storage": UNLIMITED, "streams": UNLIMITED,
                   "consumer": UNLIMITED}
    return encode_jwt(op, acct.public, name, {"type": "account", "limits": limits})


def user_jwt(acct: Identity, usr: Identity, name: str = "bridge") -> str:
    return encode_jwt(acct, usr.public, name, {"type": "user", "pub": {}, "sub": {}, "subs": UNLIMITED,
                                               "data": UNLIMITED, "payload": UNLIMITED})


def creds_text(jwt: str, seed: str) -> str:
    """A `.creds` file as nsc writes it: the user JWT and the user's NKey seed between marker lines."""
    return (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n")


def write_creds(path: Path, acct: Identity, name: str = "bridge") -> Path:
    """A new user of `acct`, its .creds file at `path` (mode 0600, as nsc leaves it)."""
    usr = user()
    path.write_text(creds_text(user_jwt(acct, usr, name), usr.seed))
    path.chmod(0o600)
    return path


def server_config(path: Path, op: Identity, accounts: dict[str, str]) -> Path:
    """A nats-server config in operator mode: the operator JWT, and the account JWTs (public key -> JWT) with a
    system account of its own (JetStream needs one) preloaded in the MEMORY resolver. JetStream, port and
    store come from NatsServer's command line."""
    system = account()
    preload = {system.public: account_jwt(op, system, "SYS", jetstream=False), **accounts}
    lines = "\n".join(f"  {public}: {jwt}" for public, jwt in preload.items())
    path.write_text(f"operator: {operator_jwt(op)}\nsystem_account: {system.public}\nresolver: MEMORY\n"
                    f"resolver_preload: {{\n{lines}\n}}\n")
    return path
