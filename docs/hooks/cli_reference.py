"""MkDocs hook: the CLI reference page is written from the Typer app at build time, so it cannot drift from --help."""

from __future__ import annotations

MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())


def cli_reference() -> str:
    import click
    import typer

    from fercli.cli import app

    group = typer.main.get_command(app)
    parts = []
    with click.Context(group, info_name="fer", help_option_names=["-h", "--help"]) as root:
        parts.append(f"## fer\n\n```text\n{group.get_help(root).strip()}\n```\n")
        for name in group.list_commands(root):
            command = group.get_command(root, name)
            with click.Context(command, info_name=name, parent=root, terminal_width=100, max_content_width=100,
                               help_option_names=["-h", "--help"]) as ctx:
                parts.append(f"## fer {name}\n\n```text\n{command.get_help(ctx).strip()}\n```\n")
    return "\n".join(parts)
