"""Command-line flags built from a config dataclass: one source of defaults, no logic here."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from satkit.training.config import ConfigError, TrainConfig, config_from_dict

__all__ = ["add_config_flags", "config_from_args"]


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
            nxt = lines[i + 1].strip()
            if nxt.startswith('"""'):
                return nxt.strip('"')
    return ""


def add_config_flags(parser: argparse.ArgumentParser, *, exclude: tuple[str, ...] = (),
                     cls: type = TrainConfig) -> None:
    """Add one flag per dataclass field; defaults are None so the config's own apply.

    bool -> ``--x/--no-x``; Literal (or ``metadata={"choices": ...}``) -> choices;
    tuple[float, ...] -> several values.
    """
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        tp = _strip_optional(hints[f.name])
        default = getattr(defaults, f.name)
        help_text = (_field_doc(cls, f.name) + f" (default: {default})").strip()
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


def config_from_args(args: argparse.Namespace, *, overrides: dict[str, Any] | None = None,
                     base: TrainConfig | None = None) -> TrainConfig:
    """Merge ``--config FILE.toml``, then the flags given, into a validated config.

    Raises:
        ConfigError: an unknown key in the TOML file or an invalid value, naming it.
    """
    values: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        path: Path = args.config
        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise ConfigError(f"--config: {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {path} is not valid TOML ({exc})") from exc
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = tuple(value) if isinstance(value, list) else value
    values.update(overrides or {})
    return config_from_dict(values, base=base)
