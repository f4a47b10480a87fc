"""Degradation configs: the schema with its defaults, the named presets and the YAML loader.

A config is a plain dict (YAML-friendly) with one section per stage. Each pass of the pipeline
runs the stages in the order a video call does: camera blur -> sensor noise -> webcam MJPEG
(``jpeg``) -> downscale to the simulcast layer (``resize``) -> video codec -> upscale back at the
receiver. Every stage fires with its ``prob``; ranges are ``[lo, hi]`` drawn uniformly.
``second_order`` runs a second pass (probability ``prob``) whose sections override the first's.

    blur:   kernel_size [odd lo, odd hi] px; kinds {iso|aniso|generalized|plateau|motion|defocus: weight};
            sigma px; beta_generalized; beta_plateau; motion_length px; defocus_radius px
    noise:  gaussian_prob (else Poisson); sigma in 1/255 units; gray_prob; poisson_peak (photons at
            white, drawn log-uniformly; larger = less noise)
    jpeg:   quality [1..100]
    resize: scale (downscale factor >= 1); down/up: interpolations among area, bilinear, bicubic, nearest
    codec:  codecs {ffmpeg encoder: weight}; crf on the libx264 scale (mapped for VP8/VP9/MPEG-4);
            presets; profiles (H.264); temporal_frames [lo, hi]: a single image is encoded as the
            last frame of a short clip with small random camera shifts (up to temporal_shift px),
            so P-frame artefacts appear; a real clip is always encoded as is.

YAML files are read, and keys checked, by :mod:`kdsharp.io.config` (as training configs are):
``1e0`` is a float, and an error names the file and the dotted key.

Presets (``PRESETS``; ``kdsharp degrade --list-presets``):

* ``mixed``   - what the shipped models train on: blur 70% (sigma 0.2-2, motion 3-11 px, defocus
  r 0.8-3), noise 50% (sigma 1-10/255 or Poisson), MJPEG 25% (q 50-95), down/up 60% (1.25-3x), codec
  70% (x264/VP8/VP9/MPEG-4, CRF 23-38), second pass 20% (milder).
* ``light``   - subtle: blur 50% (sigma 0.2-1), noise 30% (1-4/255), JPEG 20% (q 75-95),
  down/up 30% (1.1-1.5x), codec 50% (CRF 18-26).
* ``lowbw``   - low bandwidth: down/up always (2-3x), H.264 always (CRF 26-36, baseline/main),
  mild blur 30% (sigma 0.2-1.2), noise 30% (1-5/255).
* ``defocus`` - out-of-focus webcam: defocus disk (r 1-3) or Gaussian (sigma 0.8-2) always,
  noise always (1-5/255), JPEG always (q 60-90); no resize, no codec.
* ``h264``    - mild blur 60% (sigma 0.2-1.2), mild noise 20% (1-3/255), H.264 always at low
  bitrate (CRF 30-40), short pseudo-clips (1-3 frames); no resize.
"""

from __future__ import annotations

import copy
from pathlib import Path

from kdsharp.data.codecs import CODECS, H264_PROFILES, X264_PRESETS
from kdsharp.data.kernels import KERNEL_KINDS
from kdsharp.errors import ConfigError
from kdsharp.io.config import check_known_keys, config_source, read_yaml_mapping

INTERPOLATIONS = ("area", "bilinear", "bicubic", "nearest", "lanczos")

DEFAULT_CONFIG: dict = {
    "blur": {
        "prob": 0.7,
        "kernel_size": [7, 21],
        "kinds": {"iso": 0.3, "aniso": 0.25, "generalized": 0.1, "plateau": 0.1, "motion": 0.1, "defocus": 0.15},
        "sigma": [0.2, 2.0],
        "beta_generalized": [0.5, 4.0],
        "beta_plateau": [1.0, 2.0],
        "motion_length": [3.0, 11.0],
        "defocus_radius": [0.8, 3.0],
    },
    "noise": {
        "prob": 0.5,
        "gaussian_prob": 0.7,
        "sigma": [1.0, 10.0],
        "gray_prob": 0.4,
        "poisson_peak": [300.0, 3000.0],
    },
    "jpeg": {"prob": 0.25, "quality": [50, 95]},
    "resize": {
        "prob": 0.6,
        "scale": [1.25, 3.0],
        "down": ["area", "bilinear", "bicubic", "nearest"],
        "up": ["area", "bilinear", "bicubic", "nearest"],
    },
    "codec": {
        "prob": 0.7,
        "codecs": {"libx264": 0.6, "libvpx": 0.15, "libvpx-vp9": 0.15, "mpeg4": 0.1},
        "crf": [23, 38],
        "presets": ["ultrafast", "superfast", "veryfast"],
        "profiles": list(H264_PROFILES),
        "temporal_frames": [1, 3],
        "temporal_shift": 2.0,
    },
    "second_order": {"prob": 0.0},
}

