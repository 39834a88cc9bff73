"""Records shared by the engine and its faces (CLI, control room): plain data, no behaviour that does I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """Something wrong or suspicious in a settings file, said where the Deacon and the operator look.

    ``level`` is ``error`` when the file (or part of it) is not used as
    written, ``warning`` when it is used but something in it is ignored.
    """

    file: str
    field: str | None
    reason: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.file}: field '{self.field}' {self.reason}" if self.field else f"{self.file}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "field": self.field, "reason": self.reason, "level": self.level}
