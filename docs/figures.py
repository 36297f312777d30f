"""Write every measured figure the docs quote, from the runs that measure it.

    .venv/bin/python docs/figures.py            # rewrite the figures in the pages
    .venv/bin/python docs/figures.py --check    # fail if a page's figures are stale
    .venv/bin/python docs/figures.py --full     # also the long runs (sizing: ~5 min)
    .venv/bin/python docs/figures.py --benches  # also the benchmarks (~5 min, noisy)
    .venv/bin/python docs/figures.py --benches --only bench-bench_reference  # just these
    .venv/bin/python docs/figures.py --screenshots  # also the screenshots (headless Chromium)

A figure sits in a page between ``<!-- figures:NAME -->`` and ``<!-- /figures -->``; this
script runs the command registered under NAME below (in a fresh folder, with the venv's
``bin`` first on ``PATH``), keeps its deterministic lines, and writes them there. The
command must appear word for word in the page too (in an ``sh`` block marked
``<!-- check: figure NAME -->``), so what a reader runs is what wrote the figure.
Simulations are seeded and byte-reproducible, so ``--check`` compares exactly. Runs
marked ``full`` are too long for CI: ``--check`` leaves them alone, ``--full`` rewrites
them; each says in its page which command prints it. Benchmarks (``bench``) run from the
repository's root, are noisy and machine-dependent, and are only ever written (by
``--benches``), never compared; screenshots (``screenshot``: their pixels depend on
Chromium's version and fonts) likewise, by ``--screenshots``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
REGION = re.compile(r"(<!-- figures:(\S+) -->\n)(.*?)(<!-- /figures -->)", re.S)


@dataclass
class Figure:
    command: str
    #: Lines that vary from run to run (wall time), dropped from the output.
    drop: str | None = None
    #: Turns the run's folder into the text written (default: its stdout in a text block).
    render: Callable[[str, Path], str] | None = None
    #: Files the run writes, copied into the repository (name in run folder -> repo path).
    copies: dict[str, str] = field(default_factory=dict)
    #: Too long for CI: written by --full only.
    full: bool = False
    #: A benchmark (noisy, machine-dependent): written by --benches only, never compared.
    bench: bool = False
    #: Screenshots (pixels vary with Chromium): written by --screenshots only, never compared.
    screenshot: bool = False


def text_block(out: str) -> str:
    return f"```text\n{out.rstrip()}\n```\n"


def image(name: str) -> Callable[[str, Path], str]:
    """The Markdown image line of ``name`` among those docs/screenshots.py printed."""

    def render(out: str, work: Path) -> str:
        (line,) = [line for line in out.splitlines() if f"(images/{name})" in line]
        return line + "\n"

    return render


def cache_by_kind(out: str, work: Path) -> str:
    """interview-day's cache use by turn kind, and its uncached burst, from results.json."""
    from sims.results import Results

    results = Results.from_json(next(work.glob("runs/*/results.json")).read_text())
    requests = results.requests
    rows = [
        "| turn kind | requests | served from the cache | misses: first | after a failure "
        "| in flight |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in results.cache.kinds or []:
        rows.append(
            f"| {row.kind} | {row.requests:,} | {row.hit_rate:.1%} | "
            f"{row.first:,} | {row.after_failure:,} | {row.in_flight:,} |"
        )
    burst = int(((requests.start < 900) & ~requests.cached).sum())
    rows.append("")
    rows.append(f"Requests that had to reach an account in the first 15 minutes: {burst:,}.")
    return "\n".join(rows) + "\n"


def autoscale(out: str, work: Path) -> str:
    """Two autoscale-coldstart runs (overprovision 1.0 and 1.5), side by side."""
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    rows = [
        "| overprovision | time to first token p95 | latency p95 | replica-hours | success |",
        "|---:|---:|---:|---:|---:|",
    ]
    for factor, run in zip(("1.0", "1.5"), runs, strict=True):
        rows.append(
            f"| {factor} | {run['ttft_p95']:.2f} s | {run['p95']:.2f} s | "
            f"{run['replica_hours']:.2f} | {run['success_rate']:.2%} |"
        )
    return "\n".join(rows) + "\n"


FIGURES: dict[str, Figure] = {
    "default-run": Figure(
        "callboard simulate --quiet",
        drop=r"^wall time .*|^report: |^\s+runs/",
    ),
    "burst-run": Figure(
        "callboard simulate interview-day --quiet",
        drop=r"^simulated .* of wall time$|^report: |^\s+runs/",
        copies={
            "figures/traffic.png": "reports/examples/interview-day-traffic.png",
            "figures/latency_over_time.png": "reports/examples/interview-day-latency.png",
        },
    ),
    "burst-run-cache": Figure("callboard simulate interview-day --quiet", render=cache_by_kind),
    "autoscale": Figure(
        "callboard simulate autoscale-coldstart --quiet --json --out warm-1.0\n"
        "callboard simulate autoscale-coldstart --quiet --json --out warm-1.5 "
        "--set autoscaler.overprovision=1.5",
        render=autoscale,
    ),
    **{
        f"experiment-{name}": Figure(f"callboard experiment {name} --quiet --out {name}")
        for name in ("hedging", "retry-budget", "breaker-thresholds")
    },
    "size-small": Figure(
        "callboard size interview-day --interviews 50,100 --accounts huggingface=1..16 "
        "--replications 2 --quiet --out size-small"
    ),
    "size-mix": Figure(
        "callboard size fleet-mix --mix --interviews 40,80 --accounts free=0..6 "
        "--accounts hf=0..6 --accounts haiku=0..6 --replications 2 --quiet --out size-mix"
    ),
    "size-tiers": Figure(
        "callboard size mixed-fleet --interviews 200 --accounts openai-strong=1..16 "
        "--replications 2 --baseline \"routing.tiers='strong_only'\" --quiet --out size-tiers"
    ),
    **{
        f"bench-{name}": Figure(f".venv/bin/python benches/{name}.py", bench=True)
        for name in (
            "bench_clock",
            "bench_actor",
            "bench_reference",
            "bench_fleet_size",
            "bench_memory",
            "bench_overhead",
            "bench_redis",
            "bench_decompress",
            "load_router",
        )
    },
    **{
        f"screenshot-{name}": Figure(
            ".venv/bin/python docs/screenshots.py", screenshot=True, render=image(f"{name}.png")
        )
        for name in ("status-page", "report-html")
    },
    "size-full": Figure(
        'callboard size interview-day --interviews 500,1000,2000 --slo "provider_p95<=5s" '
        '--slo "success>=99.5%" --accounts huggingface=1..192 --quiet --out size-full',
        full=True,
    ),
}


class Runs:
    """Each distinct command runs once, in its own folder, kept until close()."""

    def __init__(self) -> None:
        self.done: dict[str, tuple[str, Path]] = {}

    def get(self, name: str, figure: Figure) -> tuple[str, dict[str, bytes]]:
        if figure.command not in self.done:
            print(f"  figure {name}: {figure.command}", flush=True)
            work = Path(tempfile.mkdtemp(prefix=f"docs-figures-{name}-"))
            cwd = ROOT if figure.bench or figure.screenshot else work
            path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
            done = subprocess.run(
                ["bash", "-c", figure.command],
                cwd=cwd,
                env=dict(os.environ, PATH=path),
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"figure {name}: {figure.command!r} failed:\n{done.stderr}")
            self.done[figure.command] = (done.stdout, work)
        stdout, work = self.done[figure.command]
        kept = [
            line
            for line in stdout.splitlines()
            if not (figure.drop and re.search(figure.drop, line))
        ]
        out = "\n".join(kept).strip("\n") + "\n"
        text = figure.render(out, work) if figure.render else text_block(out)
        copies = {}
        for source, target in figure.copies.items():
            found = sorted(work.glob(f"runs/*/{source}")) or sorted(work.glob(source))
            copies[target] = found[0].read_bytes()
        return text, copies

    def close(self) -> None:
        for _, work in self.done.values():
            shutil.rmtree(work, ignore_errors=True)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    full = "--full" in argv
    benches = "--benches" in argv
    screenshots = "--screenshots" in argv
    # --only NAME[,NAME...]: run and write just these figures, leaving the others as they are.
    only = set(argv[argv.index("--only") + 1].split(",")) if "--only" in argv else None
    unknown = sorted((only or set()) - set(FIGURES))
    if unknown:
        raise SystemExit(f"--only: unknown figure(s) {', '.join(unknown)}")
    runs = Runs()
    stale: list[str] = []
    try:
        for page in pages():
            stale += fill_page(page, runs, check, full, benches, screenshots, only)
    finally:
        runs.close()
    if check and stale:
        print(
            "docs figures are stale (" + ", ".join(sorted(set(stale))) + "): "
            "run .venv/bin/python docs/figures.py and review the diff",
            file=sys.stderr,
        )
        return 1
    if not check:
        print("updated: " + (", ".join(sorted(set(stale))) or "nothing"))
    return 0


def fill_page(
    page: Path,
    runs: Runs,
    check: bool,
    full: bool,
    benches: bool,
    screenshots: bool = False,
    only: set[str] | None = None,
) -> list[str]:
    """Rewrite (or, with check, compare) one page's figures; returns what was stale."""
    text = page.read_text()
    stale: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in FIGURES:
            raise SystemExit(f"{page.name}: unknown figure {name!r}")
        figure = FIGURES[name]
        if figure.command not in text:
            raise SystemExit(
                f"{page.name}: figure {name!r}: its command is not in the page: {figure.command}"
            )
        if (figure.full and not full) or (figure.bench and (check or not benches)):
            return match.group(0)
        if figure.screenshot and (check or not screenshots):
            return match.group(0)
        if only is not None and name not in only:
            return match.group(0)
        body, copies = runs.get(name, figure)
        for target, data in copies.items():
            path = ROOT / target
            if not path.exists() or path.read_bytes() != data:
                stale.append(target)
                if not check:
                    path.write_bytes(data)
        return f"{match.group(1)}{body}{match.group(4)}"

    new = REGION.sub(fill, text)
    if new != text:
        stale.append(str(page.relative_to(ROOT)))
        if not check:
            page.write_text(new)
    return stale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