_SECOND_MILD = {
    "prob": 0.2,
    "blur": {"prob": 0.3, "sigma": [0.2, 1.0], "kernel_size": [7, 13]},
    "noise": {"prob": 0.3, "sigma": [1.0, 4.0]},
    "jpeg": {"prob": 0.2, "quality": [60, 95]},
    "resize": {"prob": 0.3, "scale": [1.1, 1.5]},
    "codec": {"prob": 0.5, "crf": [20, 32], "temporal_frames": [1, 1]},
}

_OFF = {"prob": 0.0}

PRESETS: dict[str, dict] = {
    "mixed": {"second_order": _SECOND_MILD},
    "light": {
        "blur": {
            "prob": 0.5,
            "sigma": [0.2, 1.0],
            "kernel_size": [7, 13],
            "motion_length": [2.0, 5.0],
            "defocus_radius": [0.5, 1.5],
        },
        "noise": {"prob": 0.3, "sigma": [1.0, 4.0], "poisson_peak": [1000.0, 5000.0]},
        "jpeg": {"prob": 0.2, "quality": [75, 95]},
        "resize": {"prob": 0.3, "scale": [1.1, 1.5]},
        "codec": {"prob": 0.5, "crf": [18, 26], "temporal_frames": [1, 2]},
    },
    "lowbw": {
        "blur": {
            "prob": 0.3,
            "sigma": [0.2, 1.2],
            "kinds": {"iso": 0.5, "aniso": 0.3, "motion": 0.2},
            "motion_length": [2.0, 6.0],
        },
        "noise": {"prob": 0.3, "sigma": [1.0, 5.0]},
        "jpeg": _OFF,
        "resize": {"prob": 1.0, "scale": [2.0, 3.0]},
        "codec": {"prob": 1.0, "codecs": {"libx264": 1.0}, "crf": [26, 36], "profiles": ["baseline", "main"]},
    },
    "defocus": {
        "blur": {"prob": 1.0, "kinds": {"defocus": 0.6, "iso": 0.4}, "sigma": [0.8, 2.0], "defocus_radius": [1.0, 3.0]},
        "noise": {"prob": 1.0, "sigma": [1.0, 5.0], "poisson_peak": [500.0, 3000.0]},
        "jpeg": {"prob": 1.0, "quality": [60, 90]},
        "resize": _OFF,
        "codec": _OFF,
    },
    "h264": {
        "blur": {"prob": 0.6, "sigma": [0.2, 1.2], "kinds": {"iso": 0.6, "aniso": 0.4}},
        "noise": {"prob": 0.2, "sigma": [1.0, 3.0], "poisson_peak": [1000.0, 5000.0]},
        "jpeg": _OFF,
        "resize": _OFF,
        "codec": {"prob": 1.0, "codecs": {"libx264": 1.0}, "crf": [30, 40]},
    },
}


