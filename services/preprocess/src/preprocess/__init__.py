"""gridpilot preprocess: frame alignment, dose weighting, CTF and ice-thickness estimation.

The science behind the ``job.preprocess.movie`` service, as pure functions of arrays:

>>> from preprocess import preprocess_movie, read_movie  # doctest: +SKIP
>>> movie = read_movie("movie.mrcs")  # doctest: +SKIP
>>> out = preprocess_movie(movie.frames, pixel_size_a=movie.pixel_size_a, voltage_kv=300.0,
...                        cs_mm=2.7, amplitude_contrast=0.07, dose_per_frame_e_per_a2=1.2,
...                        params=PreprocessParams())  # doctest: +SKIP
>>> out.ctf.defocus1_a, out.motion.total_drift_a, out.ice.thickness_nm  # doctest: +SKIP

Conventions: defocus positive for underfocus (Å), astigmatism angle from the x axis; a
trajectory is the displacement of the specimen in each frame relative to frame 0, (x, y),
x along the image columns (the twin's convention, ``gridpilot_sim.exposure.motion``).
"""

from __future__ import annotations

from .ctf import CTFEstimate, estimate_ctf
from .doseweight import dose_weights, frame_exposures_e_per_a2, sum_aligned_spectra
from .ice import IceEstimate, estimate_ice
from .io import Movie, read_image, read_movie
from .motion import GlobalAlignment, align_frames
from .patchmotion import LocalMotion, align_patches
from .pipeline import PreprocessOutput, motion_summary, preprocess_movie
from .powerspec import PowerSpectrum, power_spectrum

__all__ = [
    "CTFEstimate",
    "GlobalAlignment",
    "IceEstimate",
    "LocalMotion",
    "Movie",
    "PowerSpectrum",
    "PreprocessOutput",
    "align_frames",
    "align_patches",
    "dose_weights",
    "estimate_ctf",
    "estimate_ice",
    "frame_exposures_e_per_a2",
    "motion_summary",
    "power_spectrum",
    "preprocess_movie",
    "read_image",
    "read_movie",
    "sum_aligned_spectra",
]
