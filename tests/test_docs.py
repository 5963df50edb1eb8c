"""The pages run as written: every code block of README.md and docs/, in the test suite.

One test per page (``test_page[docs/cli.md]``). Its blocks run in page order, in one
namespace and one working directory, as a reader would run them:

- A ````python`` block is executed (a block of ``>>>`` lines is a doctest).
- A block with a title (````text title="intensity.csv"``, ````toml title="lowcarb.toml"``,
  ````python title="mygrid/provider.py"``) is a file the reader saves: it is written into
  the working directory, which is on ``sys.path`` while the page runs.
- A ````console`` block is a transcript. Each ``$ `` line (with its ``\\`` continuations)
  runs in bash through the installed console script (``.venv/bin`` first on ``PATH``),
  with ``COLUMNS=80`` and no ``LOWCARB_*`` variable of the developer's; what it prints
  (stdout and stderr) must equal the lines after it, up to the next ``$ ``, once the values
  that vary are masked (``MASKS``: decision times, the working directory). ``echo $?``
  shows the previous command's exit code; ``cat NAME`` of a file that does not exist yet
  writes the shown text to it (the page shows the reader's file). A command that reads
  ``../shared`` skips when ``../shared`` is absent (the working directory has a
  ``../shared`` beside it that points at the repository's). Transcripts start
  subprocesses, so they run in the slow stage only.

Setup a reader does not need to see (a file written by an earlier page) goes in Sybil's
``<!-- invisible-code-block: python ... -->``; it runs like a visible block.

Marks, one mechanism (Sybil's skip directive, an HTML comment on the line before a block,
invisible on the site):

- ``<!-- skip: next "fragment: <why>" -->``: the block is not run, by design (a fragment
  with ``...``, a command that needs a server, the network, a key or an optional extra).
  The reason is the skip message in the test report.
- ``<!-- skip: next if(FAST, reason="slow: <why>") -->``: the block runs only in the slow
  stage (``pytest -m slow tests/test_docs.py``); a page with such a block, or with a
  transcript, also has a ``test_page[slow-...]`` test that runs all of it.

Transcripts are generated, never edited by hand: ``LOWCARB_UPDATE_DOCS=1 python -m pytest
-n0 -p no:randomly -m "not integration and not interop" tests/test_docs.py`` rewrites the
output of every transcript that ran from the real run (masked values keep the page's).

The site itself builds with ``mkdocs build --strict`` in the slow stage, and every link to a
heading (``page.md#anchor``) names a heading that exists.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import string
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import SkipTest

import pytest
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer, RawFencedCodeBlockLexer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
UPDATE = os.environ.get("LOWCARB_UPDATE_DOCS") == "1"
#: Where the pages' transcripts say they run (the working directory is masked to it; a
#: real working directory of the same length keeps the tables' widths).
SHOWN_DIR = "/home/user/project"

#: Values that vary from run to run, masked on both sides before comparing:
#: (pattern, replacement). A group ``(?P<v>...)`` masks only that part of the match.
MASKS: list[tuple[re.Pattern[str], str]] = [
    # simulate's decision times (ms p50/p99, or a sweep's ms p50): a policy row's last column,
    # with the padding before it (a right-aligned column's padding varies with the value).
    (
        re.compile(
            r"(?m)^ (?:random|lowcarb-2022|greedy|lowcarb|oracle) .*?(?P<v>\s+\d+(?:/\d+)?)$"
        ),
        " ms",
    ),
    # the JSON document's decision times.
    (re.compile(r'"(?:decision_ms_)?p(?:50|99)": (?P<v>[\d.]+)'), "ms"),
    # wall-clock durations ("took 3.2 s", "in 12.5 s").
    (re.compile(r"(?P<v>\d+(?:\.\d+)?) ?s\b(?= elapsed|\))"), "t"),
]
#: Floats printed at full precision differ in their last digits with the order of a sum:
#: compared to 9 significant digits.
LONG_FLOAT = re.compile(r"-?\d+\.\d{10,}(?:e-?\d+)?")


@dataclass
class PageRun:
    """What a page's blocks share: where they run and what the transcripts printed."""

    workdir: Path
    fast: bool
    env: dict[str, str]
    #: (block as on the page, block as the run printed it), for the update mode.
    rewrites: list[tuple[str, str]] = field(default_factory=list)
    last_rc: int = 0


# --- parsing ----------------------------------------------------------------------------


def _titled_file(example: Example) -> None:
    run: PageRun = example.namespace["__page_run__"]
    title, source = example.parsed
    target = run.workdir / title
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source, encoding="utf-8")


def titled_parser(document: Document) -> Iterator[Region]:
    """Blocks with a ``title="NAME"``: files the reader saves."""
    lexer = RawFencedCodeBlockLexer(
        info_pattern=re.compile(r'(?P<language>[\w-]+) title="(?P<title>[^"]+)"$\n', re.M),
    )
    for region in lexer(document):
        lexemes = region.lexemes
        region.parsed = (lexemes["title"], str(lexemes["source"]))
        region.evaluator = _titled_file
        yield region


