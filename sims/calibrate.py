"""Calibration: trace files in, the fitted accounts and workload out, ready to write as a
scenario (:mod:`sims.calibration_toml`).

Accounts are callboard's accounts when the traces are callboard's, models when they are
an app's bare GenAI spans (an app calling a provider directly names no account). An
account with too few answered attempts to fit is an error naming it, unless ``sparse``
is ``"default"``: then it keeps its profile's figures, and the scenario says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs

from actors.runtime.errors import InvalidSetting
from sims.account_fit import MIN_ANSWERED, AccountFit, answered, attempts_of, fit_account
from sims.observed import Observed, read_traces
from sims.workload_fit import WorkloadFit, fit_workload

#: How an account too sparse to fit is handled.
SPARSE = ("error", "default")
#: The profile an account starts from (its prices and concurrency), by its
#: ``gen_ai.provider.name``; the calibrated figures replace the rest.
PROFILE_OF = {
    "openai": "openai-paid",
    "anthropic": "anthropic-tier1",
    "groq": "groq-free",
    "huggingface": "huggingface",
    "self-hosted": "selfhosted-8b",
}
FALLBACK_PROFILE = "openai-paid"


@attrs.frozen
class CalibratedAccount:
    """One account of the scenario: fitted, or (too sparse) its profile's defaults."""

    name: str
    profile: str
    model: str | None
    attempts: int
    answered: int
    fit: AccountFit | None  # None: too few answered attempts, the profile's figures kept


@attrs.frozen
class Calibration:
    """Everything a calibrated scenario says, with the evidence for it."""

    files: tuple[str, ...]
    observed: Observed
    accounts: tuple[CalibratedAccount, ...]
    workload: WorkloadFit
    span: float  # seconds from the first span's start to the last one's end


def calibrate(paths: Sequence[str | Path], *, sparse: str = "error") -> Calibration:
    """Fit the accounts and workload of the traces in ``paths``."""
    if sparse not in SPARSE:
        raise InvalidSetting("sparse", sparse, " | ".join(SPARSE))
    observed = read_traces(paths)
    requests = observed.requests
    span = max(max(r.end for r in requests), max(r.start for r in requests))
    groups = attempts_of(requests, by_model=observed.source == "genai")
    if not groups:
        raise InvalidSetting(
            "traces", [str(p) for p in paths], "traces with attempts sent to an account; none"
        )
    accounts = []
    for name in sorted(groups):
        attempts = groups[name]
        seen = len(answered(attempts))
        provider = next((a.provider for a in attempts if a.provider), None)
        profile = PROFILE_OF.get(provider or "", FALLBACK_PROFILE)
        model = next((a.model for a in attempts if a.model), None)
        if seen < MIN_ANSWERED and sparse == "error":
            raise InvalidSetting(
                f"accounts.{name}",
                seen,
                "",
                message=f"account {name}: {seen} answered attempts (of {len(attempts)} "
                f"attempts); {MIN_ANSWERED} are needed to fit its latency "
                "(--sparse default keeps its profile's figures instead)",
            )
        fitted = fit_account(name, attempts, span) if seen >= MIN_ANSWERED else None
        accounts.append(CalibratedAccount(name, profile, model, len(attempts), seen, fitted))
    return Calibration(
        files=tuple(str(p) for p in paths),
        observed=observed,
        accounts=tuple(accounts),
        workload=fit_workload(requests),
        span=span,
    )
