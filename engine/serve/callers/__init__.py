"""Caller keys and budgets for ``callboard serve`` (``[callers]``)."""

from engine.serve.callers.budget import CallerBudgets, OverBudget, Ticket
from engine.serve.callers.config import BudgetConfig, CallersConfig
from engine.serve.callers.gate import CallerGate, Meter, check_exposure
from engine.serve.callers.keys import CallerKey, KeyRing, Unauthorized, digest, new_key

__all__ = [
    "BudgetConfig",
    "CallerBudgets",
    "CallerGate",
    "CallerKey",
    "CallersConfig",
    "KeyRing",
    "Meter",
    "OverBudget",
    "Ticket",
    "Unauthorized",
    "check_exposure",
    "digest",
    "new_key",
]
