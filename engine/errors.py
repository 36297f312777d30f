"""Every error callboard raises on purpose, in one tree; catch ``CallboardError`` for all.

Each class lives beside the layer that raises it (last column) and carries a ``code``
(logs, metrics, the outcomes in results.json, the ``code`` of an HTTP error body), the
``status`` the live surface answers with, and ``retry_after``: seconds after which trying
again may succeed, None unless known (sent as ``Retry-After``).

Our error tree (name, code, status, module)::

    * CallboardError            error                   500  actors.runtime.errors
      * FieldError              invalid_value           400  actors.runtime.errors
        * InvalidSetting        invalid_setting         400  actors.runtime.errors
        * InvalidRequest        invalid_request         400  engine.routing.errors
      * ConfigError             invalid_config          500  engine.routing.config
        * ScenarioError         invalid_config          500  sims.scenario
          * ExperimentError     invalid_config          500  sims.experiment
      * Overloaded              overloaded              503  actors.runtime.errors
        * LineFull              overloaded              503  engine.routing.errors
      * ShuttingDown            shutting_down           503  actors.runtime.errors
      * ActorCrashed            actor_crashed           500  actors.runtime.errors
      * AttemptError            attempt_failed          500  actors.errors
        * RateLimited           rate_limited            429  actors.errors
        * UpstreamError         upstream_error          502  actors.errors
          * BackendFailed       upstream_error          502  actors.errors
          * ConnectionFailed    upstream_error          502  actors.backends.http
            * Unreachable       unreachable             502  actors.backends.http
          * StreamBroken        upstream_error          502  actors.backends.http
        * UpstreamRejected      upstream_rejected       502  actors.backends.http
        * AttemptTimeout        timeout                 504  actors.errors
        * DeadlineReached       deadline                504  actors.errors
        * AnswerCapReached      answer_cap              504  actors.errors
        * ProviderOverloaded    overloaded              503  actors.errors
        * MalformedReply        malformed_reply         502  actors.errors
          * AnswerTooLarge      malformed_reply         502  actors.backends.caps
            * EventTooLarge     malformed_reply         502  actors.backends.caps
            * InflatedTooLarge  malformed_reply         502  actors.backends.caps
            * LineTooLong       malformed_reply         502  actors.backends.caps
            * ReplyTooLarge     malformed_reply         502  actors.backends.caps
            * StreamTooLarge    malformed_reply         502  actors.backends.caps
        * AuthFailed            auth_failed             502  actors.errors
        * QueueFull             queue_full              503  actors.errors
        * CircuitOpen           circuit_open            503  actors.errors
        * StreamAlreadyStarted  stream_interrupted      500  actors.backends.sink
      * RequestFailed           request_failed          502  engine.routing.errors
        * NoProviderAvailable   no_provider             503  engine.routing.errors
          * Shed                shed                    503  engine.routing.errors
          * LineFull            overloaded              503  engine.routing.errors
        * DeadlineExceeded      deadline_exceeded       504  engine.routing.errors
        * RetryBudgetExhausted  retry_budget_exhausted  503  engine.routing.errors
      * UnknownSession          session_not_found       404  engine.serve.sessions
      * SessionBusy             session_busy            409  engine.serve.sessions
      * Unauthorized            invalid_api_key         401  engine.serve.callers.keys
      * OverBudget              rate_limit_exceeded     429  engine.serve.callers.budget
      * NotAdmin                not_admin               403  engine.serve.callers.gate
      * BodyTooLarge            body_too_large          413  engine.serve.context
      * BodyTimeout             body_timeout            408  engine.serve.context
      * NotFound                not_found               404  engine.serve.app
      * MethodNotAllowed        method_not_allowed      405  engine.serve.app
      * AddressInUse            address_in_use          500  engine.serve.asgi
      * WorkerMismatch          worker_mismatch         500  sims.pool

Read it by what a caller does next:

- ``FieldError``: a value is wrong and names its field. ``InvalidSetting`` (a config,
  scenario, ``--set`` or option) is raised while loading, before anything runs;
  ``InvalidRequest`` (a chat request's field) per request, before any provider sees it.
- ``ConfigError``: a file that cannot run, with every problem listed by key.
- ``Overloaded``, ``ShuttingDown``: capacity, not the request: try again after
  ``retry_after``. ``LineFull`` is both an ``Overloaded`` and a ``NoProviderAvailable``.
- ``AttemptError``: one attempt at one provider failed (``retryable`` says whether
  another may succeed); the router retries or fails over, and when it gives up raises a
  ``RequestFailed`` that lists them in ``attempts``.
- ``RequestFailed``: the router gave up on a valid request; ``attempts`` lists what it
  tried, ``code`` says why.
- The live surface's own (sessions, caller keys, request bodies, routes, its address)
  are imported with the live router: ``engine`` exports the session errors an embedding
  app meets (``UnknownSession``, ``SessionBusy``); the rest become HTTP answers.
  Which errors reach a client, with each status and code, is
  :data:`engine.serve.error_codes.ANSWERS` (printed in docs/reference.md).

Using the API wrongly (a router used after it closed, a negative seed passed to the
random streams) raises Python's own ``RuntimeError`` or ``ValueError``: a bug to fix,
not a failure to handle. This module re-exports the tree's engine-level classes;
:mod:`engine` exports them all.
"""

from __future__ import annotations

from actors.errors import (
    AnswerCapReached,
    AttemptError,
    AttemptTimeout,
    AuthFailed,
    CircuitOpen,
    MalformedReply,
    ProviderOverloaded,
    QueueFull,
    RateLimited,
    UpstreamError,
)
from actors.runtime.errors import (
    ActorCrashed,
    CallboardError,
    FieldError,
    InvalidSetting,
    Overloaded,
    ShuttingDown,
)
from engine.routing.config import ConfigError
from engine.routing.errors import (
    DeadlineExceeded,
    InvalidRequest,
    LineFull,
    NoProviderAvailable,
    RequestFailed,
    RetryBudgetExhausted,
    Shed,
)

__all__ = [
    "ActorCrashed",
    "AnswerCapReached",
    "AttemptError",
    "AttemptTimeout",
    "AuthFailed",
    "CallboardError",
    "CircuitOpen",
    "ConfigError",
    "DeadlineExceeded",
    "FieldError",
    "InvalidRequest",
    "InvalidSetting",
    "LineFull",
    "MalformedReply",
    "NoProviderAvailable",
    "Overloaded",
    "ProviderOverloaded",
    "QueueFull",
    "RateLimited",
    "RequestFailed",
    "RetryBudgetExhausted",
    "Shed",
    "ShuttingDown",
    "UpstreamError",
]