# The training family of the shipped weights: every range wider than the evaluation presets, so a
# model learns the family of call degradations rather than the presets' exact parameters.
PRESETS["wide"] = {
    "blur": {
        "prob": 0.6,
        "sigma": [0.2, 2.5],
        "kernel_size": [7, 21],
        "motion_length": [2.0, 9.0],
        "defocus_radius": [0.5, 3.0],
    },
    "noise": {"prob": 0.5, "sigma": [0.5, 8.0], "poisson_peak": [300.0, 5000.0]},
    "jpeg": {"prob": 0.3, "quality": [30, 95]},
    "resize": {
        "prob": 0.75,
        "scale": [1.2, 3.0],
        "down": ["area", "bilinear", "bicubic", "lanczos"],
        "up": ["bilinear", "bicubic", "lanczos"],
    },
    "codec": {
        "prob": 0.85,
        "codecs": {"libx264": 0.45, "libvpx": 0.1, "libvpx-vp9": 0.1, "mpeg4": 0.05, "jpeg": 0.2, "webp": 0.1},
        "crf": [20, 42],
        "profiles": ["baseline", "main", "high"],
        "temporal_frames": [1, 3],
    },
    "second_order": {
        "prob": 0.25,
        "blur": {"prob": 0.2, "sigma": [0.2, 1.0], "kernel_size": [7, 13]},
        "noise": {"prob": 0.2, "sigma": [0.5, 3.0]},
        "jpeg": {"prob": 0.5, "quality": [40, 95]},
        "resize": {"prob": 0.0},
        "codec": {"prob": 0.0},
    },
}

_SUMMARIES = {
    "mixed": "training mix: blur, noise, MJPEG, down/up 1.25-3x, x264/VP8/VP9/MPEG-4 CRF 23-38, 2nd pass 20%",
    "light": "subtle: mild blur, noise <= 4/255, JPEG q 75-95, down/up <= 1.5x, codec CRF 18-26",
    "lowbw": "low bandwidth: down/up 2-3x always + H.264 CRF 26-36 always, mild blur and noise",
    "defocus": "out-of-focus webcam: defocus disk / Gaussian blur + noise <= 5/255 + JPEG q 60-90",
    "h264": "mild blur + H.264 at low bitrate (CRF 30-40), no resize",
    "wide": "training family: wider blur/noise/JPEG ranges, down/up 1.2-3x (lanczos too), x264/VP8/VP9/"
    "MPEG-4/JPEG/WebP CRF 20-42 on the small frame, 2nd JPEG 25%",
}


def list_presets() -> list[str]:
    """Names of the built-in degradation presets."""
    return list(PRESETS)


def preset_summaries() -> dict[str, str]:
    """One line per preset describing its ranges (for ``kdsharp degrade --list-presets``)."""
    return {name: _SUMMARIES.get(name, "") for name in PRESETS}


