"""Configuration: precedence, validation messages, credentials never shown."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from lowcarb import (
    CarbonProvider,
    ConfigurationError,
    Credential,
    MissingCredentialError,
    UnknownProviderError,
    load_settings,
    register_provider,
)
from lowcarb.backends import DefaultProvider


class SecretProvider(DefaultProvider):
    """A provider that needs a token, for credential tests."""

    name = "secretgrid"
    credentials = (Credential("token", "LOWCARB_SECRETGRID_TOKEN", help="ask the grid operator"),)

    @dataclass(frozen=True)
    class Options:
        region: str = "north"
        timeout_s: float = 10.0
        verbose: bool = False

    def __init__(
        self,
        *,
        token: str,
        region: str = "north",
        timeout_s: float = 10.0,
        verbose: bool = False,
        clock=None,
    ):
        super().__init__(clock=clock)
        self.token, self.region = token, region


@pytest.fixture(autouse=True)
def _register():
    register_provider("secretgrid", SecretProvider, replace=True)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path):
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.provider == "default" and s.fallback == () and s.config_file is None
    assert s.open_provider().name == "default"


def test_precedence_file_env_overrides(tmp_path):
    write(
        tmp_path / "lowcarb.toml",
        'provider = "default"\n[providers.default]\nseed = 3\nbasis = "direct"\n',
    )
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.provider_options("default").seed == 3
    assert s.sources["providers.default.seed"] == "lowcarb.toml"
    s = load_settings(environ={"LOWCARB_DEFAULT_SEED": "5"}, cwd=tmp_path)
    assert s.provider_options("default").seed == 5
    assert s.provider_options("default").basis == "direct"
    assert s.sources["providers.default.seed"] == "environment"
    s = load_settings(
        {"providers": {"default": {"seed": 9}}}, environ={"LOWCARB_DEFAULT_SEED": "5"}, cwd=tmp_path
    )
    assert s.provider_options("default").seed == 9
    assert s.sources["providers.default.seed"] == "arguments"


def test_pyproject_tool_section_and_parent_search(tmp_path):
    write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "x"\n[tool.lowcarb]\nfallback = ["default"]\n',
    )
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    s = load_settings(environ={}, cwd=sub)
    assert s.fallback == ("default",)
    assert s.config_file == tmp_path / "pyproject.toml"


def test_pyproject_without_section_is_skipped(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert load_settings(environ={}, cwd=tmp_path).config_file is None


def test_explicit_config_file_via_env(tmp_path):
    cfg = write(tmp_path / "elsewhere.toml", "[providers.default]\nseed = 4\n")
    s = load_settings(environ={"LOWCARB_CONFIG": str(cfg)}, cwd=tmp_path)
    assert s.provider_options("default").seed == 4
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(environ={"LOWCARB_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('provider = "electricmaps"', "unknown provider 'electricmaps'"),
        ("provider = 3", "must be a provider name"),
        ('colour = "green"', "unknown setting 'colour'"),
        (
            '[providers.default]\nseed = "many"',
            r"providers\.default\.seed = 'many' .* must be an integer",
        ),
        ('[providers.default]\nbasis = "lca"', "must be one of 'lifecycle', 'direct'"),
        (
            "[providers.default]\nsede = 1",
            "unknown option providers.default.sede .* accepts: basis, seed",
        ),
        ('fallback = ["default", "nope"]', "unknown provider 'nope'"),
        ("provider = [", "not valid TOML"),
    ],
)
def test_bad_config_names_key_value_and_allowed(tmp_path, toml, message):
    write(tmp_path / "lowcarb.toml", toml + "\n")
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ={}, cwd=tmp_path)


def test_unknown_provider_lists_available(tmp_path):
    with pytest.raises(UnknownProviderError, match="Available: .*default.*file"):
        load_settings({"provider": "nope"}, environ={}, cwd=tmp_path)


def test_bad_environment(tmp_path, caplog):
    # An unknown variable is someone else's: a warning naming what lowcarb reads.
    with caplog.at_level("WARNING", logger="lowcarb"):
        s = load_settings(
            environ={"LOWCARB_PROVDER": "file", "LOWCARB_DEFAULT_SEDE": "1"}, cwd=tmp_path
        )
    assert s.provider == "default" and s.provider_options("default").seed != 1
    assert "ignoring the environment variable LOWCARB_PROVDER" in caplog.text
    assert "LOWCARB_PROVIDER, LOWCARB_FALLBACK" in caplog.text
    assert "LOWCARB_DEFAULT_SEDE" in caplog.text and "LOWCARB_DEFAULT_SEED" in caplog.text
    # A bad value of a known variable still fails.
    with pytest.raises(UnknownProviderError, match="LOWCARB_PROVIDER.*did you mean 'file'") as info:
        load_settings(environ={"LOWCARB_PROVIDER": "fil"}, cwd=tmp_path)
    assert "'fil'" not in str(info.value)  # a value from the environment is never quoted
    with pytest.raises(ConfigurationError, match="must be true or false"):
        load_settings(
            environ={"LOWCARB_SECRETGRID_VERBOSE": "maybe", "LOWCARB_SECRETGRID_TOKEN": "t"},
            cwd=tmp_path,
        )


def test_env_types_coerced(tmp_path):
    env = {
        "LOWCARB_PROVIDER": "secretgrid",
        "LOWCARB_SECRETGRID_TOKEN": "tok-123456789",
        "LOWCARB_SECRETGRID_TIMEOUT_S": "2.5",
        "LOWCARB_SECRETGRID_VERBOSE": "yes",
        "LOWCARB_FALLBACK": "default",
    }
    s = load_settings(environ=env, cwd=tmp_path)
    opts = s.provider_options("secretgrid")
    assert (opts.timeout_s, opts.verbose) == (2.5, True)
    assert s.chain == ("secretgrid", "default")


def test_missing_credential_fails_at_load(tmp_path):
    with pytest.raises(
        MissingCredentialError, match="set LOWCARB_SECRETGRID_TOKEN .*ask the grid operator"
    ):
        load_settings({"provider": "secretgrid"}, environ={}, cwd=tmp_path)


def test_credentials_from_file(tmp_path):
    secret = write(tmp_path / "token.txt", "from-a-file-0123456789\n")
    s = load_settings(
        {"provider": "secretgrid"},
        environ={"LOWCARB_SECRETGRID_TOKEN_FILE": str(secret)},
        cwd=tmp_path,
    )
    assert s.open_provider("secretgrid").token == "from-a-file-0123456789"
    with pytest.raises(MissingCredentialError, match="cannot be read"):
        load_settings(
            {"provider": "secretgrid"},
            environ={"LOWCARB_SECRETGRID_TOKEN_FILE": str(tmp_path / "no")},
            cwd=tmp_path,
        )


def test_credentials_refused_in_project_file(tmp_path):
    write(tmp_path / "lowcarb.toml", '[providers.secretgrid]\ntoken = "abc"\n')
    with pytest.raises(
        ConfigurationError,
        match="credentials come only from the environment; set LOWCARB_SECRETGRID_TOKEN",
    ):
        load_settings(environ={}, cwd=tmp_path)
    write(tmp_path / "lowcarb.toml", '[providers.default]\napi_key = "abc"\n')
    with pytest.raises(ConfigurationError, match="in lowcarb.toml looks like a credential"):
        load_settings(environ={}, cwd=tmp_path)


def test_display_redacts_secrets(tmp_path):
    env = {"LOWCARB_PROVIDER": "secretgrid", "LOWCARB_SECRETGRID_TOKEN": "super-secret-value-123"}
    s = load_settings(environ=env, cwd=tmp_path)
    text = repr(s) + str(s.display())
    assert "super-secret-value-123" not in text
    row = next(r for r in s.display() if r["key"] == "providers.secretgrid.token")
    assert row["value"] == "<redacted>" and "LOWCARB_SECRETGRID_TOKEN" in row["source"]


def test_provider_without_options_rejects_keys(tmp_path):
    class Bare(CarbonProvider):
        name = "bare"

        @property
        def capabilities(self):  # pragma: no cover - never called
            raise NotImplementedError

        def served_zones(self):  # pragma: no cover
            return []

        _latest = _history = _forecast = served_zones

    register_provider("bare", Bare, replace=True)
    with pytest.raises(ConfigurationError, match="takes no options"):
        load_settings({"providers": {"bare": {"x": 1}}}, environ={}, cwd=tmp_path)


def test_required_option_missing(tmp_path):
    with pytest.raises(
        ConfigurationError,
        match="needs providers.file.path; set it in lowcarb.toml, with LOWCARB_FILE_PATH",
    ):
        load_settings({"provider": "file"}, environ={}, cwd=tmp_path)


def test_relative_paths_in_a_project_file_are_relative_to_it(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    csv = tmp_path / "data" / "ci.csv"
    csv.write_text("datetime_utc,DE\n2024-01-01T00:00Z,100\n2024-01-01T01:00Z,110\n")
    write(tmp_path / "lowcarb.toml", 'provider = "file"\n[providers.file]\npath = "data/ci.csv"\n')
    sub = tmp_path / "experiments" / "run1"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    s = load_settings(environ={}, cwd=sub)
    assert s.provider_options("file").path == csv
    assert s.open_provider().served_zones() == ["DE"]
    # From the environment or the command line, a relative path is relative to the cwd.
    s = load_settings({"providers": {"file": {"path": "x.csv"}}}, environ={}, cwd=sub)
    assert s.provider_options("file").path == Path("x.csv")


# -- files users name: regular, bounded, UTF-8 -----------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'provider = "default"\n# \xff\xfe\n', "is not UTF-8 text"),
        (b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
        (b"provider = \n", "is not valid TOML"),
    ],
)
def test_a_bad_project_file_is_one_clear_error(tmp_path, content, message):
    (tmp_path / "lowcarb.toml").write_bytes(content)
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tool = 5\n", r"'tool' in .*pyproject.toml must be a table"),
        ("[tool]\nlowcarb = 5\n", r"\[tool.lowcarb\] in .*pyproject.toml must be a table"),
        ('tool = "x"\n', "must be a table"),
    ],
)
def test_a_pyproject_whose_tool_is_not_a_table_is_refused(tmp_path, content, message):
    (tmp_path / "pyproject.toml").write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ={}, cwd=tmp_path)


def test_config_files_that_are_not_regular_or_too_large_are_refused(tmp_path, monkeypatch):
    import os

    import lowcarb._config as config

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading it would wait for a writer for ever
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        load_settings(config_file=fifo, environ={}, cwd=tmp_path)
    with pytest.raises(ConfigurationError, match="is not a regular file"):
        load_settings(environ={"LOWCARB_CONFIG": "/dev/zero"}, cwd=tmp_path)
    big = tmp_path / "big.toml"
    big.write_text('provider = "default"\n' + "# padding\n" * 100)
    monkeypatch.setattr(config, "MAX_CONFIG_BYTES", 512)
    with pytest.raises(ConfigurationError, match="larger than the limit of 0.5 KiB"):
        load_settings(config_file=big, environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"\xff\xfetoken"), "is not UTF-8 text"),
        (lambda p: p.write_text("x" * (65 * 1024)), "larger than the limit of 64 KiB"),
        (lambda p: __import__("os").mkfifo(p), "is not a regular file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, r"cannot be read \(No such file"),
    ],
)
def test_a_bad_credential_file_is_one_clear_error(tmp_path, make, message):
    path = tmp_path / "token"
    make(path)
    env = {"LOWCARB_PROVIDER": "secretgrid", "LOWCARB_SECRETGRID_TOKEN_FILE": str(path)}
    with pytest.raises(
        MissingCredentialError, match=f"LOWCARB_SECRETGRID_TOKEN_FILE: the file .*{message}"
    ):
        load_settings(environ=env, cwd=tmp_path)
    assert load_settings(
        environ={**env, "LOWCARB_SECRETGRID_TOKEN_FILE": "/dev/null"},
        cwd=tmp_path,
        check_credentials=False,
    )


SECRET = "sk-live-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    "variable",
    [
        "LOWCARB_PROVIDER",
        "LOWCARB_FALLBACK",
        "LOWCARB_DEFAULT_FALLBACK",
        "LOWCARB_SECRETGRID_TIMEOUT_S",
        "LOWCARB_SECRETGRID_VERBOSE",
        "LOWCARB_DEFAULT_SEED",
        "LOWCARB_DEFAULT_BASIS",
        "LOWCARB_ELECTRICITYMAPS_BASE_URL",
        "LOWCARB_ELECTRICITYMAPS_TIMEOUT_S",
    ],
)
def test_a_secret_in_a_variable_that_is_not_a_credential_is_never_echoed(tmp_path, variable):
    env = {variable: SECRET, "LOWCARB_SECRETGRID_TOKEN": "t"}
    if variable.startswith("LOWCARB_SECRETGRID"):
        env["LOWCARB_PROVIDER"] = "secretgrid"
    if variable.startswith("LOWCARB_ELECTRICITYMAPS"):
        env["LOWCARB_PROVIDER"] = "electricitymaps"
        env["LOWCARB_ELECTRICITYMAPS_TOKEN"] = "t"
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ=env, cwd=tmp_path)
    assert SECRET not in str(info.value) and SECRET.lower() not in str(info.value)
    assert variable.removeprefix("LOWCARB_").lower().split("_")[-1] in str(info.value).lower()
