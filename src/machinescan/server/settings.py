"""One settings object for the server: `MACHINESCAN_*` environment variables, overridden by CLI flags."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
GiB = 1024 * MiB


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MACHINESCAN_")

    data_dir: Path = Path("machinescan-data")
    database_url: str = ""  # empty: SQLite file inside data_dir
    blobs_url: str = ""  # empty: folder `blobs` inside data_dir
    host: str = "127.0.0.1"
    port: int = 8080

    # `hammr` refuses to talk to a server announcing another version.
    api_version: str = "3.8.13"

    max_xml_body: int = 1 * MiB  # resource bodies (scannedInstance, scan, scanCompare)
    max_report_size: int = 1 * GiB
    max_chunk_size: int = 64 * MiB
    max_overlay_size: int = 10 * GiB
    upload_expiry_seconds: int = 24 * 3600

    # In-process job runner threads (embedded default); 0 leaves jobs to an external worker.
    job_threads: int = 1

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'db.sqlite').resolve()}"

    def resolved_blobs_url(self) -> str:
        if self.blobs_url:
            return self.blobs_url
        return f"file://{(self.data_dir / 'blobs').resolve()}"
