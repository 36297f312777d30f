"""Request validation: reject what no provider can serve, before any provider sees it."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from actors.messages import OPENAI_FIELDS, ROLES, ChatRequest
from engine.routing.errors import InvalidRequest

_ROLE_SET = frozenset(ROLES)


def validate(
    request: ChatRequest, context_windows: dict[str, int], largest: int | None = None
) -> None:
    """Raise :class:`InvalidRequest` naming the first bad field.

    ``context_windows`` maps each model the router serves to its largest
    context window; ``"auto"`` lets the router choose among all of them.
    ``largest`` is the largest of them, if the caller keeps it at hand.
    """
    messages = request.messages
    if not messages:
        raise InvalidRequest("messages", [], "at least one message")
    # A quick pass for the common case; the loop below only runs to name the culprit.
    roles_ok = request.prompt_chars >= 0
    if roles_ok:
        for message in messages:
            if message.role not in _ROLE_SET:
                roles_ok = False
                break
    if not roles_ok:
        for i, message in enumerate(messages):
            if message.role not in _ROLE_SET:
                raise InvalidRequest(f"messages[{i}].role", message.role, " | ".join(ROLES))
            if not isinstance(message.content, str):
                raise InvalidRequest(f"messages[{i}].content", message.content, "a string")
    temperature = request.temperature
    if temperature is not None and not (
        isinstance(temperature, int | float) and 0 <= temperature <= 2
    ):
        raise InvalidRequest("temperature", temperature, "a number in [0, 2]")
    if request.max_tokens is not None and not (
        isinstance(request.max_tokens, int) and request.max_tokens >= 1
    ):
        raise InvalidRequest("max_tokens", request.max_tokens, "an integer >= 1, or unset")
    if request.deadline is not None and not (
        isinstance(request.deadline, int | float) and request.deadline > 0
    ):
        raise InvalidRequest("deadline", request.deadline, "> 0 seconds, or unset")
    priority = request.priority
    if priority and not (
        isinstance(priority, int) and not isinstance(priority, bool) and priority > 0
    ):
        raise InvalidRequest("priority", priority, "an integer >= 0 (0 first)")
    if request.model == "auto":
        window = max(context_windows.values(), default=0) if largest is None else largest
    else:
        window = context_windows.get(request.model, -1)
        if window < 0:
            allowed = " | ".join(["auto", *sorted(context_windows)])
            raise InvalidRequest("model", request.model, allowed)
    needed = request.prompt_tokens + (request.max_tokens or 0)
    if needed > window:
        raise InvalidRequest(
            "messages",
            f"{request.prompt_tokens} prompt tokens + {request.max_tokens or 0} max_tokens",
            f"at most {window} tokens in all (context window of {request.model!r})",
        )


def check_needs(
    request: ChatRequest, capabilities: Mapping[str, Collection[frozenset[str]]]
) -> None:
    """Raise :class:`InvalidRequest` naming the field whose need no provider of the
    request's model meets (``capabilities``: model -> its providers' capability sets).

    A request whose needs are each met, but never all by one provider, is refused
    naming its first need, since no provider could answer it whole.
    """
    needs = request.needs
    if not needs:
        return
    if request.model == "auto":
        sets = [c for each in capabilities.values() for c in each]
    else:
        sets = list(capabilities.get(request.model, ()))
    wanted = frozenset(need for need, _ in needs)
    if any(wanted <= have for have in sets):
        return
    where = "any provider" if request.model == "auto" else f"a provider of model {request.model!r}"
    unmet = [pair for pair in needs if not any(pair[0] in have for have in sets)]
    if unmet:
        need, field = unmet[0]
        if need == OPENAI_FIELDS:
            allowed = f"a field {where} can take: only OpenAI-compatible providers take it"
        else:
            allowed = f"a request {where} can answer: none declares the capability {need!r}"
    else:
        need, field = needs[0]
        every = ", ".join(f"{n} ({f})" for n, f in needs)
        allowed = f"a request one provider can answer whole: none has all of {every}"
    raise InvalidRequest(field, _field_value(request, field), allowed)


_STEP = re.compile(r"\.?([A-Za-z_]\w*)|\[(\d+)\]")


def _field_value(request: ChatRequest, field: str) -> object:
    """The value at ``field`` (``seed``, ``messages[0].content[1]``) in the client's body."""
    value: object = request.body or {}
    for name, index in _STEP.findall(field):
        try:
            value = value[name] if name else value[int(index)]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return value
