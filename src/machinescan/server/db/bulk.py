"""Fast inserts of many rows: COPY on PostgreSQL, executemany of one prepared statement on SQLite."""

from collections.abc import Sequence

from sqlalchemy import Connection, Table


def insert_rows(connection: Connection, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
    if not rows:
        return
    names = ", ".join(f'"{name}"' for name in columns)
    cursor = connection.connection.driver_connection.cursor()
    if connection.dialect.name == "postgresql":
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
    else:
        placeholders = ", ".join("?" for _ in columns)
        cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({placeholders})', rows)
    cursor.close()