def console_parser(document: Document) -> Iterator[Region]:
    """````console`` blocks: transcripts of shell commands and what they print."""
    for region in FencedCodeBlockLexer("console")(document):
        region.parsed = str(region.lexemes["source"])
        region.evaluator = _run_transcript
        yield region


SYBIL = Sybil(
    parsers=[PythonCodeBlockParser(), titled_parser, console_parser, SkipParser()],
    path=str(REPO),
)


# --- transcripts --------------------------------------------------------------------------


@dataclass
class Step:
    """One ``$`` command of a transcript and the output the page shows for it."""

    command: str
    shown: list[str]


def parse_transcript(text: str) -> list[Step]:
    """Split a console block into commands and their shown outputs."""
    steps: list[Step] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command + "\n" + lines[i]
            steps.append(Step(command, []))
        elif steps:
            steps[-1].shown.append(line)
        else:
            raise AssertionError(f"console block starts with output, not a $ line: {line!r}")
        i += 1
    return steps


def mask(text: str) -> str:
    """Replace what varies from run to run by a fixed placeholder."""
    for pattern, replacement in MASKS:

        def sub(match: re.Match[str], replacement: str = replacement) -> str:
            if "v" not in match.groupdict():
                return replacement
            start, end = match.span("v")
            whole = match.group(0)
            offset = match.start()
            return whole[: start - offset] + replacement + whole[end - offset :]

        text = pattern.sub(sub, text)
    return LONG_FLOAT.sub(lambda match: f"{float(match.group(0)):.9g}", text)


def matches(shown: list[str], printed: list[str]) -> bool:
    """Whether the printed lines are the shown ones, a ``...`` line standing for any lines."""
    parts = [re.escape(mask(line)) if line.strip() != "..." else "(?:.*\n)*?" for line in shown]
    pattern = "".join(part if part.startswith("(?:") else part + "\n" for part in parts)
    return re.fullmatch(pattern, "".join(mask(line) + "\n" for line in printed)) is not None


def _keep_masked(shown: list[str], printed: list[str]) -> list[str]:
    """For the update mode: printed lines, except that masked values keep the page's."""
    if matches(shown, printed) and any(line.strip() == "..." for line in shown):
        return shown
    if len(shown) != len(printed):
        return printed
    return [old if mask(old) == mask(new) else new for old, new in zip(shown, printed, strict=True)]


#: What a transcript may run: lowcarb itself and what shows its files.
RUNNABLE = re.compile(r"(?:[A-Z_]+=\S* )*(?:lowcarb|echo \$\?|export|cat|ls|head|tail)(?=\s|$)")
#: Providers that ask a web API: a command that names one is never run here.
NETWORK = re.compile(r"-p (?:electricitymaps|entsoe|ukcarbon|watttime|carbon-aware-sdk)\b")


def _run_transcript(example: Example) -> None:
    run: PageRun = example.namespace["__page_run__"]
    text: str = example.parsed
    steps = parse_transcript(text)
    others = [step.command for step in steps if not RUNNABLE.match(step.command)]
    if others:
        raise AssertionError(
            f"{example.path}, line {example.line}: a console block runs {others[0]!r}, "
            'which is not a lowcarb command: mark it <!-- skip: next "<why>" -->'
        )
    network = [step.command for step in steps if NETWORK.search(step.command)]
    if network:
        pytest.skip(f"network: {network[0]!r} asks a web API")
    if run.fast:
        # Each step is a fresh interpreter (about a second): transcripts run in the slow stage.
        pytest.skip("slow: a transcript runs the console script in subprocesses")
    new_lines: list[str] = []
    failures: list[str] = []
    for step in steps:
        new_lines.append("$ " + step.command)
        printed = _run_step(run, step)
        new_lines.extend(_keep_masked(step.shown, printed))
        if not matches(step.shown, printed):
            failures.append(
                f"$ {step.command}\n--- the page shows:\n"
                + "\n".join(step.shown)
                + "\n--- the command printed:\n"
                + "\n".join(printed)
            )
    new_text = "\n".join(new_lines) + "\n"
    if new_text != text:
        run.rewrites.append((text, new_text))
    if failures and not UPDATE:
        raise AssertionError(
            f"{example.path}, line {example.line}: the transcript differs from what the "
            "commands print (LOWCARB_UPDATE_DOCS=1 regenerates it; see tests/test_docs.py)\n"
            + "\n\n".join(failures)
        )


def _run_step(run: PageRun, step: Step) -> list[str]:
    command = step.command
    if command.strip() == "echo $?":
        return [str(run.last_rc)]
    export = re.fullmatch(r"export ([A-Z_][A-Z0-9_]*)=(\S*)", command.strip())
    if export:
        run.env[export.group(1)] = export.group(2)
        return []
    cat = re.fullmatch(r"cat (\S+)", command.strip())
    if cat and not (run.workdir / cat.group(1)).exists():
        # The page shows the reader's file: write it, then show it as the page does.
        (run.workdir / cat.group(1)).write_text("\n".join(step.shown) + "\n", encoding="utf-8")
    if "../shared" in command and not SHARED.is_dir():
        pytest.skip(f"{command!r} reads ../shared, which is absent ({SHARED})")
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=run.workdir,
        env=run.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    run.last_rc = done.returncode
    output = done.stdout.replace(str(run.workdir), SHOWN_DIR)
    lines = [line.rstrip() for line in output.splitlines()]
    return lines


