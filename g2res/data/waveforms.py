"""Binary black hole signals: priors, lalsimulation polarisations, detector projection, SNR.

Conventions
-----------
- Times are seconds in the 2-s window (sample ``k`` is at ``k / sample_rate``);
  ``merger_time`` is the geocentre arrival of the waveform's peak (lalsimulation's
  t = 0), each detector sees it ``TimeDelayFromEarthCenter`` later.
- Masses are detector-frame solar masses (no cosmology: the distance is only the
  scale that gives the drawn SNR, in Mpc).
- Priors (:func:`draw_parameters`): component masses independently uniform in
  ``mass_range`` (or log-uniform, ``mass_prior="loguniform"``), then ordered
  m1 >= m2; spins isotropic in direction with magnitude uniform in [0, ``spin_max``]
  (for non-precessing approximants only the z components are kept); sky isotropic
  (ra uniform, sin(dec) uniform); cos(inclination) uniform in [-1, 1]; polarisation
  uniform in [0, pi); phase uniform in [0, 2 pi); merger time uniform in
  ``merger_window``; network SNR uniform in ``snr_range``.
- Antenna patterns use the Greenwich sidereal time of ``GPS_REFERENCE`` + merger time;
  ra uniform makes the sky isotropic in the Earth frame regardless of that choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from g2res.data.noise import DETECTORS, N_SAMPLES, SAMPLE_RATE

GPS_REFERENCE = 1238166018.0  # s, start of O3; the window starts at this GPS time
F_LOWER = 20.0  # Hz, lowest frequency of the dominant mode (spins are defined there too)
SNR_FMIN = 20.0  # Hz, lower edge of the optimal-SNR integral
SPIN_MAX = 0.99
MASS_PRIORS = ("loguniform", "uniform")  # component-mass priors of draw_parameters
REFERENCE_DISTANCE = 100.0  # Mpc, distance at which waveforms are generated before scaling
MAX_ATTEMPTS = 20  # redraws when lalsimulation rejects a parameter set
PAD = 1.0  # s, generated beyond each side of the window (tapered there, never inside)


@dataclass
class BBHParameters:
    """One binary black hole injection (angles in rad, masses in Msun, times in s)."""

    mass1: float
    mass2: float
    spin1x: float
    spin1y: float
    spin1z: float
    spin2x: float
    spin2y: float
    spin2z: float
    ra: float
    dec: float
    polarization: float
    inclination: float
    coa_phase: float
    merger_time: float  # s in the window, geocentre
    snr: float  # target network optimal SNR
    distance: float = REFERENCE_DISTANCE  # Mpc; set by the SNR scaling

    def to_dict(self) -> dict:
        return asdict(self)


def _approximant(approximant: str) -> int:
    import lalsimulation

    try:
        code = lalsimulation.GetApproximantFromString(str(approximant))
    except RuntimeError:
        raise ValueError(f"unknown lalsimulation approximant {approximant!r}") from None
    if not lalsimulation.SimInspiralImplementedTDApproximants(code):
        raise ValueError(
            f"approximant {approximant!r} has no time-domain implementation in lalsimulation "
            "(SimInspiralChooseTDWaveform); try IMRPhenomXPHM, IMRPhenomD or SEOBNRv4"
        )
    return code


def is_precessing(approximant: str) -> bool:
    """True if ``approximant`` supports in-plane (precessing) spins."""
    import lalsimulation

    support = lalsimulation.SimInspiralGetSpinSupportFromApproximant(_approximant(approximant))
    return support == lalsimulation.SIM_INSPIRAL_PRECESSINGSPIN


def _isotropic_spin(rng: np.random.Generator, spin_max: float) -> np.ndarray:
    magnitude = rng.uniform(0.0, spin_max)
    cos_theta = rng.uniform(-1.0, 1.0)
    phi = rng.uniform(0.0, 2 * np.pi)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    return magnitude * np.array([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta])


def draw_parameters(
    rng: np.random.Generator,
    mass_range: tuple[float, float] = (7.0, 50.0),
    merger_window: tuple[float, float] = (1.5, 1.9),
    snr_range: tuple[float, float] = (4.0, 16.0),
    precessing: bool = True,
    spin_max: float = SPIN_MAX,
    mass_prior: str = "uniform",
) -> BBHParameters:
    """Draw one injection from the priors in the module docstring (always 17 draws).

    ``mass_prior``: ``uniform`` or ``loguniform`` component masses in ``mass_range``.
    """
    if mass_prior not in MASS_PRIORS:
        raise ValueError(f"mass_prior {mass_prior!r}: use one of {', '.join(MASS_PRIORS)}")
    if mass_prior == "uniform":
        m_a, m_b = rng.uniform(mass_range[0], mass_range[1], size=2)
    else:
        m_a, m_b = np.exp(rng.uniform(np.log(mass_range[0]), np.log(mass_range[1]), size=2))
    s1 = _isotropic_spin(rng, spin_max)
    s2 = _isotropic_spin(rng, spin_max)
    if not precessing:
        s1[:2] = 0.0
        s2[:2] = 0.0
    ra = rng.uniform(0.0, 2 * np.pi)
    dec = np.arcsin(rng.uniform(-1.0, 1.0))
    psi = rng.uniform(0.0, np.pi)
    inclination = np.arccos(rng.uniform(-1.0, 1.0))
    phase = rng.uniform(0.0, 2 * np.pi)
    merger_time = rng.uniform(*merger_window)
    snr = rng.uniform(*snr_range)
    if m_b > m_a:
        m_a, m_b, s1, s2 = m_b, m_a, s2, s1
    return BBHParameters(
        float(m_a), float(m_b), *map(float, s1), *map(float, s2),
        float(ra), float(dec), float(psi), float(inclination), float(phase),
        float(merger_time), float(snr),
    )  # fmt: skip


def polarizations(
    params: BBHParameters,
    approximant: str = "IMRPhenomXPHM",
    sample_rate: float = SAMPLE_RATE,
    f_lower: float = F_LOWER,
    duration_needed: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """h+ and hx (n,) in strain at ``params.distance`` Mpc, and the time (s) of their first
    sample relative to the peak (negative).

    The dominant mode starts at ``f_lower`` Hz, or later when ``duration_needed`` (s before
    the peak) is shorter than the whole inspiral: only that much reaches the window, and
    generating more costs time. Spins are always defined at ``f_lower``.
    """
    import lal
    import lalsimulation

    code = _approximant(approximant)
    m1, m2 = params.mass1 * lal.MSUN_SI, params.mass2 * lal.MSUN_SI
    f_start = f_lower
    if duration_needed is not None:
        f_start = max(f_lower, lalsimulation.SimInspiralChirpStartFrequencyBound(
            duration_needed, m1, m2
        ))  # fmt: skip
    try:
        hp, hc = lalsimulation.SimInspiralChooseTDWaveform(
            m1, m2,
            params.spin1x, params.spin1y, params.spin1z,
            params.spin2x, params.spin2y, params.spin2z,
            params.distance * 1e6 * lal.PC_SI, params.inclination, params.coa_phase,
            0.0, 0.0, 0.0,  # longitude of ascending nodes, eccentricity, mean anomaly
            1.0 / sample_rate, f_start, f_lower, None, code,
        )  # fmt: skip
    except RuntimeError as exc:
        raise RuntimeError(
            f"lalsimulation {approximant} failed for m1={params.mass1:.2f}, "
            f"m2={params.mass2:.2f} Msun, spins=({params.spin1x:.2f}, {params.spin1y:.2f}, "
            f"{params.spin1z:.2f}), ({params.spin2x:.2f}, {params.spin2y:.2f}, "
            f"{params.spin2z:.2f}) at {sample_rate} Hz: {exc}. Try another approximant or "
            "mass range."
        ) from None
    return np.array(hp.data.data), np.array(hc.data.data), float(hp.epoch)


def render_with_redraws(draw, render, attempts: int = MAX_ATTEMPTS):
    """``render(draw())``, drawing again (from the same stream) while lalsimulation rejects a
    parameter set (``RuntimeError``; SEOBNRv4_opt refuses light, fast-spinning binaries
    whose ringdown passes Nyquist) -> (parameters, what ``render`` returned, attempts
    used). The last rejection is raised after ``attempts`` draws."""
    for attempt in range(1, attempts + 1):
        params = draw()
        try:
            return params, render(params), attempt
        except RuntimeError:
            if attempt == attempts:
                raise


class Projector:
    """Projects h+, hx onto detectors with antenna patterns and light-travel delays.

    Caches the lal detectors; output windows are (len(detectors), n_samples).
    """

    def __init__(
        self,
        detectors: tuple[str, ...] = DETECTORS,
        sample_rate: float = SAMPLE_RATE,
        n_samples: int = N_SAMPLES,
        gps_reference: float = GPS_REFERENCE,
        pad: float = PAD,
    ):
        import lal

        self.detectors = tuple(detectors)
        self._lal = [lal.cached_detector_by_prefix[d] for d in self.detectors]
        self.sample_rate = float(sample_rate)
        self.n_samples = int(n_samples)
        self.gps_reference = float(gps_reference)
        self.n_pad = int(round(pad * self.sample_rate))
        self.n_buffer = self.n_samples + 2 * self.n_pad
        self.buffer_frequencies = np.fft.rfftfreq(self.n_buffer, 1.0 / self.sample_rate)
        # Half-Hann tapers over the outer half of each pad, so a waveform cut at the buffer
        # edge does not ring into the window when shifted by a fraction of a sample.
        n_taper = self.n_pad // 2
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_taper) / n_taper)
        self.taper = np.ones(self.n_buffer)
        self.taper[:n_taper] = ramp
        self.taper[self.n_buffer - n_taper :] = ramp[::-1]

    def antenna_patterns(self, ra: float, dec: float, polarization: float, gps: float):
        """F+ and Fx, each (len(detectors),), at GPS time ``gps`` s."""
        import lal

        gmst = lal.GreenwichMeanSiderealTime(lal.LIGOTimeGPS(gps))
        resp = [
            lal.ComputeDetAMResponse(d.response, ra, dec, polarization, gmst) for d in self._lal
        ]
        return np.array([r[0] for r in resp]), np.array([r[1] for r in resp])

    def time_delays(self, ra: float, dec: float, gps: float) -> np.ndarray:
        """Arrival time minus geocentre arrival time (len(detectors),) in s."""
        import lal

        return np.array([lal.TimeDelayFromEarthCenter(d.location, ra, dec, gps) for d in self._lal])

    def project(
        self, hp: np.ndarray, hc: np.ndarray, t_first: float, params: BBHParameters
    ) -> tuple[np.ndarray, np.ndarray]:
        """Detector strain (len(detectors), n_samples) in the window and the arrival times
        (len(detectors),) in s of the peak; ``t_first`` is the time of ``hp[0]`` relative to
        the peak (s)."""
        gps = self.gps_reference + params.merger_time
        fplus, fcross = self.antenna_patterns(params.ra, params.dec, params.polarization, gps)
        arrival = params.merger_time + self.time_delays(params.ra, params.dec, gps)
        buffers = np.zeros((len(self.detectors), self.n_buffer))
        fractions = np.empty(len(self.detectors))
        for i in range(len(self.detectors)):
            position = (arrival[i] + t_first) * self.sample_rate + self.n_pad
            start = int(np.floor(position))
            fractions[i] = position - start
            lo, hi = max(start, 0), min(start + hp.size, self.n_buffer)
            if hi > lo:
                seg = slice(lo - start, hi - start)
                buffers[i, lo:hi] = fplus[i] * hp[seg] + fcross[i] * hc[seg]
        # A delay of a fraction of a sample is a linear phase in the frequency domain.
        spectra = np.fft.rfft(buffers * self.taper, axis=-1)
        spectra *= np.exp(
            -2j * np.pi * self.buffer_frequencies * fractions[:, None] / self.sample_rate
        )
        shifted = np.fft.irfft(spectra, n=self.n_buffer, axis=-1)
        return shifted[:, self.n_pad : self.n_pad + self.n_samples], arrival


def optimal_snr(
    h: np.ndarray,
    psd: np.ndarray,
    sample_rate: float = SAMPLE_RATE,
    fmin: float = SNR_FMIN,
    fmax: float | None = None,
) -> np.ndarray:
    """Optimal SNR sqrt(4 df sum |h~(f)|^2 / S(f)) over fmin <= f <= fmax (default Nyquist).

    ``h`` (..., n) strain as it appears in the window (no taper: the window edges are
    part of what a detector sees); ``psd`` (..., n // 2 + 1) one-sided, strain^2/Hz, on
    the ``np.fft.rfftfreq(n, 1 / sample_rate)`` grid. Returns (...,).
    """
    h = np.asarray(h, dtype=float)
    n = h.shape[-1]
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    psd = np.asarray(psd, dtype=float)
    if psd.shape[-1] != freqs.size:
        raise ValueError(f"psd has {psd.shape[-1]} frequencies, expected {freqs.size} for n={n}")
    band = (freqs >= fmin) & (freqs <= (sample_rate / 2 if fmax is None else fmax))
    if np.any(psd[..., band] <= 0):
        raise ValueError("psd must be positive in the SNR band")
    hf = np.fft.rfft(h, axis=-1)[..., band] / sample_rate
    df = sample_rate / n
    return np.sqrt(4.0 * df * np.sum(np.abs(hf) ** 2 / psd[..., band], axis=-1))


class Injector:
    """Draws and renders BBH signals (3, n_samples), scaled to a network optimal SNR.

    Holds everything reusable between signals (approximant, detectors, PSD on the
    window's rfft grid) so per-worker construction happens once.
    """

    def __init__(
        self,
        psd_window: np.ndarray,
        approximant: str = "IMRPhenomXPHM",
        mass_range: tuple[float, float] = (7.0, 50.0),
        merger_window: tuple[float, float] = (1.5, 1.9),
        snr_range: tuple[float, float] = (4.0, 16.0),
        projector: Projector | None = None,
    ):
        self.approximant = approximant
        self.precessing = is_precessing(approximant)
        self.mass_range = tuple(mass_range)
        self.merger_window = tuple(merger_window)
        self.snr_range = tuple(snr_range)
        self.projector = projector or Projector()
        self.psd_window = np.asarray(psd_window, dtype=float)

    def draw(self, rng: np.random.Generator) -> BBHParameters:
        return draw_parameters(
            rng, self.mass_range, self.merger_window, self.snr_range, self.precessing
        )

    def render(self, params: BBHParameters) -> tuple[np.ndarray, dict]:
        """Signal (3, n_samples) at network SNR ``params.snr``; updates ``params.distance``.

        Returns the signal and a dict with per-detector arrival times ``t_<det>`` (s) and
        optimal SNRs ``snr_<det>`` plus ``snr_network``.
        """
        proj = self.projector
        params.distance = REFERENCE_DISTANCE
        # Only the part reaching the buffer (window + pad) is needed; 0.1 s covers the
        # largest light-travel delay and lalsimulation's start-frequency bound slack.
        needed = params.merger_time + proj.n_pad / proj.sample_rate + 0.1
        hp, hc, t_first = polarizations(
            params, self.approximant, proj.sample_rate, duration_needed=needed
        )
        signal, arrival = proj.project(hp, hc, t_first, params)
        snrs = optimal_snr(signal, self.psd_window, proj.sample_rate)
        network = float(np.sqrt(np.sum(snrs**2)))
        if not network > 0:
            raise RuntimeError(f"signal has zero SNR in the window: {params}")
        scale = params.snr / network
        params.distance = REFERENCE_DISTANCE / scale
        info = {f"t_{d}": float(t) for d, t in zip(proj.detectors, arrival)}
        info.update({f"snr_{d}": float(s * scale) for d, s in zip(proj.detectors, snrs)})
        info["snr_network"] = float(params.snr)
        return signal * scale, info
