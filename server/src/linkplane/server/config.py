"""Settings of a linkplane server process, read from `LINKPLANE_*` environment variables.

One class, read once at start-up by the CLI and passed down; nothing else reads the environment.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Role(StrEnum):
    """Which halves of linkplane a process runs."""

    API = "api"
    WORKER = "worker"
    ALL = "all"


class Settings(BaseSettings):
    """Everything a linkplane server process can be told."""

    model_config = SettingsConfigDict(env_prefix="LINKPLANE_", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None,
        description="Postgres URL, e.g. postgresql+asyncpg://user@host/db. Required by `serve`; "
        "`dev` starts an embedded Postgres when unset.",
    )
    listen: str = Field(default="127.0.0.1:50051", description="gRPC listen address HOST:PORT.")
    role: Role = Field(default=Role.ALL, description="api, worker or all.")
    database_pool_size: int = Field(default=10, ge=1, description="Connections per process.")
    database_pool_overflow: int | None = Field(
        default=None,
        ge=0,
        description="Connections a process may open beyond the pool under a burst (closed "
        "when returned); unset: as many as the pool size.",
    )
    database_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Connect and statement timeout towards Postgres."
    )
    page_token_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key that makes page tokens opaque and tamper-evident. Set the same "
        "value on every replica. `serve` refuses to start without one; `dev` and tests use a "
        "random key per process.",
    )
    admins: list[str] = Field(
        default_factory=list,
        description='Bootstrap administrators: principals (JSON list, e.g. ["alice"]) holding '
        "roles/linkplane.admin on every project, whatever the projects' IAM policies say.",
    )
    reflection: bool = Field(
        default=True, description="Serve gRPC server reflection (generic clients need it)."
    )
    auth_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Bearer token → principal name. Empty disables authentication (dev only).",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate chain; with tls_key_file, serve gRPC over TLS."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of the cert.")
    tls_client_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle: require TLS client certificates signed by it (mTLS); the "
        "caller is the certificate's SPIFFE ID, else its subject common name.",
    )
    oidc_issuer: str | None = Field(
        default=None, description="Accept OIDC/JWT bearer tokens whose `iss` is exactly this."
    )
    oidc_audience: str | None = Field(
        default=None, description="The `aud` value OIDC tokens must carry (required with issuer)."
    )
    oidc_jwks: str | None = Field(
        default=None,
        description="The issuer's signing keys: a JWKS file path or https URL; unset, the "
        "jwks_uri of the issuer's OpenID discovery document.",
    )
    oidc_principal_claim: str = Field(
        default="sub", description="The token claim whose value is the caller's principal."
    )
    oidc_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description="Accepted JWS algorithms (asymmetric only: RS*, PS*, ES*, EdDSA).",
    )
    oidc_leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="Clock skew tolerated on exp, nbf and iat."
    )
    oidc_jwks_ttl_seconds: float = Field(
        default=300.0, gt=0, description="How long fetched signing keys are used before refetch."
    )
    oidc_jwks_min_refresh_seconds: float = Field(
        default=10.0,
        ge=0,
        description="At most one JWKS refetch per this interval for tokens with an unknown kid.",
    )
    max_streams: int = Field(
        default=2000, ge=1, description="Open Watch streams per process; more are refused."
    )
    max_streams_per_principal: int = Field(
        default=100, ge=1, description="Open Watch streams per caller; more are refused."
    )
    max_concurrent_calls_per_principal: int = Field(
        default=64, ge=1, description="Unary calls one caller may have in flight at once."
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="How long in-flight calls may drain on SIGTERM."
    )
    metrics_listen: str | None = Field(
        default=None, description="HOST:PORT for Prometheus metrics; unset disables them."
    )
    log_format: str = Field(default="console", description="console or json.")
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    data_dir: Path = Field(
        default=Path(".linkplane"), description="Where `dev` keeps its embedded Postgres data."
    )
    aws_endpoint_url: str | None = Field(
        default=None, description="AWS endpoint override (the simulator's URL in dev and tests)."
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None, description="Base AWS access key; unset uses the default credential chain."
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, description="Base AWS secret key."
    )
    aws_time_scale: float = Field(
        default=1.0, gt=0, description="Speed-up of AWS refill rates (the simulator's scale)."
    )
    aws_shared_rate_limits: bool = Field(
        default=True,
        description="Keep AWS rate-limit buckets in Postgres, shared by every replica (AWS "
        "counts an account's calls whichever process makes them); off, each process paces "
        "itself alone, which is right only for a single replica.",
    )
    resync_interval_seconds: float = Field(
        default=300.0, gt=0, description="Resync period for settled resources (drift detection)."
    )
    transitional_resync_seconds: float = Field(
        default=5.0, gt=0, description="Resync period while a resource is changing."
    )
    lease_seconds: float = Field(default=30.0, gt=0, description="Reconcile lease duration.")
    workers: int = Field(
        default=16,
        ge=1,
        description="Concurrent reconciles per process; a pass asleep on an AWS rate-limit "
        "token does not count, up to 4 times this many in flight.",
    )
    garbage_collection: bool = Field(
        default=True,
        description="Delete AWS objects tagged by linkplane whose resource no longer exists. "
        "Turn off when several linkplane installations share an AWS account.",
    )
    garbage_interval_seconds: float = Field(
        default=600.0, gt=0, description="How often the garbage collector sweeps."
    )

    def page_token_key(self) -> bytes:
        """The configured page-token key, or this process's random one (dev mode and tests)."""
        if self.page_token_secret is not None:
            return self.page_token_secret.get_secret_value().encode()
        return _PROCESS_PAGE_KEY


# Without a configured key, page tokens stay valid only within this process: what `dev` and
# the tests need, and why `serve` (several replicas behind a balancer) refuses to run without one.
_PROCESS_PAGE_KEY = secrets.token_bytes(32)
