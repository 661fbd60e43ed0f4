"""The database schema: users, API keys, scanned instances and scans, as SQLAlchemy models."""

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class UTCDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC, on SQLite (which drops the zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# Paths sort by their bytes and prefix LIKEs use the index: the "C" collation on PostgreSQL; SQLite's
# default (BINARY) already does both.
BYTE_ORDERED_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


class Base(DeclarativeBase):
    pass


class Timestamped:
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class User(Timestamped, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login_name: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Space-separated entitlement names, e.g. "migration_access".
    entitlements: Mapped[str] = mapped_column(String(1000), default="")
    email: Mapped[str | None] = mapped_column(String(255))

    api_keys: Mapped[list["ApiKey"]] = relationship(back_populates="user", passive_deletes=True)

    def has_entitlement(self, name: str) -> bool:
        return name in self.entitlements.split()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    # Kept as is: verifying an HMAC signature needs the secret itself, not a hash of it.
    secret_key: Mapped[str] = mapped_column(String(128))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="api_keys")


class ScannedInstance(Timestamped, Base):
    """One scanned machine, by name; its scans follow each other in time."""

    __tablename__ = "scanned_instances"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # Exactly what the agent detected (os-release ID, VERSION_ID, machine arch); the wire layer maps
    # them to the schema's enumerations for XML.
    distribution_name: Mapped[str | None] = mapped_column(String(100))
    distribution_version: Mapped[str | None] = mapped_column(String(100))
    distribution_arch: Mapped[str | None] = mapped_column(String(50))
    platform_type: Mapped[str | None] = mapped_column(String(50))
    ram_size_mb: Mapped[int | None] = mapped_column(Integer)
    # None until the first scan decides whether this instance carries overlays.
    overlay_included: Mapped[bool | None] = mapped_column(Boolean)

    scans: Mapped[list["Scan"]] = relationship(
        back_populates="instance", passive_deletes=True, order_by="Scan.id"
    )


class Scan(Timestamped, Base):
    """One scan of an instance: its report, its overlay, and where their processing stands."""

    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("scanned_instances.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(255))

    # Life cycle (api.md "Scan life cycle").
    percentage: Mapped[int] = mapped_column(Integer, default=0)
    status_message: Mapped[str | None] = mapped_column(Text)
    scanned: Mapped[bool] = mapped_column(Boolean, default=False)
    validated: Mapped[bool] = mapped_column(Boolean, default=False)
    binaries_received: Mapped[bool] = mapped_column(Boolean, default=False)
    binaries_extracted: Mapped[bool] = mapped_column(Boolean, default=False)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[bool] = mapped_column(Boolean, default=False)
    error_message: Mapped[str | None] = mapped_column(Text)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)

    # Counters set by ingestion.
    total_packages: Mapped[int | None] = mapped_column(Integer)
    total_files_added: Mapped[int | None] = mapped_column(Integer)
    total_files_modified: Mapped[int | None] = mapped_column(Integer)
    total_files_deleted: Mapped[int | None] = mapped_column(Integer)
    uncompressed_binary_size: Mapped[int | None] = mapped_column(BigInteger)

    # The report as received.
    report_file_name: Mapped[str | None] = mapped_column(String(255))
    report_crc: Mapped[int | None] = mapped_column(BigInteger)
    report_size: Mapped[int | None] = mapped_column(BigInteger)

    instance: Mapped[ScannedInstance] = relationship(back_populates="scans")

    # Whether an overlay belongs to this scan (the report header says so); None until ingested.
    overlay_expected: Mapped[bool | None] = mapped_column(Boolean)
    # From the report: its header (agent, host, distribution as detected) and the install profile, as JSON.
    report_header: Mapped[str | None] = mapped_column(Text)
    install_profile: Mapped[str | None] = mapped_column(Text)

    # Every blob of this scan lives under this prefix; deleting the scan deletes the prefix.
    blob_prefix: Mapped[str] = mapped_column(String(100))

    @property
    def report_blob(self) -> str:
        return self.blob_prefix + "report.jsonl.gz"

    # The overlay archive once complete and checked (issue 4); `overlay_key` names its blob, None: no overlay.
    overlay_key: Mapped[str | None] = mapped_column(String(200))
    overlay_name: Mapped[str | None] = mapped_column(String(255))
    overlay_size: Mapped[int | None] = mapped_column(BigInteger)
    overlay_sha256: Mapped[str | None] = mapped_column(String(64))


class ScannedPackage(Base):
    """A package installed on the scanned machine, as the report lists it."""

    __tablename__ = "scanned_packages"
    __table_args__ = (Index("ix_scanned_packages_scan_name", "scan_id", "name", "arch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"))
    manager: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(255))
    # How file records name their owner: the name, `name:arch` for dpkg Multi-Arch: same packages, or
    # `name-[e:]v-r.arch` for an rpm installed in several versions.
    key: Mapped[str] = mapped_column(String(400))
    version: Mapped[str] = mapped_column(String(255))
    release: Mapped[str | None] = mapped_column(String(255))
    epoch: Mapped[int | None] = mapped_column(Integer)  # None (no epoch) is not 0
    arch: Mapped[str | None] = mapped_column(String(50))
    installed_size: Mapped[int | None] = mapped_column(BigInteger)
    install_time: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(255))
    files: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(50))
    modified: Mapped[bool] = mapped_column(Boolean, default=False)
    missing_files: Mapped[int] = mapped_column(Integer, default=0)


