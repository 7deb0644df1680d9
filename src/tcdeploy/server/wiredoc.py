"""docs/wire.md's generated block: every wedata action of the real schema, served or not, with what
this server narrows, adds and accepts without effect — from the data that decides it, so the page
cannot drift.

    python -m tcdeploy.server.wiredoc            # print the block
    python -m tcdeploy.server.wiredoc --write    # replace it in docs/wire.md

Sources: the schema (`protocol/schema`), narrowing and extensions (`protocol/wedata`), members
accepted with no effect and reply extensions (`protocol/effects`), and the server's action table
(`control/api/table`). A test (tests/conformance) fails when the committed block differs.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tcdeploy.protocol import effects
from tcdeploy.protocol import wedata as wedata_models
from tcdeploy.protocol.apis import WEDATA
from tcdeploy.protocol.schema import Member, wedata
from tcdeploy.server.control.api.table import ACTIONS as HANDLED

BEGIN = "<!-- generated: python -m tcdeploy.server.wiredoc --write (edit the sources it names, not this block) -->"
END = "<!-- end generated -->"
WIRE_MD = Path(__file__).resolve().parents[3] / "docs" / "wire.md"


def member_paths(members: tuple[Member, ...], prefix: str = "", seen: frozenset = frozenset()) -> Iterator[str]:
    """Every member reachable from a request, path-wise as it nests (`Services.ServiceLimit.InstanceRpsLimit`);
    each struct once per branch (structs may nest themselves)."""
    schema = wedata()
    for member in members:
        path = f"{prefix}{member.name}"
        yield path
        if member.struct in schema.structs and member.struct not in seen:
            yield from member_paths(schema.struct(member.struct), f"{path}.", seen | {member.struct})


def _struct_paths(action: str) -> dict[str, str]:
    """Each struct an action's request reaches, by the path it is reached at (the first one)."""
    schema = wedata()
    found: dict[str, str] = {}

    def walk(members: tuple[Member, ...], prefix: str, seen: frozenset) -> None:
        for member in members:
            struct = member.struct
            if struct and struct in schema.structs and struct not in seen:
                found.setdefault(struct, f"{prefix}{member.name}")
                walk(schema.struct(struct), f"{prefix}{member.name}.", seen | {struct})

    walk(schema.actions[action].input, "", frozenset())
    return found


def _owned(table: Mapping[str, Mapping[str, Any]], action: str) -> list[str]:
    """The members `table` names for an action: its own, and its structs' path-wise."""
    names = [*table.get(action, {})]
    for struct, path in sorted(_struct_paths(action).items(), key=lambda kv: kv[1]):
        names += [f"{path}.{member}" for member in table.get(struct, {})]
    return names


def served(action: str) -> bool:
    return (WEDATA, action) in HANDLED


def _cell(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "—"


def action_table() -> list[str]:
    schema = wedata()
    lines = [
        "| action | group | served | narrowed here | extensions | accepted, no effect here |",
        "|---|---|---|---|---|---|",
    ]
    for group in ("model-service", "model-registry", "adjacent"):
        for action in schema.actions_of(group):
            narrowed = _owned(wedata_models._NARROWING, action) if action in wedata_models.MODELS else []
            extended = _owned(wedata_models._EXTENSIONS, action) if action in wedata_models.MODELS else []
            word = "yes" if served(action) else "**no** (`InvalidAction`)"
            no_effect = [*effects.NO_EFFECT.get(action, {})]
            lines.append(
                f"| `{action}` | {group} | {word} | {_cell(narrowed)} | {_cell(extended)} | {_cell(no_effect)} |"
            )
    return lines


def no_effect_table() -> list[str]:
    lines = ["| action | member | why |", "|---|---|---|"]
    for action, members in effects.NO_EFFECT.items():
        lines += [f"| `{action}` | `{member}` | {why} |" for member, why in members.items()]
    return lines


def reply_extension_table() -> list[str]:
    lines = ["| struct | member | what |", "|---|---|---|"]
    for struct, members in effects.REPLY_EXTENSIONS.items():
        lines += [f"| `{struct}` | `{member}` | {what} |" for member, what in members.items()]
    return lines


def block() -> str:
    """The generated block, markers included."""
    served_count = sum(served(a) for a in wedata().actions_of("model-service"))
    total = len(wedata().actions_of("model-service"))
    parts = [
        BEGIN,
        "",
        f"### Every wedata {wedata().api_version} action",
        "",
        f"Served: {served_count} of the reference's {total} model-service actions. *Narrowed*: a schema member",
        "keeps its name and type, the server enforces a range or form. *Extensions*: members of our own.",
        "",
        *action_table(),
        "",
        "### Accepted, no effect here",
        "",
        "Accepted, stored and shown back, but changing nothing on this server yet. The list only",
        "shrinks: each entry is either made to act or stays named here.",
        "",
        *no_effect_table(),
        "",
        "### Reply extensions",
        "",
        "Members of our own in replies, beside the schema's (never in place of one).",
        "",
        *reply_extension_table(),
        "",
        END,
    ]
    return "\n".join(parts)


def unknown_paths() -> list[str]:
    """Members `effects` names that the schema does not have (a typo would hide a member)."""
    schema = wedata()
    problems = []
    for action, members in effects.NO_EFFECT.items():
        paths = set(member_paths(schema.actions[action].input))
        problems += [f"{action}.{m}" for m in members if m not in paths]
    for struct, members in effects.REPLY_EXTENSIONS.items():
        names = {m.name for m in schema.struct(struct)}
        problems += [f"{struct}.{m} (already a member of the schema)" for m in members if m in names]
    return problems


_BLOCK = re.compile(re.escape(BEGIN.split(" (")[0]) + r".*?" + re.escape(END), re.DOTALL)


def committed_block(text: str) -> str | None:
    found = _BLOCK.search(text)
    return found.group(0) if found else None


def rewrite(text: str) -> str:
    if committed_block(text) is None:
        raise ValueError(f"no generated block ({BEGIN!r} … {END!r}) to replace")
    return _BLOCK.sub(lambda _: block(), text, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"replace the block in {WIRE_MD}")
    args = parser.parse_args(argv)
    if not args.write:
        print(block())
        return 0
    WIRE_MD.write_text(rewrite(WIRE_MD.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
