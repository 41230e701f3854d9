"""Record ids in URLs: one path converter, ``<id:name>``, for every URL of the portal.

Django's ``int`` converter takes digits of any length, and an id past the signed 64-bit range of the database's
keys then fails in the database (SQLite cannot bind it: ``OverflowError``, a 500) instead of naming nothing.
This one takes at most the largest key a database stores; a longer or larger number matches no URL (a 404).
"""

from __future__ import annotations

# The largest value of a BigAutoField (a signed 64-bit integer) on PostgreSQL and SQLite.
MAX_RECORD_ID = 2**63 - 1


class RecordIdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_RECORD_ID:
            raise ValueError("beyond the range of a record id")  # Django: the pattern does not match
        return number

    def to_url(self, value) -> str:
        return str(int(value))
