"""The --log file: one record per --log-every steps, as JSON Lines or CSV."""
from __future__ import annotations

import csv
import json
import math
import os

from charrnn.errors import CharRNNError

FIELDS = ("step", "seconds", "chars_seen", "lr", "train_nats", "val_nats", "grad_norm", "chars_per_sec")


class MetricsLog:
    """Appends records to ``path``: CSV if it ends in .csv, else JSON Lines.

    val_nats is empty (CSV) or null (JSON) on records where validation did
    not run. Each record is flushed as it is written, so the file can be
    watched or plotted while training goes on.
    """

    def __init__(self, path: str, every: int):
        self.path, self.every = path, every
        self.csv = path.lower().endswith(".csv")
        try:
            fresh = not os.path.exists(path) or os.path.getsize(path) == 0
            self.file = open(path, "a", encoding="utf-8", newline="")
        except OSError as e:
            raise CharRNNError(f"{path}: cannot write the log ({e.strerror or e})") from None
        if self.csv:
            self.writer = csv.DictWriter(self.file, fieldnames=FIELDS)
            if fresh:
                self.writer.writeheader()

    def write(self, event) -> None:
        """Append one StepEvent (charrnn.training) as a record of FIELDS."""
        record = {k: getattr(event, k) for k in FIELDS}
        if self.csv:
            self.writer.writerow({k: "" if v is None else v for k, v in record.items()})
        else:
            self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_log(path: str) -> list[dict]:
    """Records of a --log file (JSON Lines or CSV), with numbers as floats and None for blanks."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if path.lower().endswith(".csv"):
                rows = list(csv.DictReader(f))
                return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in rows]
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        raise CharRNNError(f"{path}: no such log file") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise CharRNNError(f"{path}: not a charrnn log ({type(e).__name__})") from None


def finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)
