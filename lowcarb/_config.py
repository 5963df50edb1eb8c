"""Configuration: which provider (and fallbacks) to use, and each provider's options.

Precedence, lowest to highest: built-in defaults < project file (``lowcarb.toml``, or
``[tool.lowcarb]`` in ``pyproject.toml``) < ``LOWCARB_*`` environment variables < explicit
overrides (CLI flags, keyword arguments). Credentials never come from the project file:
only from environment variables, or from a file named by ``<VAR>_FILE``.

A project file looks like::

    provider = "file"
    fallback = ["default"]

    [providers.file]
    path = "data/intensity.csv"
    basis = "lifecycle"

Engines end their chain with the embedded offline ``default`` provider unless
``default_fallback = false``.

Environment variables: ``LOWCARB_PROVIDER``, ``LOWCARB_FALLBACK`` (comma-separated),
``LOWCARB_DEFAULT_FALLBACK``, ``LOWCARB_LEDGER``,
``LOWCARB_CONFIG`` (path of the project file), and ``LOWCARB_<PROVIDER>_<OPTION>`` for a
provider option, e.g. ``LOWCARB_FILE_PATH`` (a ``-`` in a provider name becomes ``_``).
Other ``LOWCARB_*`` variables are ignored with a warning that names these.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lowcarb._chain import DEFAULT_PROVIDER, ProviderChain
from lowcarb._clock import Clock
from lowcarb._files import MAX_CONFIG_BYTES, MAX_SECRET_BYTES, read_text_file
from lowcarb._provider import CarbonProvider, Credential
from lowcarb._registry import available_providers, get_provider_class
from lowcarb.exceptions import ConfigurationError, MissingCredentialError, UnknownProviderError

__all__ = ["Settings", "load_settings", "open_provider"]

_log = logging.getLogger("lowcarb")

#: How the environment's layer is named in messages (its values are never quoted).
_ENVIRONMENT = "environment"
_TOP_LEVEL = ("provider", "fallback", "default_fallback", "ledger", "providers")
# Variables that configure the CLI or the tests rather than the settings.
_RESERVED_ENV = ("LOWCARB_CONFIG", "LOWCARB_NOW", "LOWCARB_DEBUG")
_RESERVED_ENV_PREFIXES = ("LOWCARB_TEST_",)
# Option names that look like secrets and so are refused in project files.
_SECRET_WORDS = ("token", "password", "secret", "api_key", "apikey", "key")

_DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :func:`load_settings`.

    Attributes:
        provider: Registry name of the primary provider.
        fallback: Providers tried in order when the primary fails.
        default_fallback: Whether engines end their chain with the embedded ``default``.
        ledger: SQLite file of the participation ledger (None: in memory).
        options: Per provider, its validated ``Options`` instance.
        sources: Where each setting came from, keyed like ``provider`` or
            ``providers.file.path``.
        config_file: The project file that was read, if any.
    """

    provider: str = "default"
    fallback: tuple[str, ...] = ()
    default_fallback: bool = True
    ledger: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def chain(self) -> tuple[str, ...]:
        """The primary provider followed by its fallbacks, without repeats."""
        return tuple(dict.fromkeys((self.provider, *self.fallback)))

    def provider_options(self, name: str) -> Any:
        """The validated options of provider ``name`` (defaults when not configured)."""
        key = name.lower()
        if key in self.options:
            return self.options[key]
        return _build_options(key, {}, {})

    def credential_status(self, name: str) -> dict[str, str]:
        """For each credential of ``name``: the variable that provides it, or ``missing``."""
        cls = get_provider_class(name)
        status = {}
        for cred in cls.credentials:
            found = _credential_source(cred, self.environ)
            status[cred.key] = f"set ({found})" if found else f"missing (set {cred.env})"
        return status

    def open_provider(
        self, name: str | None = None, *, clock: Clock | None = None
    ) -> CarbonProvider:
        """Instantiate a provider, or the configured chain when ``name`` is None.

        The chain opened here ends with the configured members: engines append the
        embedded default themselves (see :meth:`open_chain`).

        Raises:
            MissingCredentialError: If a required credential is not set.
        """
        if name is not None:
            return self._open_one(name, clock)
        return self.open_chain(clock=clock, default_fallback=False)

    def open_chain(
        self, *, clock: Clock | None = None, default_fallback: bool | None = None
    ) -> ProviderChain:
        """The configured provider chain: the primary, its fallbacks, then the default.

        Args:
            clock: Time source of every member.
            default_fallback: End with the embedded ``default`` provider (None: as
                configured).
        """
        last = self.default_fallback if default_fallback is None else default_fallback
        names = (*self.chain, DEFAULT_PROVIDER) if last else self.chain
        return ProviderChain([self._open_one(n, clock) for n in dict.fromkeys(names)], clock=clock)

    def _open_one(self, name: str, clock: Clock | None) -> CarbonProvider:
        cls = get_provider_class(name)
        secrets = _read_credentials(name, cls.credentials, self.environ)
        return cls.from_options(self.provider_options(name), secrets=secrets, clock=clock)

    def display(self) -> list[dict[str, str]]:
        """Rows ``{"key", "value", "source"}`` for ``lowcarb config show``; secrets redacted."""
        rows = [
            {
                "key": "provider",
                "value": self.provider,
                "source": self.sources.get("provider", _DEFAULT_SOURCE),
            },
            {
                "key": "fallback",
                "value": ", ".join(self.fallback) or "(none)",
                "source": self.sources.get("fallback", _DEFAULT_SOURCE),
            },
            {
                "key": "default_fallback",
                "value": "true" if self.default_fallback else "false",
                "source": self.sources.get("default_fallback", _DEFAULT_SOURCE),
            },
            {
                "key": "ledger",
                "value": str(self.ledger) if self.ledger else "(in memory)",
                "source": self.sources.get("ledger", _DEFAULT_SOURCE),
            },
        ]
        for name in self.chain:
            options = self.provider_options(name)
            if dataclasses.is_dataclass(options):
                for f in dataclasses.fields(options):
                    key = f"providers.{name}.{f.name}"
                    rows.append(
                        {
                            "key": key,
                            "value": _show(getattr(options, f.name)),
                            "source": self.sources.get(key, _DEFAULT_SOURCE),
                        }
                    )
            for cred_key, status in self.credential_status(name).items():
                rows.append(
                    {
                        "key": f"providers.{name}.{cred_key}",
                        "value": "<redacted>" if status.startswith("set") else "",
                        "source": status,
                    }
                )
        return rows


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value)


