"""DISCO's develop branch, built once from ../shared/third_party/disco-develop into a cache.

The snapshot is read-only third-party source (see its PROVENANCE.md). It is copied into
a cache folder keyed by its lock file and this recipe, installed from the npm registry
and compiled there, once; later runs reuse it. Nothing of DISCO enters the repository.
The recipe is the snapshot's own (PROVENANCE.md): keep the workspaces present, override
sharp and tfjs-node (their install scripts download binaries), drop the lock file (npm
would keep the locked versions and ignore the overrides), compile with
``tsc --noEmitOnError false`` (today's TypeScript reports errors in the snapshot; the
emitted JavaScript works), and stub ``isomorphic-wrtc`` (its native WebRTC binary is a
download; federated training never uses it).

:func:`hooked_server` adds a copy of DISCO's own server with lowcarb's selection hook
(``examples/disco/hook``) applied, compiled beside the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO.parent / "shared" / "third_party" / "disco-develop"
HOOK = REPO / "examples" / "disco" / "hook"
#: Bump when the recipe below changes: the cache key includes it.
RECIPE = "2"
_WORKSPACES = ("isomorphic-wrtc", "discojs", "discojs-node", "server")
_COMPILED = ("discojs", "discojs-node", "server")
_OVERRIDES = {"sharp": "0.33.5", "@tensorflow/tfjs-node": "npm:@tensorflow/tfjs@4.22.0"}


class BuildError(RuntimeError):
    """A step of the recipe failed (the message says which, with the tool's output)."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lowcarb" / "interop"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def build_key() -> str:
    """The cache key: the snapshot's lock file and this recipe."""
    return _digest((SNAPSHOT / "package-lock.json").read_bytes(), RECIPE.encode())


def _run(step: str, args: list[str], cwd: Path, timeout: float, ok: tuple[int, ...] = (0,)) -> str:
    try:
        done = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{step}: {exc}") from None
    if done.returncode not in ok:
        tail = (done.stdout + done.stderr)[-3000:]
        raise BuildError(f"{step} exited {done.returncode}:\n{tail}")
    return done.stdout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another test process may be building it
        yield


def _tsc(folder: Path, root: Path) -> None:
    tsc = root / "node_modules" / "typescript" / "bin" / "tsc"
    # 2: type errors, JavaScript emitted anyway; checked below by looking for it.
    _run(
        f"tsc in {folder.name}", ["node", str(tsc), "--noEmitOnError", "false"], folder, 600, (0, 2)
    )
    if not (folder / "dist").is_dir():
        raise BuildError(f"tsc in {folder.name} emitted nothing")


def _build(target: Path) -> None:
    for name in (*_WORKSPACES, "package.json", "package-lock.json", "tsconfig.base.json"):
        source = SNAPSHOT / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy2(source, target / name)
    for path in (target, *target.rglob("*")):
        path.chmod(path.stat().st_mode | 0o200)  # the snapshot is read-only
    manifest = json.loads((target / "package.json").read_text())
    manifest["workspaces"] = list(_WORKSPACES)
    manifest["overrides"] = _OVERRIDES
    (target / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (target / "package-lock.json").unlink()
    npm = shutil.which("npm") or "npm"
    _run(
        "npm install (DISCO develop)",
        [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund"],
        target,
        900,
    )
    for workspace in _COMPILED:
        _tsc(target / workspace, target)
    stub = target / "node_modules" / "isomorphic-wrtc"
    if stub.is_symlink() or stub.is_file():
        stub.unlink()
    elif stub.exists():
        shutil.rmtree(stub)
    stub.mkdir()
    (stub / "package.json").write_text(
        '{"name": "isomorphic-wrtc", "version": "1.0.0", "type": "module", "main": "node.js"}\n'
    )
    (stub / "node.js").write_text(
        "// WebRTC is for decentralized training only.\nexport default {};\n"
    )
    check = (
        "const d = await import(process.argv[1]);"
        "if (typeof d.Disco !== 'function') throw new Error('no Disco');"
    )
    entry = target / "node_modules" / "@epfml" / "discojs" / "dist" / "index.js"
    _run(
        "loading the built discojs",
        ["node", "--input-type=module", "-e", check, entry.as_uri()],
        target,
        120,
    )


def develop_build() -> Path:
    """The built snapshot (built now if the cache lacks it).

    Raises:
        BuildError: If a step fails.
    """
    final = cache_root() / f"disco-develop-{build_key()}"
    with _locked(final.with_name(final.name + ".lock")):
        if (final / "DONE").is_file():
            return final
        scratch = final.with_name(final.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        _build(scratch)
        (scratch / "DONE").write_text("built\n")
        shutil.rmtree(final, ignore_errors=True)
        scratch.rename(final)
    return final


def hook_key() -> str:
    files = sorted(HOOK.iterdir())
    return _digest(*(f.name.encode() + f.read_bytes() for f in files if f.is_file()))


def hooked_server(build: Path) -> Path:
    """A copy of DISCO's server with the hook applied, compiled; returns its ``dist/main.js``.

    Raises:
        BuildError: If the patch does not apply or a step fails.
    """
    folder = build / f"server-lowcarb-{hook_key()}"
    with _locked(build.with_name(build.name + ".lock")):
        if not (folder / "DONE").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(SNAPSHOT / "server", folder, ignore=shutil.ignore_patterns("tests"))
            for path in (folder, *folder.rglob("*")):
                path.chmod(path.stat().st_mode | 0o200)
            patch = HOOK / "disco-server.patch"
            _run(
                "applying examples/disco/hook/disco-server.patch",
                ["patch", "-p1", "--forward", "--batch", "-i", str(patch)],
                folder,
                60,
            )
            shutil.copy2(HOOK / "carbon_gate.ts", folder / "src" / "controllers" / "carbon_gate.ts")
            _tsc(folder, build)
            (folder / "DONE").write_text("built\n")
    return folder / "dist" / "main.js"
