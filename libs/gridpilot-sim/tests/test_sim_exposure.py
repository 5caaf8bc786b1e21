"""The high-magnification exposure renderer: plant a known scene, then find it in the pixels."""

from __future__ import annotations

import json
import math

import numpy as np
import numpy.typing as npt
import pytest

from gridpilot.errors import InvalidInput
from gridpilot.optics import ctf_1d, ctf_2d
from gridpilot_sim.exposure.detector import DetectorSpec
from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.movie import (
    ExposureSpec,
    counted_frame,
    expected_frame,
    expected_sum,
    prepare_exposure,
    render_movie,
)
from gridpilot_sim.world.ice import transmission
from gridpilot_sim.world.placement import ParticlePlacement, ParticleSpec

STILL = MotionSpec.still()
NO_PARTICLES: tuple[ParticleSpec, ...] = ()


def radial_average(image: npt.NDArray[np.floating], *, window: bool = False) -> npt.NDArray[np.float64]:
    """Rotational average of the power spectrum, one bin per Fourier pixel (square images).

    ``window`` applies a Hann window first, so that the cut edges do not leak low-frequency power
    into every frequency.
    """
    n = image.shape[0]
    centred = image - image.mean()
    if window:
        centred = centred * np.outer(np.hanning(n), np.hanning(n))
    ps = np.abs(np.fft.fft2(centred)) ** 2
    f = np.fft.fftfreq(n)
    ring = np.round(np.sqrt(f[:, None] ** 2 + f[None, :] ** 2) * n).astype(np.int64)
    return np.bincount(ring.ravel(), ps.ravel())[: n // 2] / np.bincount(ring.ravel())[: n // 2]


def measured_shift_px(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """(dx, dy) with b(r) ≈ a(r − d): phase correlation, then a 20× upsampled local search."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-12)
    cc = np.fft.ifft2(cross).real
    iy, ix = np.unravel_index(np.argmax(cc), cc.shape)
    h, w = cc.shape
    coarse = np.array([(ix + w // 2) % w - w // 2, (iy + h // 2) % h - h // 2], dtype=np.float64)
    # Upsampled cross-correlation around the coarse peak by a matrix DFT (Guizar-Sicairos 2008).
    dxs = coarse[0] + np.arange(-1.0, 1.0001, 0.02)
    dys = coarse[1] + np.arange(-1.0, 1.0001, 0.02)
    ex = np.exp(2j * np.pi * np.fft.fftfreq(w)[:, None] * dxs[None, :])
    ey = np.exp(2j * np.pi * dys[:, None] * np.fft.fftfreq(h)[None, :])
    up = np.real(ey @ cross @ ex)
    j, i = np.unravel_index(np.argmax(up), up.shape)
    return np.array([dxs[i], dys[j]])


def test_thon_ring_zeros_sit_where_the_true_defocus_puts_them() -> None:
    spec = ExposureSpec(shape=(512, 512), pixel_size_a=1.0, n_frames=40, defocus1_a=14000.0,
                        defocus2_a=14000.0, particles=NO_PARTICLES, motion=STILL, seed=11)
    movie = render_movie(spec)
    profile = radial_average(movie.frames.sum(axis=0))
    k = np.arange(profile.size) / 512.0
    band = (k > 0.03) & (k < 0.2)
    # Plant 1.4 µm; a scan of CTF² against the background-flattened noisy spectrum finds it.
    flat = profile / np.convolve(profile, np.ones(15) / 15, mode="same")
    trials = np.arange(8000.0, 22000.0, 100.0)
    scores = [np.corrcoef(flat[band], ctf_1d(k[band], d) ** 2)[0, 1] for d in trials]
    assert abs(trials[int(np.argmax(scores))] - 14000.0) <= 200.0
    # In the noise-free image the spectrum's minima fall on the CTF's zeros.
    clean = radial_average(movie.noise_free)
    zeros = k[1:-1][np.diff(np.sign(np.diff(ctf_1d(k, 14000.0) ** 2))) > 0]
    for z in zeros[(zeros > 0.03) & (zeros < 0.2)]:
        window = (k > z - 0.006) & (k < z + 0.006)
        assert abs(k[window][np.argmin(clean[window])] - z) <= 2.0 / 512.0


def test_astigmatism_puts_defocus1_along_its_angle() -> None:
    angle = math.radians(30.0)
    spec = ExposureSpec(shape=(512, 512), pixel_size_a=1.0, n_frames=1, defocus1_a=20000.0,
                        defocus2_a=12000.0, astig_angle_rad=angle, particles=NO_PARTICLES, motion=STILL)
    ps = np.abs(np.fft.fft2(expected_sum(prepare_exposure(spec)))) ** 2
    f = np.fft.fftfreq(512)
    k = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    band = (k > 0.03) & (k < 0.15)
    trials = np.radians(np.arange(0.0, 180.0, 5.0))
    scores = [np.corrcoef(ps[band], ctf_2d((512, 512), 1.0, 20000.0, 12000.0, t)[band] ** 2)[0, 1]
              for t in trials]
    assert math.degrees(trials[int(np.argmax(scores))]) == pytest.approx(30.0, abs=5.0)
    # The mirrored angle (−30°) fits clearly worse: the angle's sense is the optics module's.
    assert scores[int(np.argmax(scores))] > scores[30] + 0.2


@pytest.mark.parametrize("frames_dtype", ["float32", "uint16"])
def test_counts_per_frame_match_dose_times_ice_transmission(frames_dtype: str) -> None:
    det = DetectorSpec(dqe_zero=0.8, frames_dtype=frames_dtype)  # type: ignore[arg-type]
    spec = ExposureSpec(shape=(256, 256), pixel_size_a=0.9, n_frames=6, dose_per_frame_e_per_a2=1.5,
                        ice_nm=60.0, particles=NO_PARTICLES, detector=det)
    movie = render_movie(spec)
    expected_e = 1.5 * 0.9**2 * math.exp(-60.0 / 350.0)
    means = movie.frames.reshape(6, -1).mean(axis=1)
    if frames_dtype == "uint16":
        assert movie.frames.dtype == np.uint16
        expected, sigma = 0.8 * expected_e, math.sqrt(0.8 * expected_e / 256**2)
    else:
        expected, sigma = expected_e, math.sqrt(expected_e / 0.8 / 256**2)
    assert np.all(np.abs(means - expected) < 4.5 * sigma)
    assert movie.truth.ice_transmission == pytest.approx(math.exp(-60.0 / 350.0))


def test_same_seed_renders_identical_frames_and_another_seed_differs() -> None:
    spec = ExposureSpec(shape=(128, 128), pixel_size_a=2.0, n_frames=3,
                        particles=(ParticleSpec("hollow_shell", concentration_per_um3=2e5),), seed=7)
    a, b = render_movie(spec), render_movie(spec)
    c = render_movie(ExposureSpec(**{**spec.__dict__, "seed": 8}))
    assert a.frames.tobytes() == b.frames.tobytes()
    assert a.truth.to_json() == b.truth.to_json()
    assert a.frames.tobytes() != c.frames.tobytes()
    assert a.truth.to_json() != c.truth.to_json()
    # Any single frame can be regenerated alone.
    assert counted_frame(prepare_exposure(spec), 2).tobytes() == a.frames[2].tobytes()


def test_truth_drift_is_what_cross_correlation_of_noise_free_frames_shows() -> None:
    spec = ExposureSpec(shape=(256, 256), pixel_size_a=1.0, n_frames=20, dose_per_frame_e_per_a2=1.5,
                        motion=MotionSpec(initial_jump_a=14.0, stage_drift_a_per_frame=0.4,
                                          random_walk_a=0.3, substeps=3), seed=3)
    prepared = prepare_exposure(spec)
    # Frame 4 is past the fastest motion, so its intra-frame blur is small and symmetric.
    early, last = expected_frame(prepared, 4), expected_frame(prepared, 19)
    truth_px = prepared.truth.drift_xy_px
    assert np.linalg.norm(truth_px[19] - truth_px[4]) > 2.0
    assert np.allclose(measured_shift_px(early, last), truth_px[19] - truth_px[4], atol=0.1)
    # Moving the drift-free frame by the true drift reproduces the drifted frame.
    still = expected_frame(prepared, 19, drift=False)
    ky, kx = np.fft.fftfreq(256)[:, None], np.fft.fftfreq(256)[None, :]

    def moved(d: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.fft.ifft2(np.fft.fft2(still) * np.exp(-2j * np.pi * (kx * d[0] + ky * d[1]))).real

    inner = (slice(24, -24), slice(24, -24))
    err_truth = np.abs(moved(truth_px[19]) - last)[inner].std()
    err_off = np.abs(moved(truth_px[19] + 0.5) - last)[inner].std()
    assert err_truth < 0.3 * err_off


def test_doming_moves_each_patch_by_the_true_local_displacement() -> None:
    spec = ExposureSpec(shape=(512, 512), pixel_size_a=1.0, n_frames=8, particles=NO_PARTICLES,
                        motion=MotionSpec(initial_jump_a=0.0, stage_drift_a_per_frame=0.0,
                                          random_walk_a=0.0, substeps=1, doming_a=4.0), seed=5)
    prepared = prepare_exposure(spec)
    doming = prepared.truth.doming
    assert doming is not None
    last, still = expected_frame(prepared, 7), expected_frame(prepared, 7, drift=False)
    hann = np.outer(np.hanning(128), np.hanning(128))
    moved = []
    for y0, x0 in ((0, 0), (0, 384), (384, 0), (384, 384), (192, 192)):
        patch = (slice(y0, y0 + 128), slice(x0, x0 + 128))
        a, b = still[patch], last[patch]
        truth_px = np.array(doming.displacement_a(x0 + 64.0, y0 + 64.0, 7)) / spec.pixel_size_a
        assert np.allclose(measured_shift_px((a - a.mean()) * hann, (b - b.mean()) * hann), truth_px, atol=0.2)
        moved.append(truth_px)
    assert np.ptp(np.array(moved), axis=0).max() > 1.0  # the patches really move differently


def test_thicker_ice_darkens_the_image_as_exp_minus_t_over_lambda() -> None:
    means = {}
    for t_nm in (0.0, 50.0, 150.0, 300.0):
        spec = ExposureSpec(shape=(128, 128), pixel_size_a=2.0, n_frames=2, ice_nm=t_nm,
                            particles=NO_PARTICLES, motion=STILL)
        means[t_nm] = float(expected_sum(prepare_exposure(spec)).mean())
    for t_nm in (50.0, 150.0, 300.0):
        assert means[t_nm] / means[0.0] == pytest.approx(math.exp(-t_nm / 350.0), rel=2e-3)
        # The energy-filter round trip: t = Λ ln(I₀ / I).
        assert 350.0 * math.log(means[0.0] / means[t_nm]) == pytest.approx(t_nm, abs=1.0)


def test_ice_gradient_makes_the_thick_side_darker() -> None:
    spec = ExposureSpec(shape=(256, 256), pixel_size_a=2.0, n_frames=1, ice_nm=80.0,
                        ice_gradient_nm_per_um=(200.0, 0.0), particles=NO_PARTICLES, motion=STILL)
    image = expected_sum(prepare_exposure(spec))
    left, right = image[:, :32].mean(), image[:, -32:].mean()
    # 448 Å between the strips' centres at 200 nm/µm: Δt ≈ 9 nm.
    assert right / left == pytest.approx(transmission(200.0 * 0.0448, 350.0), rel=5e-3)


def test_two_pixel_sizes_show_the_same_particles_and_drift_in_physical_units() -> None:
    fine = ExposureSpec(shape=(256, 256), pixel_size_a=1.0, n_frames=4,
                        particles=(ParticleSpec("blob_chain", concentration_per_um3=3e5),), seed=21)
    coarse_spec = fine.with_pixel_size(2.0)
    a, b = prepare_exposure(fine), prepare_exposure(coarse_spec)
    assert coarse_spec.shape == (128, 128)
    assert len(a.truth.particles) >= 5
    assert [(p.x_a, p.y_a, p.z_a, p.quaternion) for p in a.truth.particles] == [
        (p.x_a, p.y_a, p.z_a, p.quaternion) for p in b.truth.particles
    ]
    assert np.allclose(a.truth.particle_xy_px(), 2.0 * b.truth.particle_xy_px())
    assert np.array_equal(a.truth.drift_xy_a, b.truth.drift_xy_a)
    # The coarse image is the fine one band-limited (up to the detector MTF at each pixel size).
    fine_img, coarse_img = expected_sum(a), expected_sum(b)
    spec_f = np.fft.fft2(fine_img)
    cropped = np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(spec_f)[64:192, 64:192])).real / 4.0
    low = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128))) < 0.15
    fa = np.fft.fft2(cropped - cropped.mean())[low]
    fb = np.fft.fft2(coarse_img - coarse_img.mean())[low]
    assert np.real(np.vdot(fa, fb)) / (np.linalg.norm(fa) * np.linalg.norm(fb)) > 0.95


def test_particle_number_rises_with_ice_thickness_and_thick_ice_aggregates() -> None:
    counts, aggregated = [], []
    for t_nm in (20.0, 40.0, 80.0, 250.0):
        spec = ExposureSpec(shape=(256, 256), pixel_size_a=4.0, n_frames=1, ice_nm=t_nm, depth_bin_a=400.0,
                            particles=(ParticleSpec("blob_chain", concentration_per_um3=1e5),), seed=2)
        truth = prepare_exposure(spec).truth
        counts.append(len(truth.particles))
        aggregated.append(sum(p.aggregated for p in truth.particles))
    assert counts == sorted(counts) and counts[0] < counts[-1] / 3
    assert aggregated[0] == 0 and aggregated[-1] > 0.2 * counts[-1]
    assert all(abs(p.z_a) <= 1250.0 for p in truth.particles)


def test_planted_particles_appear_dark_at_their_truth_positions_with_their_own_defocus() -> None:
    planted = (ParticlePlacement("hollow_shell", 200.0, 300.0, z_a=-150.0),
               ParticlePlacement("hollow_shell", 700.0, 600.0, z_a=150.0))
    spec = ExposureSpec(shape=(512, 512), pixel_size_a=2.0, n_frames=1, ice_nm=60.0,
                        particles=NO_PARTICLES, placements=planted, motion=STILL, ice_noise_scale=0.0)
    prepared = prepare_exposure(spec)
    image = expected_sum(prepared)
    truth = prepared.truth.particles
    assert [(p.x_px, p.y_px) for p in truth] == [(100.0, 150.0), (350.0, 300.0)]
    assert [p.defocus1_a for p in truth] == [15000.0 - 150.0, 15000.0 + 150.0]
    background = np.median(image)
    for p in truth:
        y, x = np.ogrid[:512, :512]
        disk = (x - p.x_px) ** 2 + (y - p.y_px) ** 2 < 30**2
        assert image[disk].mean() < background  # protein is dark in underfocus


def test_radiation_damage_fades_high_resolution_signal_frame_by_frame() -> None:
    spec = ExposureSpec(shape=(256, 256), pixel_size_a=1.0, n_frames=40, ice_noise_scale=0.0,
                        particles=(ParticleSpec("blob_chain", concentration_per_um3=4e5),),
                        motion=STILL, b_factor_a2=0.0)
    prepared = prepare_exposure(spec)
    early, late = expected_frame(prepared, 0), expected_frame(prepared, 39)
    k = np.arange(128) / 256.0
    ratio = radial_average(late, window=True) / radial_average(early, window=True)
    # q² between 0.6 and 49.4 e/Å²: ≈ 0.7 at 1/40 Å⁻¹, ≈ 0.03 at 1/10 Å⁻¹ (Grant & Grigorieff 2015).
    low, high = ratio[(k > 0.02) & (k < 0.03)].mean(), ratio[(k > 0.09) & (k < 0.11)].mean()
    assert low == pytest.approx(0.68, abs=0.1)
    assert high < 0.1


def test_crystalline_ice_adds_sharp_spots_at_3_9_angstrom() -> None:
    spectra = []
    for amplitude_rad in (0.0, 0.02):
        # At 1.6 µm, |sin χ| ≈ 0.7 at 3.9 Å (at 1.5 µm the spots would sit on a CTF zero).
        spec = ExposureSpec(shape=(256, 256), pixel_size_a=1.0, n_frames=1, particles=NO_PARTICLES,
                            motion=STILL, crystalline_ice_rad=amplitude_rad, defocus1_a=16000.0,
                            defocus2_a=16000.0)
        image = expected_sum(prepare_exposure(spec))
        hann = np.outer(np.hanning(256), np.hanning(256))
        spectra.append(np.abs(np.fft.fft2((image - image.mean()) * hann)) ** 2)
    f = np.fft.fftfreq(256)
    k = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    ring = np.abs(k - 1 / 3.9) < 3 / 256
    vitreous, crystalline = spectra[0][ring], spectra[1][ring]
    assert crystalline.max() > 10 * vitreous.max()
    # Sharp: each of the six spots covers about a Hann main lobe (4 × 4 Fourier pixels).
    assert 6 <= np.sum(crystalline > 4 * vitreous) <= 6 * 16


def test_gain_reference_flattens_the_raw_frames() -> None:
    det = DetectorSpec(gain_rms=0.05, frames_dtype="uint16")
    spec = ExposureSpec(shape=(128, 128), pixel_size_a=1.0, n_frames=40, dose_per_frame_e_per_a2=100.0,
                        particles=NO_PARTICLES, ice_noise_scale=0.0, motion=STILL, detector=det)
    movie = render_movie(spec)
    assert movie.gain_reference is not None
    raw = movie.frames.sum(axis=0).astype(np.float64)
    corrected = raw * movie.gain_reference
    assert corrected.std() / corrected.mean() < 0.6 * raw.std() / raw.mean()


def test_truth_serialises_to_json_with_every_particle_and_frame() -> None:
    spec = ExposureSpec(shape=(128, 128), pixel_size_a=2.0, n_frames=5,
                        particles=(ParticleSpec("asym_l", concentration_per_um3=4e5),),
                        motion=MotionSpec(doming_a=2.0))
    truth = render_movie(spec).truth
    data = json.loads(truth.to_json())
    assert len(data["particles"]) == len(truth.particles) > 0
    assert np.allclose(data["drift_xy_a"], truth.drift_xy_a)
    assert len(data["exposure_mid_e_per_a2"]) == 5 and data["doming"]["terms"] == ["x", "y", "x^2", "y^2", "x*y"]
    assert ExposureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_rejects_impossible_values_naming_them() -> None:
    with pytest.raises(InvalidInput, match="shape must be even"):
        ExposureSpec(shape=(255, 256))
    with pytest.raises(InvalidInput, match=r"dose_per_frame_e_per_a2 must be positive, got 0\.0"):
        ExposureSpec(dose_per_frame_e_per_a2=0.0)
    with pytest.raises(InvalidInput, match="dqe_zero"):
        DetectorSpec(dqe_zero=1.5)