# -- loading ------------------------------------------------------------------------------


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    primary_options: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    origin: str = "arguments",
    check_credentials: bool = True,
) -> Settings:
    """Load and validate settings from defaults, project file, environment and overrides.

    Args:
        overrides: Highest-precedence values, shaped like the project file, e.g.
            ``{"provider": "file", "providers": {"file": {"path": "x.csv"}}}``.
        primary_options: Options for whichever provider ends up primary (the CLI's
            ``-o KEY=VALUE``), applied last.
        config_file: Read this file instead of searching for one (also ``LOWCARB_CONFIG``).
        environ: The environment to read; defaults to ``os.environ``.
        cwd: Where to search for ``lowcarb.toml`` / ``pyproject.toml`` (and its parents).
        origin: How overrides are labelled in messages and ``config show``.
        check_credentials: Fail when a provider of the chain lacks a required credential
            (False for ``config show``, which reports each one's status instead).

    Raises:
        ConfigurationError: Naming the key, the value and what is allowed.
        MissingCredentialError: If a configured provider lacks a required credential.
    """
    env = dict(os.environ if environ is None else environ)
    layers: list[tuple[str, Mapping[str, Any]]] = []

    path = Path(config_file) if config_file else None
    if path is None and env.get("LOWCARB_CONFIG"):
        path = Path(env["LOWCARB_CONFIG"])
    if path is not None:
        if not path.exists():
            raise ConfigurationError(f"config file {path} does not exist")
        table = _read_toml(path)
    else:
        path, table = _find_project_file(Path(cwd) if cwd else Path.cwd())
    if path is not None:
        layers.append((path.name, table))
    layers.append((_ENVIRONMENT, _env_layer(env)))
    if overrides:
        layers.append((origin, overrides))

    provider: str = "default"
    fallback: tuple[str, ...] = ()
    default_fallback = True
    ledger: Path | None = None
    sources: dict[str, str] = {}
    raw_options: dict[str, dict[str, Any]] = {}
    option_sources: dict[str, dict[str, str]] = {}
    # Relative paths in a project file are relative to that file, not to the cwd.
    bases = {path.name: path.resolve().parent} if path is not None else {}
    for where, layer in layers:
        unknown = [k for k in layer if k not in _TOP_LEVEL]
        if unknown:
            raise ConfigurationError(
                f"unknown setting {unknown[0]!r} in {where}; allowed: {', '.join(_TOP_LEVEL)}"
            )
        if "provider" in layer:
            provider = _check_provider_name(layer["provider"], "provider", where)
            sources["provider"] = where
        if "fallback" in layer:
            fallback = _check_fallback(layer["fallback"], where)
            sources["fallback"] = where
        if "default_fallback" in layer:
            default_fallback = _coerce(layer["default_fallback"], bool, "default_fallback", where)
            sources["default_fallback"] = where
        if "ledger" in layer:
            value = layer["ledger"]
            if not isinstance(value, str | os.PathLike) or not str(value).strip():
                raise ConfigurationError(
                    f"ledger in {where} must be the path of an SQLite file, got {value!r}"
                )
            ledger = Path(value).expanduser()
            if where in bases and not ledger.is_absolute():
                ledger = bases[where] / ledger
            sources["ledger"] = where
        tables = layer.get("providers", {})
        if not isinstance(tables, Mapping):
            raise ConfigurationError(f"'providers' in {where} must be a table of provider tables")
        for name, opts in tables.items():
            key = _check_provider_name(name, f"providers.{name}", where)
            if not isinstance(opts, Mapping):
                raise ConfigurationError(
                    f"providers.{name} in {where} must be a table of options, got {opts!r}"
                )
            if where in bases:
                _refuse_secrets(key, opts, where)
            raw_options.setdefault(key, {}).update(opts)
            for opt in opts:
                option_sources.setdefault(key, {})[opt] = where
                sources[f"providers.{key}.{opt}"] = where

    if primary_options:
        raw_options.setdefault(provider, {}).update(primary_options)
        for opt in primary_options:
            option_sources.setdefault(provider, {})[opt] = origin
            sources[f"providers.{provider}.{opt}"] = origin

    options = {
        name: _build_options(name, raw, option_sources.get(name, {}), bases)
        for name, raw in raw_options.items()
    }
    settings = Settings(
        provider=provider,
        fallback=fallback,
        default_fallback=default_fallback,
        ledger=ledger,
        options=options,
        sources=sources,
        config_file=path,
        environ=env,
    )
    for name in settings.chain:
        # Fail at load, not at first use, when a configured provider cannot work.
        settings.provider_options(name)
        if check_credentials:
            _read_credentials(name, get_provider_class(name).credentials, env)
    return settings


