"""What goes wrong on a real microscope, with a probability or magnitude for each.

An :class:`ImperfectionProfile` is pure configuration; the twin draws from it with its own
seeded generator (:class:`gridpilot_sim.instrument.microscope.TwinMicroscope`), so a session replays
exactly for a given seed. ``ImperfectionProfile.perfect()`` turns everything off (the
deterministic default for tests and training); ``ImperfectionProfile.realistic()`` gives values
typical of a Krios session:

- the stage lands a few µm away from where it was sent (uniform in a disc of
  ``stage_error_um``);
- after autofocus the defocus differs from the target by up to ``defocus_error_um``;
- a rough eucentric-height run leaves the specimen up to ``eucentric_error_um`` off the
  eucentric plane (a refinement a quarter of that);
- a stage move starts drift of ``drift_after_move_a_per_s`` Å/s that decays with time constant
  ``drift_settle_time_s`` towards ``drift_floor_a_per_s``;
- autofocus fails now and then (``autofocus_failure_probability``);
- an LN2 dewar refill pauses the microscope (``dewar_fill_probability`` per operation, lasting
  ``dewar_fill_duration_s``);
- the connection to the microscope is lost (``connection_loss_probability`` per command).

>>> ImperfectionProfile.perfect().any_active
False
>>> ImperfectionProfile.named("realistic").stage_error_um
2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

__all__ = ["ImperfectionProfile", "ProfileName"]

ProfileName = Literal["perfect", "realistic"]


@dataclass(frozen=True)
class ImperfectionProfile:
    """Magnitudes (µm, Å/s, s) and probabilities (per operation) of the twin's imperfections.

    Attributes
    ----------
    stage_error_um : float
        Largest distance between the requested and the reached stage position, µm.
    defocus_error_um : float
        Largest |achieved − target| defocus after an autofocus, µm.
    eucentric_error_um : float
        Largest height error left by a rough eucentric-height run, µm.
    drift_after_move_a_per_s : float
        Specimen drift right after a stage move, Å/s.
    drift_settle_time_s : float
        Exponential decay time of that drift, microscope seconds.
    drift_floor_a_per_s : float
        Drift that never goes away (thermal), Å/s.
    autofocus_failure_probability : float
        Probability that one autofocus fails (too little contrast, a jump).
    dewar_fill_probability : float
        Probability that an operation finds an LN2 refill starting.
    dewar_fill_duration_s : float
        How long a refill blocks the microscope, microscope seconds.
    connection_loss_probability : float
        Probability that one command finds the connection to the microscope lost.
    """

    stage_error_um: float = 0.0
    defocus_error_um: float = 0.0
    eucentric_error_um: float = 0.0
    drift_after_move_a_per_s: float = 0.0
    drift_settle_time_s: float = 30.0
    drift_floor_a_per_s: float = 0.0
    autofocus_failure_probability: float = 0.0
    dewar_fill_probability: float = 0.0
    dewar_fill_duration_s: float = 300.0
    connection_loss_probability: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value}")
            if f.name.endswith("_probability") and value > 1:
                raise ValueError(f"{f.name} must be in [0, 1], got {value}")
        if self.drift_settle_time_s == 0:
            raise ValueError("drift_settle_time_s must be > 0")

    @classmethod
    def perfect(cls) -> ImperfectionProfile:
        """Nothing goes wrong: exact stage, exact focus, no drift, no failures."""
        return cls()

    @classmethod
    def realistic(cls) -> ImperfectionProfile:
        """Typical of a well-kept Krios: µm stage errors, some drift, rare failures."""
        return cls(
            stage_error_um=2.0,
            defocus_error_um=0.15,
            eucentric_error_um=1.0,
            drift_after_move_a_per_s=8.0,
            drift_settle_time_s=30.0,
            drift_floor_a_per_s=0.3,
            autofocus_failure_probability=0.03,
            dewar_fill_probability=0.002,
            dewar_fill_duration_s=300.0,
            connection_loss_probability=0.001,
        )

    @classmethod
    def named(cls, name: str) -> ImperfectionProfile:
        """The profile called ``name`` ("perfect" or "realistic")."""
        if name == "perfect":
            return cls.perfect()
        if name == "realistic":
            return cls.realistic()
        raise ValueError(f"unknown imperfection profile {name!r}; known: perfect, realistic")

    @property
    def any_active(self) -> bool:
        """Whether anything at all can go wrong."""
        return any(
            getattr(self, name) > 0
            for name in ("stage_error_um", "defocus_error_um", "eucentric_error_um",
                         "drift_after_move_a_per_s",
                         "drift_floor_a_per_s", "autofocus_failure_probability",
                         "dewar_fill_probability", "connection_loss_probability")
        )

    def drift_rate_a_per_s(self, seconds_since_move: float) -> float:
        """Drift rate (Å/s) ``seconds_since_move`` microscope seconds after the last stage move.

        Notes
        -----
        v(t) = v₀ · exp(−t / τ) + v_floor.
        """
        t = max(seconds_since_move, 0.0)
        return (self.drift_after_move_a_per_s * math.exp(-t / self.drift_settle_time_s)
                + self.drift_floor_a_per_s)
