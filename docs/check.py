"""Run every command in the docs, and fail if one fails or a generated part is stale.

    .venv/bin/python docs/check.py [--show] [--keep] [PAGE.md ...]

What it does, for README.md and every docs/*.md (or the pages named):

1. Unless pages are named, regenerates the generated parts (``docs/figures.py --check``
   and ``docs/reference.py --check``): a measured figure or a config default that changed
   fails the check.
2. Runs every ``sh`` block of each page, in order, in one bash process per page, in a
   fresh temporary folder, with the venv's ``bin`` first on ``PATH`` (as if it were
   active). Background services started by one block (``&``) live until the page ends,
   then the check stops them (their process group: nothing else).

A fenced block is classified by the HTML comment on the line just before it
(``<!-- check: ... -->``); a block with no comment must be ``sh`` (run) or sit
between ``<!-- figures:NAME -->`` markers (a figure, compared by figures.py):

=====================  ==============================================================
``file NAME``          the block is written to NAME in the page's folder before any
                       command runs (scripts and configs the commands use)
``output``             the block is exactly what the previous ``sh`` block printed
``sample``             sample output (ids, latencies vary): shown, not compared
``listing``            neither a command nor output (a folder layout, a diagram)
``scenario``           TOML loaded as a scenario (a fragment gets a minimal account)
``config``             TOML loaded as a live config (a fragment gets a minimal provider)
``repo-copy``          an ``sh`` block run in a copy of the repository's files
``figure NAME``        an ``sh`` block that docs/figures.py runs (and compares), not
                       run again here
``restart``            an ``sh`` block run in a fresh bash: the services the page's
                       earlier blocks started are stopped first
``skip REASON``        an ``sh`` block that is not run, and why
``timeout N``          an ``sh`` block allowed N seconds (default 180)
=====================  ==============================================================

A page-level ``<!-- check: ports 9001 9002 -->`` replaces those port numbers, in every
block of the page, by free loopback ports, so the check never collides with anything.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
VENV_BIN = Path(sys.executable).parent
DEFAULT_TIMEOUT = 180.0
MARKER = re.compile(r"<!--\s*check:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\S*)\s*$")
SENTINEL = "__DOCS_CHECK_BLOCK_DONE__"
KINDS = (
    "file",
    "output",
    "sample",
    "scenario",
    "config",
    "repo-copy",
    "skip",
    "timeout",
    "figure",
    "restart",
    "listing",
)


class DocError(Exception):
    """A doc that fails its check; the message says where and why."""


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marks: dict[str, str] = field(default_factory=dict)
    figure: bool = False

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def parse(page: Path) -> tuple[list[Block], list[int]]:
    """The page's fenced blocks with their markers, and its page-level ports."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    ports: list[int] = []
    pending: dict[str, str] = {}
    in_figure = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("<!-- figures:"):
            in_figure = True
        elif line.startswith("<!-- /figures"):
            in_figure = False
        for found in MARKER.finditer(line):
            word, _, rest = found.group(1).partition(" ")
            if word == "ports":
                ports.extend(int(p) for p in rest.split())
            elif word in KINDS:
                pending[word] = rest.strip()
            else:
                raise DocError(f"{page.name}:{i + 1}: unknown check marker {word!r}")
        fence = FENCE.match(line)
        if fence and not fence.group(1):
            raise DocError(f"{page.name}:{i + 1}: a code block needs a language (sh, text, ...)")
        if fence:
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and lines[i] != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise DocError(f"{page.name}:{start + 1}: unclosed code block")
            blocks.append(
                Block(page, start + 1, fence.group(1), "\n".join(body) + "\n", pending, in_figure)
            )
            pending = {}
        elif line.strip() and not line.lstrip().startswith("<!--"):
            pending = {}  # a marker speaks of the block right after it
        i += 1
    return blocks, ports


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def substitute(text: str, ports: dict[int, int]) -> str:
    for old, new in ports.items():
        text = re.sub(rf"(?<![\d.]){old}(?!\d)", str(new), text)
    return text