def open_provider(
    name: str | None = None,
    *,
    clock: Clock | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> CarbonProvider:
    """Open a provider by name with keyword options, or the configured chain.

    Args:
        name: Registry name; None opens the configured provider and fallbacks.
        clock: Time source for the provider.
        settings: Settings to use; defaults to :func:`load_settings`.
        **options: Provider options (override the project file and environment).

    Example:
        >>> p = open_provider("default")
        >>> p.name
        'default'
    """
    if settings is None:
        overrides: dict[str, Any] = {}
        if name is not None:
            overrides = {"provider": name, "fallback": []}
            if options:
                overrides["providers"] = {name: options}
        elif options:
            raise ConfigurationError("pass a provider name together with provider options")
        settings = load_settings(overrides, origin="open_provider() arguments")
    return settings.open_provider(name, clock=clock)


def _read_toml(path: Path) -> dict[str, Any]:
    # A regular file of bounded size in UTF-8 (a FIFO or /dev/zero would never end).
    text = read_text_file(path, what="config file", max_bytes=MAX_CONFIG_BYTES)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigurationError(f"{path} is nested too deeply to be a configuration") from None
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        if not isinstance(tool, dict):
            raise ConfigurationError(f"'tool' in {path} must be a table ([tool.lowcarb])")
        section = tool.get("lowcarb", {})
        if not isinstance(section, dict):
            raise ConfigurationError(f"[tool.lowcarb] in {path} must be a table")
        return section
    return data


def _find_project_file(start: Path) -> tuple[Path | None, dict[str, Any]]:
    for folder in (start, *start.parents):
        candidate = folder / "lowcarb.toml"
        if candidate.is_file():
            return candidate, _read_toml(candidate)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            section = _read_toml(pyproject)
            if section:
                return pyproject, section
    return None, {}


def _env_name(provider: str) -> str:
    return provider.upper().replace("-", "_")


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``LOWCARB_*`` variables as a settings layer.

    A variable lowcarb does not read is warned about, naming the ones it reads, and
    otherwise ignored: the prefix is not ours alone (a user's own script may use it),
    and a stray variable in a server's environment must not stop a training. A known
    variable with a bad value still fails when the settings are loaded.
    """
    layer: dict[str, Any] = {}
    # Longest names first, so LOWCARB_CARBON_AWARE_SDK_X is not read as provider "carbon".
    names = sorted(available_providers(), key=len, reverse=True)
    for var, value in env.items():
        if not var.startswith("LOWCARB_") or var in _RESERVED_ENV:
            continue
        if var.startswith(_RESERVED_ENV_PREFIXES):
            continue
        rest = var[len("LOWCARB_") :]
        if rest == "PROVIDER":
            layer["provider"] = value.strip()
            continue
        if rest == "FALLBACK":
            layer["fallback"] = [v.strip() for v in value.split(",") if v.strip()]
            continue
        if rest == "LEDGER":
            layer["ledger"] = value.strip()
            continue
        if rest == "DEFAULT_FALLBACK":
            layer["default_fallback"] = value.strip()
            continue
        name = next((n for n in names if rest.startswith(_env_name(n) + "_")), None)
        if name is not None and _is_credential_variable(name, var):
            continue  # read by _read_credentials, never treated as an option
        option = "" if name is None else rest[len(_env_name(name)) + 1 :].lower()
        known = None if name is None else _option_names(name)
        if name is None or (known is not None and option not in known):
            _log.warning(
                "ignoring the environment variable %s: lowcarb reads LOWCARB_PROVIDER, "
                "LOWCARB_FALLBACK, LOWCARB_DEFAULT_FALLBACK, LOWCARB_LEDGER, LOWCARB_CONFIG "
                "and LOWCARB_<PROVIDER>_<OPTION>%s",
                var,
                _known_options(name, known)
                if name is not None
                else f" for the providers {', '.join(sorted(names))}",
            )
            continue
        layer.setdefault("providers", {}).setdefault(name, {})[option] = value
    return layer


def _option_names(provider: str) -> set[str] | None:
    """The option names ``provider`` accepts; None when it cannot be imported."""
    try:
        options = get_provider_class(provider).Options
    except ConfigurationError:
        return None  # the option check at load time says why
    if not dataclasses.is_dataclass(options):
        return set()
    return {f.name for f in dataclasses.fields(options)}


def _known_options(provider: str, options: set[str] | None) -> str:
    prefix = f"LOWCARB_{_env_name(provider)}_"
    if not options:
        return f"; provider {provider!r} takes no options"
    return f"; for {provider!r}: " + ", ".join(prefix + o.upper() for o in sorted(options))


def _is_credential_variable(provider: str, var: str) -> bool:
    try:
        credentials = get_provider_class(provider).credentials
    except ConfigurationError:
        return False  # the provider cannot be imported; the option check will say so
    return any(var in (c.env, c.env + "_FILE") for c in credentials)


def _check_provider_name(value: Any, key: str, origin: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{key} = {_shown(value, origin)} in {origin} must be a provider name"
        )
    name = value.strip().lower()
    if name not in available_providers():
        try:
            get_provider_class(name)  # raises UnknownProviderError with the available names
        except UnknownProviderError:
            if origin != _ENVIRONMENT:
                raise
            close = difflib.get_close_matches(name, available_providers(), n=2)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise UnknownProviderError(
                f"{key} from the environment (LOWCARB_{key.upper()}) names no known "
                f"provider{hint}; available: {', '.join(available_providers())}"
            ) from None
    return name


def _check_fallback(value: Any, origin: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, Sequence):
        raise ConfigurationError(
            f"fallback = {value!r} in {origin} must be a list of provider names"
        )
    return tuple(_check_provider_name(v, "fallback", origin) for v in value)


def _refuse_secrets(provider: str, opts: Mapping[str, Any], origin: str) -> None:
    credentials = {c.key: c for c in get_provider_class(provider).credentials}
    for key in opts:
        cred = credentials.get(key)
        if cred is not None:
            raise ConfigurationError(
                f"providers.{provider}.{key} must not be in {origin}: credentials come only "
                f"from the environment; set {cred.env} (or {cred.env}_FILE naming a file "
                "that holds it)"
            )
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ConfigurationError(
                f"providers.{provider}.{key} in {origin} looks like a credential: secrets "
                f"never go in project files, and provider {provider!r} reads none named "
                f"{key!r} (it reads: {', '.join(sorted(credentials)) or 'no credentials'})"
            )


def _build_options(
    provider: str,
    raw: Mapping[str, Any],
    origins: Mapping[str, str],
    bases: Mapping[str, Path] | None = None,
) -> Any:
    cls = get_provider_class(provider)
    options_type = cls.Options
    if not dataclasses.is_dataclass(options_type):
        if raw:
            key = next(iter(raw))
            raise ConfigurationError(
                f"providers.{provider}.{key}: provider {provider!r} takes no options"
            )
        return options_type()
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    hints = typing.get_type_hints(options_type)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        origin = origins.get(key, "settings")
        if key not in fields:
            raise ConfigurationError(
                f"unknown option providers.{provider}.{key} (from {origin}); "
                f"{provider!r} accepts: {', '.join(sorted(fields)) or 'nothing'}"
            )
        coerced = _coerce(value, hints[key], f"providers.{provider}.{key}", origin)
        base = (bases or {}).get(origin)
        if isinstance(coerced, Path) and base is not None and not coerced.is_absolute():
            coerced = base / coerced
        values[key] = coerced
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        env = f"LOWCARB_{_env_name(provider)}_{missing[0].upper()}"
        raise ConfigurationError(
            f"provider {provider!r} needs providers.{provider}.{missing[0]}; set it in "
            f"lowcarb.toml, with {env}, or as an argument (CLI: -o {missing[0]}=...)"
        )
    try:
        return options_type(**values)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        for key, value in raw.items():
            # A provider's own check may quote the value: never one from the environment.
            if origins.get(key) == _ENVIRONMENT and str(value).strip():
                variable = f"LOWCARB_{_env_name(provider)}_{key.upper()}"
                message = message.replace(str(value).strip(), f"<the value of {variable}>")
        raise ConfigurationError(f"providers.{provider}: {message}") from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(value: Any, hint: Any, key: str, origin: str) -> Any:
    """Check ``value`` against the type ``hint``; convert text (from the environment)."""
    origin_type = typing.get_origin(hint)
    args = typing.get_args(hint)

    def fail(allowed: str) -> ConfigurationError:
        return ConfigurationError(
            f"{key} = {_shown(value, origin)} (from {origin}) is invalid: must be {allowed}"
        )

    if origin_type in (typing.Union, types.UnionType):
        empty = value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))
        if empty and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, origin)
            except ConfigurationError:
                continue
        raise fail(" or ".join(_describe(a) for a in args))
    if origin_type is Literal:
        text = value.strip() if isinstance(value, str) else value
        if text in args:
            return text
        raise fail("one of " + ", ".join(repr(a) for a in args))
    if origin_type is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, Sequence) or isinstance(items, str):
            raise fail("a list")
        return tuple(
            _coerce(v.strip() if isinstance(v, str) else v, args[0], key, origin) for v in items
        )
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise fail("true or false")
    if hint in (int, float):
        allowed = "an integer" if hint is int else "a number"
        accepted = int if hint is int else int | float
        if isinstance(value, accepted) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, str):
            try:
                return hint(value.strip())
            except ValueError:
                pass
        raise fail(allowed)
    if hint is str:
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise fail("a non-empty string")
    if hint is Path:
        if isinstance(value, str | Path) and str(value).strip():
            return Path(str(value).strip()).expanduser()
        raise fail("a path")
    raise fail(_describe(hint))


def _shown(value: Any, origin: str) -> str:
    """``value`` for a message; a value from the environment is never quoted.

    Environment variables carry secrets, and one put in the wrong variable (a key in
    ``LOWCARB_PROVIDER``) must not be printed by the error that refuses it.
    """
    if origin == _ENVIRONMENT:
        return f"<{len(str(value))} characters, not shown>"
    return repr(value)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


# -- credentials ----------------------------------------------------------------------------


def _credential_source(cred: Credential, env: Mapping[str, str]) -> str | None:
    if env.get(cred.env):
        return cred.env
    if env.get(cred.env + "_FILE"):
        return cred.env + "_FILE"
    return None


def _read_credentials(
    provider: str, credentials: tuple[Credential, ...], env: Mapping[str, str]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for cred in credentials:
        if env.get(cred.env):
            out[cred.key] = env[cred.env].strip()
            continue
        file_var = cred.env + "_FILE"
        if env.get(file_var):
            path = Path(env[file_var]).expanduser()
            out[cred.key] = read_text_file(
                path,
                what=f"{file_var}: the file",
                max_bytes=MAX_SECRET_BYTES,
                error=MissingCredentialError,
            ).strip()
            if not out[cred.key]:
                raise MissingCredentialError(f"{file_var} names {path}, which is empty")
            continue
        if cred.required:
            where = f" ({cred.help})" if cred.help else ""
            raise MissingCredentialError(
                f"provider {provider!r} needs a credential: set {cred.env} or {file_var}{where}"
            )
    return out
