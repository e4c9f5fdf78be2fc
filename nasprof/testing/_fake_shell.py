"""Tokenizer and parser for the small POSIX-shell subset a fake Android device understands.

The fake device never hands a command line to the host's ``/bin/sh``: a quoting bug in nasprof (or a model
path such as ``x; rm -rf ~``) must show up as a failing test, not as a command run on the developer's machine.
So commands are parsed here, the way mksh would parse them, and interpreted by ``_fake_device``.

Supported: words with ``'single'``, ``"double"`` and backslash quoting; ``;``, ``&&`` and ``||`` between
commands; ``NAME=value`` assignments before a command. Anything else (pipes, redirections, ``$``-expansion
outside quotes, globs) is rejected with a syntax error, because nasprof's Android backend must not need it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ShellSyntaxError", "SimpleCommand", "parse"]

_OPERATORS = (";", "&&", "||")
_UNSUPPORTED = "|&<>`$*?"


class ShellSyntaxError(ValueError):
    """The command line uses syntax the fake device does not implement (or is malformed)."""


@dataclass(frozen=True)
class SimpleCommand:
    """One command: ``env`` assignments, ``argv``, and the operator that joins it to the previous one."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    #: ``""`` for the first command, else ``";"``, ``"&&"`` or ``"||"``.
    joined_by: str = ""


def _tokenize(line: str) -> list[tuple[str, bool, int]]:
    """Split ``line`` into ``(text, is_operator, unquoted_prefix)`` tokens, resolving quotes.

    ``unquoted_prefix`` is how many leading characters of a word were not quoted: ``A=b`` is an assignment
    only when ``A=`` is unquoted (``'A=b' cmd`` runs a command named ``A=b``, as in any POSIX shell).
    """
    tokens: list[tuple[str, bool, int]] = []
    word: list[str] = []
    in_word = False  # distinguishes the empty word '' from no word at all
    prefix: int | None = None  # length of the word when its first quoted part began
    i, n = 0, len(line)

    def flush() -> None:
        nonlocal in_word, prefix
        if in_word:
            text = "".join(word)
            tokens.append((text, False, len(text) if prefix is None else prefix))
        word.clear()
        in_word = False
        prefix = None

    def quoted() -> None:
        nonlocal prefix
        if prefix is None:
            prefix = len("".join(word))

    while i < n:
        c = line[i]
        if c in " \t\n":
            flush()
            i += 1
        elif c == "'":
            quoted()
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated single quote")
            word.append(line[i + 1 : end])
            in_word = True
            i = end + 1
        elif c == '"':
            quoted()
            i += 1
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated double quote")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '\\"$`\n':
                    word.append(line[i + 1])
                    i += 2
                elif c in "$`":
                    raise ShellSyntaxError(f"expansion {c!r} inside double quotes is not supported")
                else:
                    word.append(c)
                    i += 1
            in_word = True
        elif c == "\\":
            quoted()
            if i + 1 >= n:
                raise ShellSyntaxError("trailing backslash")
            word.append(line[i + 1])
            in_word = True
            i += 2
        elif line.startswith(("&&", "||"), i):
            flush()
            tokens.append((line[i : i + 2], True, 0))
            i += 2
        elif c == ";":
            flush()
            tokens.append((";", True, 0))
            i += 1
        elif c in _UNSUPPORTED:
            raise ShellSyntaxError(f"unquoted {c!r} is not supported by the fake device")
        else:
            word.append(c)
            in_word = True
            i += 1
    flush()
    return tokens


def _is_assignment(word: str, unquoted_prefix: int) -> bool:
    name, eq, _ = word.partition("=")
    return (
        bool(eq)
        and len(name) < unquoted_prefix
        and name.replace("_", "a").isalnum()
        and not name[0].isdigit()
    )


def parse(line: str) -> list[SimpleCommand]:
    """Parse a command line into simple commands joined by ``;``, ``&&`` or ``||``."""
    commands: list[SimpleCommand] = []
    joined_by = ""
    words: list[tuple[str, int]] = []

    def close(next_op: str) -> None:
        nonlocal joined_by
        if not words:
            if next_op or joined_by:
                raise ShellSyntaxError(f"syntax error near {next_op or joined_by!r}")
            return
        env: list[tuple[str, str]] = []
        k = 0
        while k < len(words) and _is_assignment(*words[k]):
            name, _, value = words[k][0].partition("=")
            env.append((name, value))
            k += 1
        argv = tuple(w for w, _ in words[k:])
        commands.append(SimpleCommand(argv=argv, env=tuple(env), joined_by=joined_by))
        words.clear()
        joined_by = next_op

    for text, is_op, unquoted in _tokenize(line):
        if is_op:
            close(text)
        else:
            words.append((text, unquoted))
    if words:
        close("")
    elif joined_by and joined_by != ";":
        raise ShellSyntaxError(f"syntax error: command line ends with {joined_by!r}")
    return commands