def copy_repo(dest: Path) -> None:
    """The repository's files as git sees them (tracked and untracked, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def check_toml(block: Block, kind: str) -> None:
    """Load a TOML block the way callboard would, without running anything."""
    try:
        raw = tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as exc:
        raise DocError(f"{block.where}: not valid TOML: {exc}") from None
    if kind == "scenario":
        from sims.scenario import structure

        raw.setdefault("name", "docs-fragment")
        raw.setdefault("accounts", [{"profile": "groq-free"}])
        try:
            structure(raw, block.where)
        except Exception as exc:
            raise DocError(f"{block.where}: scenario refused:\n{exc}") from None
    else:
        from engine.serve.live_config import structure_config

        raw.setdefault("providers", [{"name": "p", "base_url": "http://127.0.0.1:1/v1"}])
        try:
            structure_config(raw, block.where)
        except Exception as exc:
            raise DocError(f"{block.where}: config refused:\n{exc}") from None


class Shell:
    """One bash process per page: blocks run in turn, background jobs live until close()."""

    def __init__(self, cwd: Path, log: Path) -> None:
        env = dict(os.environ)
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
        env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
        env.pop("PYTHONPATH", None)
        self.log = log
        self._stderr = log.open("w")
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,  # its own process group: close() stops exactly these
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, script: str, where: str, timeout: float) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(
            f"set -eo pipefail\n{script}\nset +eo pipefail\nprintf '\\n{SENTINEL}\\n'\n"
        )
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                line = ""
            if line is None or (not line and self.proc.poll() is not None):
                raise DocError(
                    f"{where}: the command failed (exit {self.proc.poll()})\n"
                    f"--- its output:\n{''.join(out)}--- stderr (tail):\n{self._tail()}"
                )
            if line == f"{SENTINEL}\n":
                text = "".join(out)
                return text[:-1] if text.endswith("\n") else text
            out.append(line)
            if time.monotonic() > deadline:
                raise DocError(
                    f"{where}: still running after {timeout:.0f} s\n"
                    f"--- its output:\n{''.join(out)}--- stderr (tail):\n{self._tail()}"
                )

    def _tail(self, lines: int = 30) -> str:
        self._stderr.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) + "\n"

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            end = time.monotonic() + wait
            while time.monotonic() < end:
                self.proc.poll()  # reap bash: a zombie still counts as a member of its group
                try:
                    os.killpg(self.proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        self.proc.wait()
        self._stderr.close()


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def check_page(page: Path, keep: bool = False, show: bool = False) -> tuple[int, int]:
    """Run one page; returns (commands run, outputs compared)."""
    blocks, ports = parse(page)
    mapping = dict(zip(ports, free_ports(len(ports)), strict=True))
    for block in blocks:
        if block.figure:
            continue
        if not block.marks and block.lang != "sh":
            raise DocError(
                f"{block.where}: a ```{block.lang} block needs a <!-- check: ... --> marker "
                "(file NAME, output, sample, listing, scenario or config)"
            )
        if block.lang != "sh" and ("skip" in block.marks or "repo-copy" in block.marks):
            raise DocError(f"{block.where}: skip / repo-copy apply to sh blocks only")
    if not any(
        b.lang == "sh" or "file" in b.marks or b.marks.keys() & {"scenario", "config"}
        for b in blocks
    ):
        return 0, 0
    work = Path(tempfile.mkdtemp(prefix=f"docs-check-{page.stem}-"))
    for block in blocks:
        if "file" in block.marks:
            (work / block.marks["file"]).write_text(substitute(block.text, mapping))
        for kind in ("scenario", "config"):
            if kind in block.marks:
                check_toml(block, kind)
    run = compared = 0
    shell = Shell(work, work / ".stderr.log")
    last_output: str | None = None
    try:
        for block in blocks:
            if block.lang == "sh" and not block.figure:
                if "skip" in block.marks or "figure" in block.marks:
                    if not (block.marks.get("skip") or block.marks.get("figure")):
                        raise DocError(f"{block.where}: skip needs a reason, figure a name")
                    last_output = None
                    continue
                if "restart" in block.marks:
                    shell.close()
                    shell = Shell(work, work / ".stderr.log")
                script = substitute(block.text, mapping)
                if "repo-copy" in block.marks:
                    copy = work / "repo"
                    copy.mkdir(exist_ok=True)
                    copy_repo(copy)
                    script = f"cd {copy}\n{script}\ncd {work}"
                timeout = float(block.marks.get("timeout") or DEFAULT_TIMEOUT)
                started = time.monotonic()
                last_output = shell.run(script, block.where, timeout)
                print(f"  ok  {block.where} ({time.monotonic() - started:.1f} s)", flush=True)
                if show and last_output.strip():
                    print("    " + last_output.rstrip().replace("\n", "\n    "), flush=True)
                run += 1
            elif "output" in block.marks:
                if last_output is None:
                    raise DocError(f"{block.where}: an output block with no command before it")
                want = normalise(substitute(block.text, mapping))
                if normalise(last_output) != want:
                    raise DocError(
                        f"{block.where}: the command printed something else.\n"
                        f"--- the doc says:\n{want}\n--- it printed:\n{normalise(last_output)}"
                    )
                compared += 1
    finally:
        shell.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return run, compared


def main(argv: list[str]) -> int:
    keep = "--keep" in argv  # leave each page's folder behind, to look at
    show = "--show" in argv  # print what each command printed (to refresh a sample)
    named = [ROOT / a for a in argv if not a.startswith("--")]
    started = time.monotonic()
    sys.path.insert(0, str(ROOT))
    for script in () if named else ("figures.py", "reference.py"):
        print(f"docs/{script} --check", flush=True)
        done = subprocess.run([sys.executable, str(DOCS / script), "--check"], cwd=ROOT)
        if done.returncode != 0:
            print(f"docs check: docs/{script} --check failed", file=sys.stderr)
            return 1
    total_run = total_compared = 0
    for page in named or pages():
        print(f"{page.relative_to(ROOT)}", flush=True)
        try:
            run, compared = check_page(page, keep, show)
        except DocError as exc:
            print(f"docs check FAILED: {exc}", file=sys.stderr)
            return 1
        total_run += run
        total_compared += compared
    print(
        f"docs check: {total_run} command blocks ran, {total_compared} outputs matched, "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
