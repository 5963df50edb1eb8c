"""``lowcarb config show``: the configuration in force, where each value comes from."""

from __future__ import annotations

from rich.table import Table

from lowcarb.cli._app import (
    JsonOpt,
    OptionOpt,
    ProviderOpt,
    config_app,
    load_settings_for,
    print_json,
    print_table,
)

__all__: list[str] = []


@config_app.command("show")
def config_show(
    provider: ProviderOpt = None,
    option: OptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the effective configuration and where each value comes from (secrets redacted)."""
    settings = load_settings_for(provider, option, check_credentials=False)
    rows = settings.display()
    if as_json:
        print_json(
            {
                "config_file": str(settings.config_file) if settings.config_file else None,
                "settings": rows,
            }
        )
        return
    source = settings.config_file or "none found (defaults and environment only)"
    table = Table(title=f"lowcarb configuration (project file: {source})", title_justify="left")
    for column in ("key", "value", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["key"], row["value"], row["source"])
    print_table(table)
