"""Print the README's settings table from `service.settings.Settings`, or check it is current.

python .ci/settings_table.py          # print the table
python .ci/settings_table.py --write  # rewrite the table inside README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from service.settings import ENV_PREFIX, Settings

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- settings-table:begin -->"
END = "<!-- settings-table:end -->"


def _default(field: object) -> str:
    default = getattr(field, "default", None)
    factory = getattr(field, "default_factory", None)
    if default is PydanticUndefined and factory is not None:
        default = factory()  # type: ignore[operator]
    if default in (None, [], ""):
        return "(unset)"
    if isinstance(default, bool):
        return str(default).lower()
    return f"`{default}`"


def table() -> str:
    rows = ["| Environment variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {_default(field)} | {meaning} |")
    return "\n".join(rows)


def readme_with_table(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> int:
    if "--write" in sys.argv:
        README.write_text(readme_with_table(README.read_text()))
    else:
        sys.stdout.write(table() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
