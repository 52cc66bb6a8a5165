"""Docs that cannot drift (STYLE habit 10): docs/cli.md is generated, README names every
serve option, and every Mermaid diagram shown parses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from flowscope.cli import main
from flowscope.cli_reference import render

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"


def _commands(group: click.Group, prefix: str = "flowscope") -> list[tuple[str, click.Command]]:
    context = click.Context(group, info_name=prefix)
    out: list[tuple[str, click.Command]] = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if command is None or command.hidden:
            continue
        out.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            out.extend(_commands(command, f"{prefix} {name}"))
    return out


def _long_options(command: click.Command) -> list[str]:
    names: list[str] = []
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            names.extend(n for n in [*param.opts, *param.secondary_opts] if n.startswith("--"))
    return names


def test_cli_md_is_the_generated_reference(update_golden: bool) -> None:
    generated = render()
    if update_golden:
        CLI_MD.write_text(generated, encoding="utf-8")
    assert CLI_MD.exists(), "run: python -m flowscope.cli_reference > docs/cli.md"
    assert CLI_MD.read_text(encoding="utf-8") == generated, (
        "docs/cli.md is stale: run `python -m flowscope.cli_reference > docs/cli.md` "
        "(or pytest --update-golden)"
    )


def test_the_reference_covers_every_command_and_option() -> None:
    """Checks the generator itself: nothing the CLI has is left out of its output."""
    text = render()
    commands = _commands(main)
    assert {"flowscope serve", "flowscope import", "flowscope sql"} <= {p for p, _ in commands}
    for path, command in [("flowscope", main), *commands]:
        section = re.search(rf"^## `{re.escape(path)}`\n(.*?)(?=^## |\Z)", text, re.M | re.S)
        assert section, f"no section for {path}"
        for option in _long_options(command):
            if option == "--help":
                continue
            assert f"`{option}`" in section.group(1), f"{path} {option} is not documented"
        if command.help:
            first_line = command.help.strip().splitlines()[0].strip()
            assert first_line in section.group(1), f"{path}: help text missing"


def test_serve_defaults_in_the_reference() -> None:
    text = render()
    serve = text[text.index("## `flowscope serve`") :]
    for row in (
        "| `--grpc-port` | INTEGER | `4317` |",
        "| `--http-port` | INTEGER | `4318` |",
        "| `--ui-port` | INTEGER | `8686` |",
        "| `--host` | TEXT | `127.0.0.1` |",
        "| `--retention` | DURATION | `7d` |",
    ):
        assert row in serve


def test_reference_module_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flowscope.cli_reference"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == render()


def test_readme_names_every_serve_option() -> None:
    if not README.exists():
        pytest.skip("README.md is not written yet")
    text = README.read_text(encoding="utf-8")
    serve = main.commands["serve"]
    missing = [
        option for option in _long_options(serve) if option != "--help" and option not in text
    ]
    assert not missing, f"README.md does not mention these `flowscope serve` options: {missing}"


def test_every_mermaid_block_in_the_docs_parses() -> None:
    """Diagrams shown in the README and docs are flowscope output too: mermaid's own
    parser must accept them, as it does every diagram the code draws."""
    from tests.analyzer.mermaid_check import assert_all_parse

    blocks = {
        f"{path.relative_to(ROOT)} block {i + 1}": block
        for path in [README, *sorted((ROOT / "docs").glob("*.md"))]
        for i, block in enumerate(
            re.findall(r"^```mermaid\n(.*?)^```", path.read_text(encoding="utf-8"), re.M | re.S)
        )
    }
    assert blocks, "the README shows a flow as a sequence diagram"
    results = assert_all_parse(blocks)
    readme = results[0]
    assert [a["text"] for a in readme["actors"]][:3] == [
        "client",
        "client-gateway",
        "order-manager",
    ]
