"""The DISCO hook that docs/service.md shows is the one the interop stage runs."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "examples" / "disco" / "hook"


def test_the_documented_hook_is_the_tested_module_byte_for_byte() -> None:
    page = (REPO / "docs" / "service.md").read_text(encoding="utf-8")
    module = (HOOK / "carbon_gate.ts").read_text(encoding="utf-8")
    start = page.index("```ts\n// carbon_gate.ts") + len("```ts\n")
    shown = page[start : page.index("```", start)]
    assert shown == module


def test_the_patch_uses_the_module_and_touches_only_the_server_sources() -> None:
    patch = (HOOK / "disco-server.patch").read_text(encoding="utf-8")
    touched = [line.split()[1] for line in patch.splitlines() if line.startswith("--- ")]
    assert touched == [
        "a/src/controllers/federated_controller.ts",
        "a/src/controllers/training_controller.ts",
        "a/src/routes/training_router.ts",
    ]
    assert '+import { CarbonGate } from "./carbon_gate.js";' in patch
