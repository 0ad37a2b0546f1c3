"""Partner configuration and storage layout.

Partners are data: one YAML file per partner under ``include/partners``. A file
is validated when it is loaded so that a typo fails the DAG factory with a
message naming the file and the field, instead of a half-built pipeline.

Every path a partner's tasks touch is derived here from the data root, the
partner's region and its id, so that no task can reach another partner's or
another region's storage by accident (see ``PartnerRoot.ensure_inside``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INCLUDE_DIR = PROJECT_ROOT / "include"
PARTNERS_DIR = INCLUDE_DIR / "partners"
PROFILES_DIR = INCLUDE_DIR / "profiles"

# ISO 3166 alpha-2 codes of the countries STA buys from; the region of a
# partner is its country (one storage root, worker pool and store per region).
REGIONS = {"co", "br", "ar", "ec", "cl", "mx", "pe", "uy", "us"}

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


class ConfigError(ValueError):
    """A partner or profile file that cannot be used, with the file named."""


def data_root() -> Path:
    """The data root: ``$STA_DATA_ROOT`` or ``./data`` (resolved once per call)."""
    return Path(os.environ.get("STA_DATA_ROOT") or "data").resolve()


class SourceConfig(BaseModel):
    """Where a partner's files come from.

    ``path`` (folder sources) is resolved against the data root when relative,
    so the same YAML works on a laptop and in a deployment.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["folder", "sftp", "s3", "gdrive", "dropbox"]
    path: str | None = None
    conn_id: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    folder_id: str | None = None

    @field_validator("path")
    @classmethod
    def _no_parent_refs(cls, v: str | None) -> str | None:
        if v is not None and ".." in Path(v).parts:
            raise ValueError("source path must not contain '..'")
        return v


class IdentityConfig(BaseModel):
    """Where a partner's files carry the patient's national identifier.

    The patient token is computed from (country, document type, number); each
    hospital stores those differently, so the partner file says which issuers
    in PatientID / OtherPatientIDsSequence are national documents.
    """

    model_config = ConfigDict(extra="forbid")

    national_id_issuers: dict[str, str] = Field(
        default_factory=dict,
        description="IssuerOfPatientID value -> document type, e.g. {'RNEC-CC': 'CC'}",
    )


class PartnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    country: str
    region: str
    source: SourceConfig
    schedule: str | None = "@daily"
    profile: str = "latam"
    profile_overrides: dict[str, Any] = Field(default_factory=dict)
    report_languages: list[Literal["es", "pt", "en"]] = Field(default_factory=lambda: ["es"])
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    owner: str = "data-engineering"
    retries: int = Field(default=2, ge=0, le=10)
    notify: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError("id must be lowercase letters, digits and '_', starting with a letter")
        return v

    @field_validator("country", "region")
    @classmethod
    def _known_region(cls, v: str) -> str:
        if v not in REGIONS:
            raise ValueError(f"unknown region/country {v!r}; known: {sorted(REGIONS)}")
        return v

    @property
    def queue(self) -> str:
        return f"partner-{self.id}"

    @property
    def pool(self) -> str:
        return f"partner-{self.id}"

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.id}"

    def root(self, base: Path | None = None) -> "PartnerRoot":
        return PartnerRoot(base or data_root(), self.region, self.id)

    def source_path(self, base: Path | None = None) -> Path:
        if self.source.type != "folder" or not self.source.path:
            raise ConfigError(f"partner {self.id}: source is {self.source.type!r}, not a folder")
        p = Path(os.path.expandvars(self.source.path))
        return p if p.is_absolute() else (base or data_root()) / p


def load_partner(path: Path) -> PartnerConfig:
    """Load and validate one partner file; the error names the file and field."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read partner file: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a partner file must be a mapping, got {type(raw).__name__}")
    try:
        cfg = PartnerConfig.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: invalid partner config: {details}") from exc
    if cfg.id != Path(path).stem:
        raise ConfigError(f"{path}: id {cfg.id!r} must match the file name {Path(path).stem!r}")
    # Imported here: profiles import config for the directories.
    from anonymization.profiles import ProfileError, load_profile

    try:
        load_profile(cfg.profile, cfg.profile_overrides, where=str(path))
    except ProfileError as exc:
        raise ConfigError(str(exc)) from exc
    return cfg


def load_partners(directory: Path | None = None) -> list[PartnerConfig]:
    directory = Path(directory or os.environ.get("STA_PARTNERS_DIR") or PARTNERS_DIR)
    return [load_partner(p) for p in sorted(directory.glob("*.yaml"))]


def get_partner(partner_id: str, directory: Path | None = None) -> PartnerConfig:
    directory = Path(directory or os.environ.get("STA_PARTNERS_DIR") or PARTNERS_DIR)
    path = directory / f"{partner_id}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.yaml")))
        raise ConfigError(f"no partner {partner_id!r} in {directory} (known: {known})")
    return load_partner(path)


@dataclass(frozen=True)
class PartnerRoot:
    """A partner's storage enclave: ``<data>/<region>/partners/<id>/``.

    landing/     raw files pulled this run (deleted after a successful run)
    work/<run>/  per-run intermediate files, incl. identity maps (deleted)
    quarantine/  raw files refused, each with a ``.reason.json`` beside it
    dicom/       published de-identified DICOM
    parquet/     published tables
    ledger/      one JSON per run accounting for every pulled file
    state/       sync state of the source connector
    """

    base: Path
    region: str
    partner_id: str

    @property
    def path(self) -> Path:
        return self.base / self.region / "partners" / self.partner_id

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    @property
    def landing(self) -> Path:
        return self.path / "landing"

    @property
    def quarantine(self) -> Path:
        return self.path / "quarantine"

    @property
    def dicom(self) -> Path:
        return self.path / "dicom"

    @property
    def parquet(self) -> Path:
        return self.path / "parquet"

    @property
    def ledger(self) -> Path:
        return self.path / "ledger"

    @property
    def state(self) -> Path:
        return self.path / "state"

    def work(self, run_id: str) -> Path:
        return self.path / "work" / safe_run_id(run_id)

    def ensure_inside(self, p: Path) -> Path:
        """Refuse a path outside this partner's root (residency and tenancy)."""
        resolved = Path(p).resolve()
        root = self.path.resolve()
        if resolved != root and root not in resolved.parents:
            raise PermissionError(f"{p} is outside partner {self.partner_id}'s root {root}")
        return resolved


def safe_run_id(run_id: str) -> str:
    """Airflow run ids contain ':' and '+'; keep them usable as folder names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:120]