# --- the pages ----------------------------------------------------------------------------


def _has_slow_part(page: Path) -> bool:
    """Whether the page has blocks only the slow stage runs (marked ones, transcripts)."""
    text = page.read_text(encoding="utf-8")
    return "if(FAST" in text or "```console" in text


def _page_params() -> list[object]:
    params: list[object] = []
    for page in PAGES:
        name = page.relative_to(REPO).as_posix()
        params.append(pytest.param(page, True, id=name))
        if _has_slow_part(page):
            params.append(pytest.param(page, False, id=f"slow-{name}", marks=pytest.mark.slow))
    return params


def _workdir(tmp_path: Path) -> Path:
    """A working directory whose path is as long as SHOWN_DIR, with ../shared beside it."""
    base = tempfile.gettempdir()
    length = len(SHOWN_DIR) - len(base) - len("//project")
    if length < 4:
        root = tmp_path
    else:
        name = "".join(random.choices(string.ascii_lowercase + string.digits, k=length))
        root = Path(base) / name
        root.mkdir()
    (root / "project").mkdir()
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED, target_is_directory=True)
    return root / "project"


def _environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        COLUMNS="80",
        LINES="50",
        HOME=str(workdir),
        NO_COLOR="1",
        TERM="dumb",
        PYTHONWARNINGS="ignore",
        # Nothing a transcript runs reaches the network: a request would fail at once.
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        ALL_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
    )
    env.pop("FORCE_COLOR", None)
    return env


@pytest.mark.parametrize(("page", "fast"), _page_params())
def test_page(page: Path, fast: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = _workdir(tmp_path)
    run = PageRun(workdir=workdir, fast=fast, env=_environment(workdir))
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    modules = set(sys.modules)
    document = SYBIL.parse(page)
    document.namespace.update(__page_run__=run, FAST=fast, __name__="__main__")
    skipped: list[str] = []
    try:
        for example in document:
            try:
                example.evaluate()
            except (pytest.skip.Exception, SkipTest) as reason:
                # A marked block (or one that needs ../shared) is not run; the rest of
                # the page still is.
                skipped.append(f"line {example.line}: {reason}")
    finally:
        for name in set(sys.modules) - modules:
            module = sys.modules[name]
            if str(getattr(module, "__file__", "") or "").startswith(str(workdir)):
                del sys.modules[name]
        if workdir.parent != tmp_path:
            shutil.rmtree(workdir.parent, ignore_errors=True)
    if UPDATE and run.rewrites:
        text = page.read_text(encoding="utf-8")
        for old, new in run.rewrites:
            assert old in text, f"{page}: a transcript changed while the test ran"
            text = text.replace(old, new, 1)
        page.write_text(text, encoding="utf-8")


@pytest.mark.docs
@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="install the docs extra to build the site")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- links to headings ----------------------------------------------------------------------

LINK = re.compile(r"\]\((?P<target>[^)\s]*?)#(?P<anchor>[\w-]+)\)")
HEADING = re.compile(r"^#{1,6} (?P<title>.+?)(?: \{#(?P<id>[\w-]+)\})?$", re.M)
FENCED = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def slugify(title: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (mkdocs' default)."""
    text = re.sub(r"<[^>]+>|`", "", title)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    """Every anchor a page's headings define (a repeated title gets ``_1``, ``_2``...)."""
    found: set[str] = set()
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    for match in HEADING.finditer(text):
        slug = match.group("id") or slugify(match.group("title"))
        unique, n = slug, 0
        while unique in found:
            n += 1
            unique = f"{slug}_{n}"
        found.add(unique)
    return found


def broken_anchor_links(pages: list[Path]) -> list[str]:
    broken = []
    for page in pages:
        text = FENCED.sub("", page.read_text(encoding="utf-8"))
        for match in LINK.finditer(text):
            target, anchor = match.group("target"), match.group("anchor")
            if target.startswith(("http://", "https://")):
                continue
            path = (page.parent / target).resolve() if target else page
            shown = f"{target}#{anchor}"
            if not path.exists():
                broken.append(f"{page.name}: {shown}: no such page")
            elif anchor not in anchors(path):
                broken.append(f"{page.name}: {shown}: no such heading")
    return broken


def test_every_link_to_a_heading_finds_it() -> None:
    assert broken_anchor_links(PAGES) == []


def test_a_link_to_a_missing_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\n## The `x` option\n\n[b](b.md#gone)\n")
    (tmp_path / "b.md").write_text("# B\n\n[a](a.md#the-x-option) [self](#b) [no](#c)\n")
    broken = broken_anchor_links([tmp_path / "a.md", tmp_path / "b.md"])
    assert [line.split(": ", 1)[1] for line in broken] == [
        "b.md#gone: no such heading",
        "#c: no such heading",
    ]
