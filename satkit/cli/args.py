"""Command-line flags built from a config dataclass: one source of defaults, no logic here."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from satkit import methods
from satkit.training.config import ConfigError, TrainConfig, config_from_dict

__all__ = ["add_config_flags", "config_from_args", "flag_message"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _field_doc(cls: type, name: str) -> str:
    """The attribute docstring under a field, if any (shown in --help)."""
    import inspect

    lines = inspect.getsource(cls).splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(f"{name}:") and i + 1 < len(lines):
            if not lines[i + 1].strip().startswith('"""'):
                return ""
            doc = []
            for nxt in lines[i + 1:]:
                doc.append(nxt.strip())
                if nxt.strip().endswith('"""') and len("".join(doc)) > 3:
                    break
            return " ".join(doc).strip('"').strip()
    return ""


def add_config_flags(parser: argparse.ArgumentParser, *, exclude: tuple[str, ...] = (),
                     cls: type = TrainConfig) -> None:
    """Add one flag per dataclass field; defaults are None so the config's own apply.

    bool -> ``--x/--no-x``; Literal (or ``metadata={"choices": ...}``) -> choices;
    tuple[float, ...] -> several values.
    """
    hints = typing.get_type_hints(cls)
    defaults = cls()
    added = tuple(f.name for f in dataclasses.fields(cls) if f.name not in exclude)
    parser.set_defaults(config_fields=added)
    for f in dataclasses.fields(cls):
        if f.name not in added:
            continue
        tp = _strip_optional(hints[f.name])
        default = getattr(defaults, f.name)
        shown = "" if default is None else f" (default: {default})"
        # a method's setting: its one statement in satkit.methods (with its default)
        help_text = methods.field_doc(f.name) or (_field_doc(cls, f.name) + shown).strip()
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif "choices" in f.metadata:
            kwargs["choices"] = list(f.metadata["choices"])
        elif get_origin(tp) is Literal:
            kwargs["choices"] = list(get_args(tp))
        elif get_origin(tp) is tuple:
            kwargs.update(nargs="+", type=get_args(tp)[0], metavar=f.name.upper())
        else:
            kwargs["type"] = tp
        parser.add_argument(_flag(f.name), **kwargs)
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.toml",
                        help="read the same fields from a TOML file; flags given override it")


def flag_message(message: str, fields: tuple[str, ...] | None = None) -> str:
    """Prefix a config error with the flag of the field it names (``argument --device: ...``),
    when the message starts with a field that is one of ``fields`` (default: all)."""
    fields = tuple(f.name for f in dataclasses.fields(TrainConfig)) if fields is None else fields
    for name in sorted(fields, key=len, reverse=True):
        if message.startswith((f"{name} ", f"{name}:")):
            return f"argument {_flag(name)}: {message}"
    return message


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"--config: {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"--config: {path} is a directory, not a TOML file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config: {path} is not UTF-8 text (byte {exc.start}: "
                          f"{exc.reason}); save it as UTF-8 TOML") from exc
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path} ({exc.strerror or exc})") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML ({exc})") from exc


def config_from_args(args: argparse.Namespace, *, overrides: dict[str, Any] | None = None,
                     base: TrainConfig | None = None) -> TrainConfig:
    """Merge ``--config FILE.toml``, then the flags given, into a validated config.

    Raises:
        ConfigError: an unreadable or invalid TOML file, an unknown key in it, or an invalid
            value; the message names the flag (``argument --seed: ...``) or the file
            (``--config FILE: ...``) it came from.
    """
    values: dict[str, Any] = {}
    path: Path | None = getattr(args, "config", None)
    if path is not None:
        values.update(_read_config_file(path))
    from_file = set(values)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = tuple(value) if isinstance(value, list) else value
            from_file.discard(name)
    values.update(overrides or {})
    try:
        return config_from_dict(values, base=base)
    except ConfigError as exc:
        message = str(exc)
        for name in from_file:
            if message.startswith((f"{name} ", f"{name}:")):
                raise ConfigError(f"--config {path}: {message}") from exc
        raise ConfigError(flag_message(message, getattr(args, "config_fields", None))) from exc