class ScannedFile(Base):
    """A filesystem entry of the scanned machine with its change since install."""

    __tablename__ = "scanned_files"
    # One index: every query is a range of it (a folder's subtree is a range of paths in byte order).
    # Each more index halves the ingestion speed.
    __table_args__ = (Index("ix_scanned_files_scan_path", "scan_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"))
    # The path as text (invalid UTF-8 shown as U+FFFD); `path_b64` keeps the exact bytes of such paths.
    path: Mapped[str] = mapped_column(BYTE_ORDERED_TEXT)
    path_b64: Mapped[str | None] = mapped_column(Text)
    directory: Mapped[str] = mapped_column(BYTE_ORDERED_TEXT)  # parent folder of `path`, for one-level listings
    kind: Mapped[str] = mapped_column(String(10))
    mode: Mapped[str | None] = mapped_column(String(8))
    uid: Mapped[int | None] = mapped_column(Integer)
    gid: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(255))
    group: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[float | None] = mapped_column(Float)
    nlink: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    link_target: Mapped[str | None] = mapped_column(Text)
    package: Mapped[str | None] = mapped_column(String(255))  # first owner; `packages` lists them all
    packages: Mapped[str | None] = mapped_column(Text)
    change: Mapped[str] = mapped_column(String(10))
    changed: Mapped[str | None] = mapped_column(String(100))
    conffile: Mapped[bool] = mapped_column(Boolean, default=False)
    in_overlay: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(String(40))


class Job(Base):
    """Background work recorded in the database, so that a restart resumes or fails it cleanly."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(10), default="queued")  # queued, running, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OverlayUpload(Base):
    """Where the overlay upload of a scan stands; the source of truth for `Upload-Offset` (upload-protocol.md)."""

    __tablename__ = "overlay_uploads"
    __table_args__ = (Index("ix_overlay_uploads_state_activity", "state", "last_activity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), unique=True)
    state: Mapped[str] = mapped_column(String(10), default="partial")  # partial, complete, expired
    # The blob store's name for the partial upload (local: a key; S3: key and multipart upload id).
    storage_handle: Mapped[str | None] = mapped_column(String(1000))
    received_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    overlay_name: Mapped[str | None] = mapped_column(String(255))
    # Bumped by every request that locks the row: on SQLite this write takes the database's write lock.
    lock_version: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_activity: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OverlayChunk(Base):
    """One acknowledged chunk of an overlay upload: its range and CRC-32, to recognise a retried chunk."""

    __tablename__ = "overlay_chunks"
    __table_args__ = (Index("ix_overlay_chunks_upload_first", "upload_id", "first_byte"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("overlay_uploads.id", ondelete="CASCADE"))
    first_byte: Mapped[int] = mapped_column(BigInteger)
    last_byte: Mapped[int] = mapped_column(BigInteger)
    crc32: Mapped[int] = mapped_column(BigInteger)
