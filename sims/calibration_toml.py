"""A calibration written as a scenario file `callboard simulate` loads, every figure with a
comment saying where it came from, from how many values, and how well it fits.

Numbers are written to six significant digits and everything in a fixed order, so the
same traces give the same bytes.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterable
from typing import Any

from sims.account_fit import CUT, LIMIT_UNITS, AccountFit, RevealedLimit, Window
from sims.calibrate import CalibratedAccount, Calibration
from sims.fits import Fit, Interval
from sims.profiles import PROFILES
from sims.workload import TURN_KINDS
from sims.workload_fit import KindFit, WorkloadFit

#: Seconds of simulated time after the traces' span, for conversations still running.
MARGIN = 3600.0
#: A fault window's kind and extra keys for each failure code that stands out in an hour.
WINDOW_KINDS = {
    "rate_limited": "rate_limit",
    "overloaded": "overload",
    "upstream_error": "errors",
    "timeout": "hang",
}
#: The limit a header states is per minute for OpenAI, Anthropic and Groq's token limits.
LIMIT_PER = 60.0


def scenario_toml(calibration: Calibration, name: str) -> str:
    """The scenario, as TOML text."""
    lines = _header(calibration, name)
    lines += _workload(calibration.workload)
    for account in calibration.accounts:
        lines += ["", *_account(account)]
    for account in calibration.accounts:
        if account.fit is not None:
            for window in account.fit.windows:
                lines += ["", *_window(account.name, account.fit, window)]
    return "\n".join(lines) + "\n"


def _header(calibration: Calibration, name: str) -> list[str]:
    observed = calibration.observed
    began = datetime.datetime.fromtimestamp(observed.epoch_ns / 1e9, datetime.UTC)
    described = {
        "callboard": "callboard's request spans with their attempts",
        "genai": "an app's GenAI client spans (one request, one attempt each; accounts are models)",
    }[observed.source]
    lines = [
        "# Calibrated by `callboard calibrate` from traces: every figure says where it came from.",
        f"# Files: {', '.join(calibration.files)}",
        f"# Spans: {described}; {len(observed.requests)} requests over "
        f"{_duration(calibration.span)} from {began.isoformat(timespec='seconds')}.",
        "# Times are seconds from the first span. Intervals are 99%.",
        f"name = {_str(name)}",
        f"description = {_str(f'calibrated from {len(calibration.files)} trace file(s)')}",
        "seed = 1",
        f"# The traces' span and {MARGIN:.0f} s for conversations still under way.",
        f"duration = {_num(math.ceil(calibration.span) + MARGIN)}",
    ]
    return lines


def _workload(workload: WorkloadFit) -> list[str]:
    lines = ["", "[workload]"]
    lines.append(
        f"# {workload.conversations} conversations (requests grouped by session id; "
        f"a request without one is a conversation of one turn), {workload.requests} requests."
    )
    if workload.daily_curve is not None:
        days = max(workload.span / 86400.0, 1.0)
        lines += [
            f"# The traces cover {days:.1f} days: conversations per day, starting by hour "
            "(hours from the first span) as counted.",
            f"interviews = {max(1, round(workload.conversations / days))}",
            'arrival = "daily"',
            f"daily_curve = [{', '.join(_num(v) for v in workload.daily_curve)}]",
        ]
    else:
        per_minute = workload.rate_per_minute
        lines += [
            f"interviews = {workload.conversations}",
            f"# Conversations starting: {_interval(per_minute)} per minute over "
            f"{_duration(workload.span)} (under a day: one Poisson rate).",
            'arrival = "poisson"',
            f"rate_per_minute = {_num(per_minute.estimate)}",
        ]
    lines += _plan(workload)
    if workload.think_time is not None:
        lines.append(
            "# Think time (a previous answer's end to the next request): "
            f"{workload.think_time.describe()}."
        )
        lines.append(f"think_time = {_inline(workload.think_time.spec())}")
    else:
        lines.append(
            f"# Think time: {workload.think_times} gaps seen, too few to fit; the default kept."
        )
    lines += _sizes(workload)
    hits = workload.cache_hits
    lines.append(
        f"# Answered from the cache: {_interval(hits)} of requests"
        " (what a cache served; prompts themselves are not in the spans)."
    )
    lines.append(f"# Outcomes: {', '.join(f'{k} {v}' for k, v in workload.outcomes.items())}.")
    return lines


def _plan(workload: WorkloadFit) -> list[str]:
    lines = []
    if workload.turns is not None:
        lines.append(f"# Requests per conversation: {workload.turns.describe()}.")
    plan = workload.plan
    if plan and all(kind in TURN_KINDS for kind in plan):
        lines.append(
            "# The most common sequence of turn kinds "
            f"({workload.plan_share:.0%} of conversations)."
        )
        lines.append(f"turns = {len(plan)}")
        lines.append(f"plan = [{', '.join(_str(k) for k in plan)}]")
        return lines
    turns = workload.turns_median
    lines.append(
        "# No turn kinds the simulator knows in the traces: every turn a follow_up "
        f"(conversational, never a cache hit), {turns} a conversation (the median)."
    )
    lines.append(f"turns = {turns}")
    lines.append(f"plan = [{', '.join([_str('follow_up')] * turns)}]")
    return lines


def _sizes(workload: WorkloadFit) -> list[str]:
    lines = []
    kinds = {k.kind: k for k in workload.kinds}
    known = [k for k in kinds if k in TURN_KINDS]
    for kind_fit in workload.kinds:
        lines += _kind_comment(kind_fit)
    for kind in known:
        output = kinds[kind].output_tokens
        if output is not None:
            lines.append(f"{kind}_tokens = {_inline(output.spec())}")
    if not known:
        everything = [k.output_tokens for k in workload.kinds if k.output_tokens is not None]
        if len(everything) == 1 and everything[0] is not None:
            lines.append(f"follow_up_tokens = {_inline(everything[0].spec())}")
    return lines


def _kind_comment(kind_fit: KindFit) -> list[str]:
    name = kind_fit.kind or "(no kind)"
    lines = [f"# Turn kind {name}: {kind_fit.requests} requests."]
    for label, size in (("input", kind_fit.input_tokens), ("output", kind_fit.output_tokens)):
        if size is None:
            lines.append(f"#   tokens {label}: too few answered to fit.")
        else:
            lines.append(f"#   tokens {label}: mean {_interval(size.mean)}; {size.describe()}.")
    return lines


def _account(account: CalibratedAccount) -> list[str]:
    lines = ["[[accounts]]"]
    fit = account.fit
    if fit is None:
        lines.append(
            f"# Account {account.name}: {account.answered} answered of {account.attempts} "
            f"attempts, fewer than needed to fit: the {account.profile} profile's "
            "latency, errors and limits are kept."
        )
    else:
        lines.append(
            f"# Account {account.name} (provider {fit.provider or 'unknown'}): "
            f"{fit.attempts} attempts, {fit.answered} answered; simulated as {account.name}-1."
        )
        lines.append(f"# Prices from the {account.profile} profile.")
    lines += [
        f"profile = {_str(account.profile)}",
        f"name = {_str(account.name)}",
    ]
    if account.model is not None:
        lines.append(f"model = {_str(account.model)}")
    if fit is None:
        return lines
    lines += _concurrency(account, fit)
    lines += _limits(fit)
    lines += _limit_tables(fit)
    lines += _latency(fit)
    lines += _errors(fit)
    return lines


def _concurrency(account: CalibratedAccount, fit: AccountFit) -> list[str]:
    allowed = PROFILES[account.profile].spec.max_concurrency
    line = f"# At most {fit.peak_concurrency} in flight at once were seen"
    if allowed is not None and fit.peak_concurrency > allowed:
        return [
            f"{line}, more than the profile's {allowed}.",
            f"max_concurrency = {fit.peak_concurrency}",
        ]
    return [f"{line}; the profile's {allowed} kept."]


def _limits(fit: AccountFit) -> list[str]:
    lines = []
    if fit.rate_limited_at:
        first, last = fit.rate_limited_at[0], fit.rate_limited_at[-1]
        low, high = fit.minute_before_429 or (0, 0)
        lines.append(
            f"# {len(fit.rate_limited_at)} 429s, from {first:.0f} s to {last:.0f} s, each after "
            f"{low} to {high} attempts in the minute before (a requests-a-minute limit "
            "would meet them at one load; spread, they are the provider's own): "
            "modelled as the rate_limited share."
        )
    usable = [limit for limit in fit.limits if limit.unit in LIMIT_UNITS]
    if not usable:
        reached = "429s came" if fit.rate_limited_at else "no 429 came"
        lines.append(
            f"# No rate-limit header stated a limit and {reached}: no limit is modelled "
            "(the profile's are dropped)."
        )
        lines.append("limits = []")
        return lines
    for limit in fit.limits:
        if limit not in usable:
            lines.append(
                f"# Header unit {limit.unit!r} (limit {_num(limit.limit)}) has no scenario unit."
            )
    lines.append(
        "# The limits the rate-limit headers stated (a table each, after the account's keys)."
    )
    return lines


def _limit_tables(fit: AccountFit) -> list[str]:
    lines = []
    for limit in fit.limits:
        if limit.unit not in LIMIT_UNITS:
            continue
        lines += ["", "[[accounts.limits]]", _limit_comment(limit)]
        lines += [
            f"name = {_str(limit.unit + '_per_minute')}",
            f"unit = {_str(limit.unit)}",
            f"limit = {_num(limit.limit)}",
            f"per = {_num(LIMIT_PER)}",
        ]
    return lines


def _limit_comment(limit: RevealedLimit) -> str:
    reset = "" if limit.longest_reset is None else f", resets up to {_num(limit.longest_reset)} s"
    return (
        f"# {limit.responses} responses stated {_num(limit.limit)} {limit.unit}, "
        f"at least {_num(limit.lowest_remaining)} remaining{reset}; per minute assumed "
        "(what OpenAI's and Anthropic's headers describe)."
    )


def _latency(fit: AccountFit) -> list[str]:
    lines = ["", "[accounts.latency]"]
    if fit.ttft is None:
        assert fit.service is not None
        lines.append(
            "# Too few spans carry a time to first token: the whole call's duration is "
            "fitted, as service (first token and decoding not told apart)."
        )
        lines += _distribution("service", "Call duration", fit.service)
    else:
        lines += _distribution("ttft", "Time to first token", fit.ttft)
    if fit.tokens_per_s is not None:
        lines.append(
            f"# Decoding: output tokens / (attempt time - time to first token), summed over "
            f"answered attempts: {_interval(fit.tokens_per_s)} tokens/s."
        )
        if fit.tpot is not None:
            lines.append(
                f"#   Per token, per attempt: {fit.tpot.describe()}; the simulator decodes "
                "at one steady rate."
            )
        lines.append(f"tokens_per_s = {_num(fit.tokens_per_s.estimate)}")
    else:
        lines.append(
            "# Decoding: too few answered attempts with tokens after the first; "
            "the profile's rate kept."
        )
    if fit.output_tokens is not None:
        lines.append(f"# Output tokens of answered attempts: {fit.output_tokens.describe()}.")
        lines.append(f"output_tokens = {_inline(fit.output_tokens.spec())}")
    return lines


def _distribution(key: str, label: str, fitted: Fit) -> list[str]:
    lines = [f"# {label}: {fitted.describe()}."]
    if fitted.censored:
        cut = ", ".join(sorted(CUT | {"timeout"}))
        lines.append(f"#   Censored: attempts cut ({cut}) before a first token, at their length.")
    if fitted.median is not None and fitted.sigma is not None:
        lines.append(f"#   median {_interval(fitted.median)} s, sigma {_interval(fitted.sigma)}.")
    lines.append(f"#   mean {_interval(fitted.mean)} s.")
    lines.append(f"{key} = {_inline(fitted.spec())}")
    return lines


def _errors(fit: AccountFit) -> list[str]:
    windows = {w.hour for w in fit.windows}
    lines = ["", "[accounts.errors]"]
    trials = "attempts sent" if not windows else "attempts sent outside the fault windows below"
    lines.append(f"# Shares of {trials} (those the caller cut excluded).")
    if fit.hours:
        lines.append("# Hour by hour (hours from the first span): attempts, failures.")
        for hour in fit.hours:
            failures = ", ".join(f"{k} {v}" for k, v in hour.failures.items()) or "none"
            lines.append(f"#   hour {hour.hour}: {hour.attempts}, {failures}")
    else:
        lines.append("# The traces cover under 2 hours: one rate for all of it.")
    for code, share in fit.errors.items():
        lines.append(f"{code} = {_num(share.estimate)}  # {_interval(share)}")
    lines.append(
        f"# {fit.timeouts} timed out: fitted as times to first token censored at their "
        "length (the router's timeouts cut the tail), not as a rate."
    )
    lines.append("timeout = 0.0")
    if fit.other_errors:
        shown = ", ".join(f"{k} {v}" for k, v in fit.other_errors.items())
        lines.append(f"# Also seen, not modelled as an account's error rate: {shown}.")
    if fit.retry_after is not None:
        lines.append("# The median wait a 429 or an overload asked for.")
        lines.append(f"rate_limited_retry_after = {_num(fit.retry_after)}")
    return lines


def _window(name: str, fit: AccountFit, window: Window) -> list[str]:
    share, base = window.share, fit.errors[window.code].estimate
    extra = max(0.0, (share.estimate - base) / (1 - base)) if base < 1 else 0.0
    lines = [
        "[[faults]]",
        f"# Account {name}, hour {window.hour}: {window.code} {_interval(share)} of attempts, "
        f"against {_num(base)} outside such hours (binomial p = {window.p_value:.2g}).",
        f"target = {_str(name)}",
        f"kind = {_str(WINDOW_KINDS[window.code])}",
        f"start = {_num(window.hour * 3600.0)}",
        f"end = {_num((window.hour + 1) * 3600.0)}",
        f"share = {_num(min(extra, 1.0))}",
    ]
    if window.code in ("rate_limited", "overloaded") and fit.retry_after is not None:
        lines.append(f"retry_after = {_num(fit.retry_after)}")
    return lines


# --- TOML values -----------------------------------------------------------------------


def _num(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = f"{value:.6g}"
    return text if any(c in text for c in ".en") else text + ".0"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _inline(spec: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in spec.items()) + " }"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, Iterable):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return _num(value)


def _interval(interval: Interval) -> str:
    return f"{_num(interval.estimate)} ({_num(interval.low)} to {_num(interval.high)})"