def merge(base: dict, override: dict) -> dict:
    """Deep copy of ``base`` with ``override`` merged in (nested dicts merge; other values replace).

    ``kinds`` and ``codecs`` weight tables are replaced whole, so a preset can drop entries.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("kinds", "codecs"):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_range(where: str, value, lo_min: float, hi_max: float, integer: bool = False) -> None:
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    if not ok or not (lo_min <= value[0] <= value[1] <= hi_max):
        raise ConfigError(
            f"degradation config: {where} must be [lo, hi] with {lo_min} <= lo <= hi <= {hi_max}, got {value!r}"
        )
    if integer and any(int(v) != v for v in value):
        raise ConfigError(f"degradation config: {where} must be whole numbers, got {value!r}")


def _check_choices(where: str, value, known) -> None:
    items = list(value) if isinstance(value, (list, tuple, dict)) else None
    if not items or any(v not in known for v in items):
        raise ConfigError(f"degradation config: {where} must list some of {', '.join(known)}, got {value!r}")
    if isinstance(value, dict) and (any(float(w) < 0 for w in value.values()) or sum(map(float, value.values())) <= 0):
        raise ConfigError(f"degradation config: {where} weights must be >= 0 with a positive sum, got {value!r}")


_RANGES = {
    ("blur", "kernel_size"): (1, 61, True),
    ("blur", "sigma"): (0.01, 20.0, False),
    ("blur", "beta_generalized"): (0.1, 10.0, False),
    ("blur", "beta_plateau"): (0.1, 10.0, False),
    ("blur", "motion_length"): (1.0, 61.0, False),
    ("blur", "defocus_radius"): (0.0, 30.0, False),
    ("noise", "sigma"): (0.0, 255.0, False),
    ("noise", "poisson_peak"): (1.0, 1e6, False),
    ("jpeg", "quality"): (1, 100, True),
    ("resize", "scale"): (1.0, 16.0, False),
    ("codec", "crf"): (0, 51, False),
    ("codec", "temporal_frames"): (1, 16, True),
}
_CHOICES = {
    ("blur", "kinds"): KERNEL_KINDS,
    ("resize", "down"): INTERPOLATIONS,
    ("resize", "up"): INTERPOLATIONS,
    ("codec", "codecs"): CODECS,
    ("codec", "presets"): X264_PRESETS,
    ("codec", "profiles"): H264_PROFILES,
}
_PROBS = {("noise", "gaussian_prob"), ("noise", "gray_prob")}


def validate(cfg: dict, where: str = "") -> dict:
    """Check every section and key of a full config; raise :class:`ConfigError` naming the bad one."""
    check_known_keys(cfg, DEFAULT_CONFIG, where, what="degradation config")
    for section, body in cfg.items():
        name = f"{where}{section}"
        if not isinstance(body, dict):
            raise ConfigError(f"degradation config: '{name}' must be a mapping, got {body!r}")
        if section == "second_order":
            if where:
                raise ConfigError("degradation config: second_order cannot be nested")
            continue
        check_known_keys(body, DEFAULT_CONFIG[section], f"{name}.", what="degradation config")
        for key, value in body.items():
            if key == "prob" or (section, key) in _PROBS:
                if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ConfigError(
                        f"degradation config: {name}.{key} must be a probability in [0, 1], got {value!r}"
                    )
            elif (section, key) in _RANGES:
                _check_range(f"{name}.{key}", value, *_RANGES[(section, key)])
            elif (section, key) in _CHOICES:
                _check_choices(f"{name}.{key}", value, _CHOICES[(section, key)])
            elif key == "temporal_shift" and (not isinstance(value, (int, float)) or not 0 <= value <= 32):
                raise ConfigError(f"degradation config: {name}.{key}={value!r} must be a number of pixels in [0, 32]")
    if where:
        return cfg
    second = cfg.get("second_order", {})
    prob = second.get("prob", 0.0)
    if not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
        raise ConfigError(f"degradation config: second_order.prob must be a probability in [0, 1], got {prob!r}")
    validate({k: v for k, v in second.items() if k != "prob"}, where="second_order.")
    return cfg


def _read_yaml(path: Path) -> dict:
    data = read_yaml_mapping(path, "degradation config", "see configs/degrade/ for examples")
    return data.get("degradation", data) if isinstance(data.get("degradation"), dict) else data


def _degrade_file(text: str) -> Path | None:
    """The degradation YAML ``text`` names: the file itself, else a shipped config by name or by its
    path in the repository (``calls_soft``, ``configs/degrade/calls_soft.yaml``), as training configs
    resolve outside a clone; None if there is none."""
    from kdsharp.configs import shipped_config

    path = Path(text).expanduser()
    return path if path.is_file() else shipped_config(path, "degrade")


def load_degrade_config(spec: str | Path | dict | None = "mixed") -> dict:
    """A full, validated degradation config from a preset name, a YAML file or a dict.

    A dict or YAML file may name a base ``preset: NAME`` and override any of its keys; without one it
    overrides the defaults (= the ``mixed`` first pass). A YAML file may also nest everything under a
    ``degradation:`` key. Raises :class:`ConfigError` for unknown presets, files, sections or keys.
    """
    if spec is None:
        spec = "mixed"
    source = None
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text in PRESETS:
            return validate(merge(DEFAULT_CONFIG, PRESETS[text]))
        source = _degrade_file(text)
        if source is None:
            from kdsharp.configs import list_configs

            raise ConfigError(
                f"unknown degradation preset or file '{text}' (presets: {', '.join(PRESETS)}; shipped configs: "
                f"{', '.join(list_configs('degrade')) or 'none'}; or pass a YAML file path)"
            )
        spec = _read_yaml(source)
    if not isinstance(spec, dict):
        raise ConfigError(f"degradation config must be a preset name, YAML path or mapping, got {type(spec).__name__}")
    with config_source(source):
        return _from_mapping(dict(spec))


def _from_mapping(spec: dict) -> dict:
    """A full validated config from a mapping that may name a base ``preset``."""
    base_name = spec.pop("preset", None)
    if base_name is not None and base_name not in PRESETS:
        raise ConfigError(f"degradation config: unknown preset '{base_name}' (presets: {', '.join(PRESETS)})")
    base = merge(DEFAULT_CONFIG, PRESETS[base_name]) if base_name else DEFAULT_CONFIG
    return validate(merge(base, spec))
