"""Production logs are one JSON object per line (what a log shipper reads)."""

from __future__ import annotations

import json
import logging

from portal.logs import JsonFormatter, logging_config


def _format(record) -> dict:
    return json.loads(JsonFormatter().format(record))


def test_a_record_is_one_json_object_with_time_level_logger_and_message():
    record = logging.makeLogRecord({"name": "portal.scheduling", "levelname": "WARNING", "levelno": 30, "msg": "job %s overdue", "args": ("risk-revalue-book",)})
    entry = _format(record)
    assert entry["level"] == "WARNING" and entry["logger"] == "portal.scheduling"
    assert entry["message"] == "job risk-revalue-book overdue"
    assert entry["time"].endswith("+00:00")


def test_an_exception_is_kept_in_the_same_line():
    try:
        raise ValueError("bad price")
    except ValueError:
        import sys

        record = logging.makeLogRecord({"name": "x", "levelname": "ERROR", "msg": "failed", "exc_info": sys.exc_info()})
    line = JsonFormatter().format(record)
    assert "\n" not in line.replace("\\n", "")
    assert "ValueError: bad price" in json.loads(line)["exception"]


def test_gunicorn_access_lines_become_fields():
    record = logging.makeLogRecord({"name": "gunicorn.access", "levelname": "INFO", "msg": "%(h)s %(r)s", "args": ()})
    record.args = {"h": "10.0.0.1", "m": "GET", "U": "/healthz", "q": "", "s": "200", "B": "57", "M": "3", "a": "curl/8", "f": "-"}
    entry = _format(record)
    assert entry | {"time": None} == {"time": None, "level": "INFO", "logger": "gunicorn.access", "message": "request", "remote_addr": "10.0.0.1",
                                      "method": "GET", "path": "/healthz", "status": 200, "bytes": 57, "duration_ms": 3, "user_agent": "curl/8"}


def test_json_is_the_production_format():
    config = logging_config(fmt="json", level="INFO")
    assert config["formatters"]["default"] == {"()": "portal.logs.JsonFormatter"}
    assert config["loggers"]["gunicorn.access"]["handlers"] == ["console"]
