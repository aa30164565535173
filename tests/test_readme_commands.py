"""The READMEs' command lines still parse: every `mmsr ...` example in the README's "Command line"
block (and the torchrun one), and every harness command in benchmarks/paper/README.md's "Run"
block, is handed to its own argument parser, so an option renamed or removed in the code fails here
instead of in a user's terminal. Parsing runs nothing; the file names in the examples (DATA,
B.safetensors, ...) are placeholders and need not exist.
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from mmsr.cli import build_parser
from mmsr.train.config import add_arguments

from test_paper_profiles import paper_imported

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAPER_README = ROOT / "benchmarks" / "paper" / "README.md"


def _command_block(readme: Path = README, heading: str = "## Command line") -> list:
    """The commands of the first ```bash block under ``heading``, as word lists, without comments
    (continuation lines joined)."""
    text = readme.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"{readme.name}: no ```bash block under {heading!r}"
    lines = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[-1] == "...":  # "and the other options", not an argument
            words = words[:-1]
        if words:
            lines.append(words)
    return lines


_LINES = _command_block()


def test_the_block_shows_every_sub_command():
    shown = {words[1] for words in _LINES if words[0] == "mmsr"}
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(subcommands.choices)
    assert shown == commands, f"README's command block misses {commands - shown} or shows unknown {shown - commands}"


@pytest.mark.parametrize("words", [w for w in _LINES if w[0] == "mmsr"], ids=lambda w: " ".join(w[:4]))
def test_each_mmsr_example_parses(words, capsys):
    try:
        args = build_parser().parse_args(words[1:])
    except SystemExit:
        pytest.fail(f"README example does not parse: {' '.join(words)}\n{capsys.readouterr().err}")
    assert args.command == words[1]


def test_the_torchrun_example_parses_as_mmsr_train(capsys):
    (words,) = [w for w in _LINES if w[0] == "torchrun"]
    train_args = words[words.index("mmsr.train") + 1:]
    parser = argparse.ArgumentParser(prog="mmsr train")
    add_arguments(parser)
    try:
        parser.parse_args(train_args)
    except SystemExit:
        pytest.fail(f"README torchrun example does not parse: {' '.join(words)}\n{capsys.readouterr().err}")


_HARNESS = [w[2:] for w in _command_block(PAPER_README, "## Run") if w[:2] == ["python", "benchmarks/paper/run_experiments.py"]]


def test_the_paper_readme_shows_the_harness_commands():
    assert len(_HARNESS) >= 3, "benchmarks/paper/README.md's Run block lost its run_experiments.py commands"


@pytest.mark.parametrize("arguments", _HARNESS, ids=lambda a: " ".join(a[:2]))
def test_each_harness_example_parses(arguments, monkeypatch, capsys):
    with paper_imported(monkeypatch, "run_experiments") as (run_experiments,):
        try:
            run_experiments._parser().parse_args(arguments)
        except SystemExit:
            pytest.fail(f"benchmarks/paper/README.md example does not parse: {' '.join(arguments)}\n"
                        f"{capsys.readouterr().err}")
