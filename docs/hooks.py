"""MkDocs hook: the CLI reference is generated from the typer app at build time, so it cannot drift from
the code. A page holding the marker ``<!-- cli-reference -->`` gets every command's usage, help and
options."""

from __future__ import annotations

from typing import Any

MARKER = "<!-- cli-reference -->"


def _command_doc(cmd: Any, path: str, ctx: Any) -> list[str]:
    import click

    out = [f"## `{path}`", ""]
    sub_ctx = click.Context(cmd, info_name=path.split()[-1], parent=ctx)
    help_text = (cmd.help or "").strip()
    if help_text:
        out += [help_text, ""]
    pieces = cmd.collect_usage_pieces(sub_ctx)
    out += ["```", f"{path} {' '.join(pieces)}".rstrip(), "```", ""]
    rows = []
    for param in cmd.get_params(sub_ctx):
        record = param.get_help_record(sub_ctx)
        if record is None:
            continue
        name, text = record
        rows.append(f"| `{name}` | {text.replace('|', '&#124;').replace(chr(10), ' ')} |")
    if rows:
        out += ["| option | meaning |", "| --- | --- |", *rows, ""]
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(sub_ctx):
            out += _command_doc(cmd.get_command(sub_ctx, name), f"{path} {name}", sub_ctx)
    return out


def cli_reference() -> str:
    import click
    import typer

    from nasprof.cli import app

    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="nasprof")
    lines: list[str] = []
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        lines += _command_doc(root.get_command(ctx, name), f"nasprof {name}", ctx)  # type: ignore[attr-defined]
    return "\n".join(lines)


CEILINGS_MARKER = "<!-- cli-ceilings -->"


def ceilings_table() -> str:
    from nasprof.commands._common import CEILINGS

    rows = [f"| `{flag}` | {ceiling:,} {what} |" for flag, (ceiling, what) in CEILINGS.items()]
    return "\n".join(["| option | ceiling |", "| --- | --- |", *rows])


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    if CEILINGS_MARKER in markdown:
        markdown = markdown.replace(CEILINGS_MARKER, ceilings_table())
    return markdown
