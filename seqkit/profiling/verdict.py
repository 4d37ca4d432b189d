"""Input-bound or compute-bound: what the model measurements (seqkit.profiling.model) conclude.

Kept apart from the measuring code so that reading a report never imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT_BOUND_SHARE = 0.2  # the model waits at least this share of each step: the generator is the bottleneck


@dataclass
class ModelStats:
    name: str
    first_step_seconds: float
    train_step_seconds: float
    fit_ready_step_seconds: float
    fit_step_seconds: float
    fit_steps: int
    # How far apart the ready-data fits were: a difference between real and ready fits no larger
    # than this is the machine's noise, not time spent waiting for data.
    fit_ready_spread_seconds: float = 0.0

    @property
    def input_wait_share(self) -> float:
        if self.fit_step_seconds <= 0:
            return 0.0
        return min(1.0, max(0.0, 1.0 - self.fit_ready_step_seconds / self.fit_step_seconds))

    @property
    def verdict(self) -> str:
        waited = self.fit_step_seconds - self.fit_ready_step_seconds
        if self.input_wait_share >= INPUT_BOUND_SHARE and waited > self.fit_ready_spread_seconds:
            return "input-bound"
        return "compute-bound"
