"""The autoscaler: powers self-hosted replicas on and off with demand.

Every ``interval`` it measures demand (calls in flight and queued at the group's
replicas, plus requests the router has waiting for capacity), sizes the group
so that demand fills ``target_utilisation`` of the slots, multiplies by
``overprovision`` to run ahead of demand, and powers replicas on at once (they
serve after their cold start) or off one at a time after ``scale_down_after``
seconds of lower demand. Replicas beyond ``min_replicas`` start powered off.
"""

from __future__ import annotations

import collections
import math
from typing import Protocol

import attrs

from actors.provider import PowerOff, PowerOn, Provider
from actors.runtime import clock
from actors.runtime.actor import Actor
from actors.runtime.errors import InvalidSetting, require


class WaitingLine(Protocol):
    """Where requests wait for capacity before any replica sees them (the router's line)."""

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        ...


def _check(field: str, ok: bool, value: object, allowed: str) -> None:
    require(f"autoscaler.{field}", ok, value, allowed)


@attrs.frozen
class AutoscalerConfig:
    group: str
    min_replicas: int = 1
    max_replicas: int = 8
    target_utilisation: float = 0.7
    overprovision: float = 1.0
    scale_down_after: float = 300.0
    interval: float = 10.0

    def __attrs_post_init__(self) -> None:
        _check("min_replicas", self.min_replicas >= 0, self.min_replicas, ">= 0")
        _check(
            "max_replicas",
            self.max_replicas >= max(1, self.min_replicas),
            self.max_replicas,
            f">= max(1, min_replicas={self.min_replicas})",
        )
        _check(
            "target_utilisation",
            0 < self.target_utilisation <= 1,
            self.target_utilisation,
            "a share in (0, 1]",
        )
        _check("overprovision", self.overprovision >= 1, self.overprovision, ">= 1")
        _check("scale_down_after", self.scale_down_after >= 0, self.scale_down_after, ">= 0 s")
        _check("interval", self.interval > 0, self.interval, "> 0 s")


@attrs.frozen
class ScalingEvent:
    """The autoscaler powered a replica on or off."""

    #: When the autoscaler acted.
    time: float
    action: str  # "up" or "down"
    #: The replica it powered on or off.
    replica: str
    #: The demand it sized for: calls in flight and queued at the replicas, and requests
    #: waiting for capacity.
    demand: int
    #: The replicas it wanted powered.
    desired: int


@attrs.frozen
class _Tick:
    pass


class Autoscaler(Actor):
    """Powers replicas of one account group on and off with the demand; ``events`` keeps
    every decision, or the latest ``keep``."""

    def __init__(
        self,
        config: AutoscalerConfig,
        replicas: list[Provider],
        line: WaitingLine,
        keep: int | None = None,
    ) -> None:
        super().__init__("autoscaler")
        if not replicas:
            raise InvalidSetting("autoscaler.group", config.group, "an account group of the fleet")
        _check(
            "max_replicas",
            config.max_replicas <= len(replicas),
            config.max_replicas,
            f"at most the group's {len(replicas)} accounts",
        )
        self.config = config
        self.replicas = replicas
        self.line = line
        self.events: collections.deque[ScalingEvent] = collections.deque(maxlen=keep)
        self._low_since: float | None = None
        # The autoscaler's own record of what it powered; a replica applies a power
        # message a moment later, and the next decision must not count it twice.
        self.on: dict[str, bool] = {r.spec.name: True for r in replicas}

    def on_start(self) -> None:
        # Only min_replicas are warm when the run begins.
        for replica in self.replicas[self.config.min_replicas :]:
            self._power(replica, False)
        self.every(self.config.interval, _Tick)

    def _power(self, replica: Provider, on: bool) -> None:
        self.on[replica.spec.name] = on
        replica.tell(PowerOn() if on else PowerOff())

    def active(self) -> list[Provider]:
        return [r for r in self.replicas if self.on[r.spec.name]]

    def demand(self) -> int:
        busy = sum(r.slots.in_use + r.slots.queued for r in self.active())
        return busy + self.line.waiting

    def desired(self, demand: int) -> int:
        cfg = self.config
        per_replica = self.replicas[0].spec.max_concurrency * cfg.target_utilisation
        needed = math.ceil(demand * cfg.overprovision / per_replica)
        return max(cfg.min_replicas, min(cfg.max_replicas, needed))

    async def receive(self, message: object) -> None:
        if not isinstance(message, _Tick):
            raise TypeError(f"autoscaler got an unknown message {message!r}")
        now = clock.now()
        demand = self.demand()
        desired = self.desired(demand)
        active = self.active()
        if desired > len(active):
            self._low_since = None
            stopped = [r for r in self.replicas if not self.on[r.spec.name]]
            for replica in stopped[: desired - len(active)]:
                self._power(replica, True)
                self.events.append(ScalingEvent(now, "up", replica.spec.name, demand, desired))
        elif desired < len(active):
            if self._low_since is None:
                self._low_since = now
            elif now - self._low_since >= self.config.scale_down_after:
                idle = [r for r in reversed(active) if r.slots.in_use + r.slots.queued == 0]
                if idle:
                    self._power(idle[0], False)
                    self.events.append(
                        ScalingEvent(now, "down", idle[0].spec.name, demand, desired)
                    )
                    self._low_since = now
        else:
            self._low_since = None
