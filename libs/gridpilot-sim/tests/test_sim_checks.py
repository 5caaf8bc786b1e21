"""The twin's specs refuse out-of-range fields by name, through :mod:`gridpilot_sim.checks`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest

from gridpilot.errors import InvalidInput
from gridpilot_sim.checks import require_fraction, require_non_negative, require_positive
from gridpilot_sim.exposure.micrograph import MicrographSpec
from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.spec import ExposureSpec
from gridpilot_sim.world.placement import ParticleSpec


@dataclass(frozen=True)
class _Spec:
    dose: float = 1.0
    blur: float = 0.0
    share: float = 0.5


@pytest.mark.parametrize(("check", "spec", "message"), [
    (require_positive, _Spec(dose=0.0), r"dose must be positive, got 0\.0"),
    (require_non_negative, _Spec(blur=-0.5), r"blur must be >= 0, got -0\.5"),
    (require_fraction, _Spec(share=1.5), r"share must be in \[0, 1\], got 1\.5"),
])
def test_a_field_out_of_range_is_refused_by_name(check: Callable[[object, Iterable[str]], None], spec: _Spec,
                                                message: str) -> None:
    name = message.split(" ")[0]
    with pytest.raises(InvalidInput, match=message) as info:
        check(spec, (name,))
    assert info.value.details["field"] == name


def test_fields_in_range_pass_every_check() -> None:
    spec = _Spec()
    require_positive(spec, ("dose",))
    require_non_negative(spec, ("blur", "dose"))
    require_fraction(spec, ("share", "blur"))


@pytest.mark.parametrize(("build", "field"), [
    (lambda: ExposureSpec(voltage_kv=0.0), "voltage_kv"),
    (lambda: ExposureSpec(cs_mm=-1.0), "cs_mm"),
    (lambda: MicrographSpec(pixel_size_a=0.0), "pixel_size_a"),
    (lambda: MicrographSpec(contamination_count=-1), "contamination_count"),
    (lambda: MicrographSpec(aggregated_fraction=1.2), "aggregated_fraction"),
    (lambda: MotionSpec(jump_exposure_e_per_a2=0.0), "jump_exposure_e_per_a2"),
    (lambda: MotionSpec(doming_a=-0.1), "doming_a"),
    (lambda: ParticleSpec(concentration_per_um3=-1.0), "concentration_per_um3"),
    (lambda: ParticleSpec(preferred_fraction=-0.1), "preferred_fraction"),
])
def test_each_twin_spec_names_the_field_it_refuses(build: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInput, match=field) as info:
        build()
    assert info.value.details["field"] == field
