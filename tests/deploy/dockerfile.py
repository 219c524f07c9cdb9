"""A small reader for our Dockerfile: instructions per build stage, with continuations joined."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """ENV in the `KEY=VALUE ...` form (the only one we use)."""
        return self._pairs("ENV")

    def labels(self) -> dict[str, str]:
        return self._pairs("LABEL")

    def _pairs(self, keyword: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for args in self.all(keyword):
            for pair in shlex.split(args):
                key, sep, value = pair.partition("=")
                assert sep, f"{keyword} {args!r}: use KEY=VALUE"
                out[key] = value
        return out

    def exec_form(self, keyword: str) -> list[str]:
        """An instruction's JSON (exec-form) argument list; fails on the shell form."""
        args = self.last(keyword)
        if keyword == "HEALTHCHECK":
            args = args[args.index("CMD") + len("CMD") :]
        value = json.loads(args)
        assert isinstance(value, list), args
        assert all(isinstance(v, str) for v in value), args
        return value


def parse(text: str) -> dict[str, Stage]:
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args.strip(), re.IGNORECASE)
            assert match, f"every stage is named: {line!r}"
            stage = Stage(base=match[1], name=match[2])
            stages[stage.name] = stage
        else:
            assert stage is not None, f"{line!r} before the first FROM"
            stage.instructions.append((keyword, args.strip()))
    return stages
