import asyncio
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

import lowcarb
from lowcarb import (
    ConfigurationError,
    ManualClock,
    NoDataError,
    ProviderChain,
    ProviderUnavailableError,
    ThreadedAsyncProvider,
    UnknownProviderError,
    available_providers,
    get_provider_class,
    register_provider,
)
from lowcarb.backends import DefaultProvider

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)


def test_builtins_listed_sorted_and_read_only():
    names = list(available_providers())
    assert names == sorted(names) and {"default", "file"} <= set(names)
    with pytest.raises(TypeError):
        available_providers()["x"] = "y"  # type: ignore[index]


def test_lookup_is_case_insensitive_and_suggests():
    assert get_provider_class("DEFAULT") is DefaultProvider
    with pytest.raises(UnknownProviderError, match="Did you mean default"):
        get_provider_class("defualt")


def test_register_refuses_silent_replacement():
    register_provider("mine", DefaultProvider, replace=True)
    with pytest.raises(ConfigurationError, match="already registered"):
        register_provider("mine", DefaultProvider)


def test_broken_dotted_path_is_a_clear_error():
    register_provider("broken", "lowcarb_no_such_module:Thing", replace=True)
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        get_provider_class("broken")
    register_provider("notaprovider", "lowcarb._time:parse_time", replace=True)
    with pytest.raises(ConfigurationError, match="not a CarbonProvider"):
        get_provider_class("notaprovider")


def test_third_party_entry_point(tmp_path, monkeypatch):
    """A package that declares the lowcarb.backends entry point is found by name."""
    pkg = tmp_path / "gridco_provider.py"
    pkg.write_text(
        textwrap.dedent(
            """
            from lowcarb.backends import DefaultProvider

            class GridCoProvider(DefaultProvider):
                name = "gridco"
            """
        )
    )
    dist = tmp_path / "gridco-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gridco\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[lowcarb.backends]\ngridco = gridco_provider:GridCoProvider\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import lowcarb._registry as registry

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_registry", dict(registry._BUILTIN))
    assert "gridco" in available_providers()
    assert get_provider_class("gridco").__name__ == "GridCoProvider"
    p = lowcarb.open_provider("gridco", clock=ManualClock(T0))
    assert p.latest(["DE"]).values.shape == (1, 1)
    sys.modules.pop("gridco_provider", None)


class Failing(DefaultProvider):
    name = "failing"

    def _latest(self, zones):
        raise ProviderUnavailableError("HTTP 503 from upstream", provider=self.name)

    _forecast = _history = lambda self, *a: self._latest(a[0])


def test_fallback_chain_records_the_fallback():
    chain = ProviderChain([Failing(clock=ManualClock(T0)), DefaultProvider(clock=ManualClock(T0))])
    s = chain.latest(["DE"])
    assert s.provider == "default"
    assert any("failing failed" in n for n in s.notes)
    assert any("answered by fallback default" in n for n in s.notes)


def test_fallback_all_fail():
    chain = ProviderChain([Failing(clock=ManualClock(T0)), Failing(clock=ManualClock(T0))])
    with pytest.raises(ProviderUnavailableError, match="every provider in the chain failed"):
        chain.latest(["DE"])


def test_fallback_does_not_hide_bad_input():
    chain = ProviderChain([Failing(clock=ManualClock(T0)), DefaultProvider(clock=ManualClock(T0))])
    with pytest.raises(lowcarb.UnknownZoneError):
        chain.latest(["XX"])


def test_settings_open_chain(tmp_path):
    s = lowcarb.load_settings(
        {"fallback": ["default"], "provider": "default"}, environ={}, cwd=tmp_path
    )
    assert s.chain == ("default",)
    chain = s.open_provider()
    assert isinstance(chain, ProviderChain) and [m.name for m in chain.members] == ["default"]
    assert isinstance(s.open_provider("default"), DefaultProvider)


def test_threaded_async_provider():
    async def run():
        async with ThreadedAsyncProvider(DefaultProvider(clock=ManualClock(T0))) as p:
            zones = await p.served_zones()
            latest = await p.latest(["DE"])
            fc = await p.forecast(["DE"], horizon=timedelta(hours=3))
            hist = await p.history(["DE"], T0 - timedelta(hours=3), T0)
            with pytest.raises(NoDataError):
                await p.history(["DE"], T0, T0 + timedelta(hours=3))
            return zones, latest, fc, hist

    zones, latest, fc, hist = asyncio.run(run())
    assert "DE" in zones and len(latest) == 1 and len(fc) == 3 and len(hist) == 3


def test_builtins_are_importable_from_backends_by_class_name():
    import lowcarb.backends as backends

    for name in backends.__all__:
        assert getattr(backends, name) is get_provider_class(getattr(backends, name).name)
    with pytest.raises(AttributeError):
        backends.NoSuchProvider  # noqa: B018


def test_the_chain_falls_back_zone_by_zone(tmp_path):
    """Only the zones a failing member served move on; the others keep their answer."""

    class HalfBroken(DefaultProvider):
        name = "halfbroken"

        def _latest(self, zones):
            if "GB" in zones:
                raise ProviderUnavailableError("GB feed down", provider=self.name)
            return super()._latest(zones)

    clock = ManualClock(T0)
    chain = ProviderChain([HalfBroken(clock=clock), DefaultProvider(clock=clock)])
    fanout = chain.each(
        ["DE", "GB"],
        lambda m, z: (m.name, tuple(z)) if m.name == "default" or "GB" not in z else m.latest(z),
    )
    assert [(p.source, p.zones) for p in fanout.parts] == [("default", ("DE", "GB"))]
    assert "halfbroken failed" in fanout.reasons["GB"]
    assert chain.canonical("gb") == "GB" and chain.canonical("mars") == "mars"


class CountingResolve(DefaultProvider):
    """The default provider, counting its resolve() calls; ``down`` makes them fail."""

    name = "counting"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0
        self.down = False

    def resolve(self, location):
        self.calls += 1
        if self.down:
            raise ProviderUnavailableError("HTTP 503 from upstream", provider=self.name)
        return super().resolve(location)


def test_a_listed_zone_id_is_answered_from_the_zone_list_without_asking_resolve():
    primary = CountingResolve(clock=ManualClock(T0))
    backup = CountingResolve(clock=ManualClock(T0))
    chain = ProviderChain([primary, backup])
    found = chain.resolve(" de ")
    assert (found.zone, found.method, found.query) == ("DE", "zone", " de ")
    assert (primary.calls, backup.calls) == (0, 0)
    # Anything else is the members' to resolve, in order.
    assert chain.resolve("aws:eu-central-1").zone == "DE"
    assert (primary.calls, backup.calls) == (1, 0)
    primary.down = True
    assert chain.resolve("aws:eu-central-1").zone == "DE"  # the backup stands in
    assert (primary.calls, backup.calls) == (2, 1)
    primary.down = False
    with pytest.raises(lowcarb.UnknownZoneError):
        chain.resolve("XX")
