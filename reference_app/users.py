"""user-service: registration, login with token generation, and "who am I".

Tokens are HMAC-signed ``user_id.tier.expiry.signature`` strings: the gateway
checks them itself (it holds the key), and asks user-service (GET /me) only when
it needs the stored user record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Header, HTTPException
from pydantic import BaseModel, Field

from flowscope.reference_app.kit import Service, ServiceKit, annotate
from flowscope.reference_app.schema import TIERS, USERS_SCHEMA
from flowscope.reference_app.sqlite_db import Session, SqliteDatabase

TOKEN_TTL_S = 3600
# Few iterations: the demo should spend its CPU on traffic, not on key stretching.
PBKDF2_ITERATIONS = 2_000


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    tier: str


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, user_id: int, tier: str, now: float | None = None) -> str:
        expiry = int((now if now is not None else time.time()) + TOKEN_TTL_S)
        payload = f"{user_id}.{tier}.{expiry}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str, now: float | None = None) -> TokenClaims | None:
        payload, _, signature = token.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 3 or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        user_id, tier, expiry = parts
        if int(expiry) < (now if now is not None else time.time()):
            return None
        return TokenClaims(int(user_id), tier)

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()


def bearer(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token")
    return authorization[7:].strip()


def hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS).hex()


class Registration(BaseModel):
    email: str = Field(min_length=3, max_length=200)
    password: str = Field(min_length=8, max_length=200)
    tier: str = "retail"


class Credentials(BaseModel):
    email: str
    password: str


def create_user_service(kit: ServiceKit, signer: TokenSigner) -> Service:
    db = SqliteDatabase(
        "users",
        kit.data_dir / "users.sqlite",
        kit.provider,
        USERS_SCHEMA,
        statement_delay=lambda: kit.faults.delay_s("slow-user-db"),
    )
    app = kit.app()
    tracer = kit.tracer

    @app.post("/register", status_code=201)
    async def register(body: Registration) -> dict[str, object]:
        if body.tier not in TIERS:
            raise HTTPException(422, f"tier must be one of {', '.join(TIERS)}")
        annotate({"user.tier": body.tier})
        with tracer.start_as_current_span("register_user"):
            salt = secrets.token_hex(8)
            digest = hash_password(body.password, salt)
            now = datetime.now(UTC).isoformat()

            def insert(session: Session) -> int | None:
                try:
                    return session.write(
                        "INSERT INTO users (email, password_hash, salt, tier, created_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (body.email, digest, salt, body.tier, now),
                    )
                except sqlite3.IntegrityError:  # the UNIQUE email constraint
                    return None

            user_id = await db.run(insert)
        if user_id is None:
            raise HTTPException(409, "email already registered")
        annotate({"user.id": user_id})
        return {"user_id": user_id, "tier": body.tier}

    @app.post("/login")
    async def login(body: Credentials) -> dict[str, object]:
        with tracer.start_as_current_span("authenticate_user") as span:
            row = await db.run(
                lambda s: s.one(
                    "SELECT id, password_hash, salt, tier, status FROM users WHERE email = ?",
                    (body.email,),
                )
            )
            valid = (
                row is not None
                and row[4] == "active"
                and hmac.compare_digest(hash_password(body.password, row[2]), row[1])
            )
            span.set_attribute("auth.result", "ok" if valid else "rejected")
        if not valid or row is None:
            raise HTTPException(401, "wrong email or password")
        user_id, tier = int(row[0]), str(row[3])
        annotate({"user.id": user_id, "user.tier": tier})
        with tracer.start_as_current_span("generate_token"):
            token = signer.issue(user_id, tier)
        return {"token": token, "user_id": user_id, "tier": tier}

    @app.get("/me")
    async def me(authorization: str | None = Header(default=None)) -> dict[str, object]:
        claims = signer.verify(bearer(authorization))
        if claims is None:
            raise HTTPException(401, "invalid or expired token")
        row = await db.run(
            lambda s: s.one(
                "SELECT id, email, tier, status FROM users WHERE id = ?", (claims.user_id,)
            )
        )
        if row is None:
            raise HTTPException(404, "user not found")
        annotate({"user.id": int(row[0]), "user.tier": str(row[2])})
        return {"user_id": row[0], "email": row[1], "tier": row[2], "status": row[3]}

    async def close() -> None:
        db.close()

    return Service("user-service", app, on_stop=[close])
