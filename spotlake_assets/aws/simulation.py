"""The simulated AWS cloud: the embedded default `AwsApi` that demos and tests run on without an account.

Everything is SIMULATED except the catalogue (regions, zones, offerings and instance-type specifications,
snapshotted from moto's real EC2 data, see ``data/PROVENANCE.md``). Placement scores, prices, the Spot
Advisor document, quotas and throttling come from a synthetic model that is a pure function of
(seed, scale, inputs, window): two runs with the same seed see the same world, a different seed sees a
different one. Stable hashes (blake2b, splitmix64) are used throughout, never Python's salted ``hash()``.

How the world behaves, and why:

* Spot placement scores: each (instance type, AZ id) pool has a long-run availability built from its
  family (popular general/compute/memory families high, accelerated and exotic ones low), generation and
  size, plus per-zone and per-pool offsets. A noise term is piecewise constant over epochs with a per-pool
  phase, so only a few percent of pools change score from one 10-minute window to the next, as on AWS.
  Larger target capacities score lower (monotonically: the noise does not depend on the capacity).
* Volatility is heterogeneous, because it is on AWS: score changes concentrate in a minority of types
  (accelerated instances, the newest generations, the popular mainstream sizes everyone asks for) while many
  types (older generations, burstable, bare metal) keep the same scores for a day or more. Each type draws
  a volatility from a skewed (log-normal, ``SPS_VOLATILITY_SIGMA``) distribution whose median is shifted
  by its family (``_CATEGORY_VOLATILITY``, ``_GENERATION_VOLATILITY``); its pools redraw their noise every
  ``SPS_EPOCH_WINDOWS / volatility`` windows (±``SPS_POOL_EPOCH_JITTER`` per pool), between
  ``SPS_MIN_EPOCH_WINDOWS`` (30 minutes) and ``SPS_MAX_EPOCH_WINDOWS`` (3 days). ``_VOLATILITY_SCALE``
  keeps the mean redraw rate per pool at one per ``SPS_EPOCH_WINDOWS``, so about 2% of pools still change
  per window overall (317 before this model, about the same after, at scale 0.25, seed 7), while the top
  decile of types changes several times as often per pool as the median type. A market where every type
  moved equally often would make adaptive selection of what to follow (``aws_single``) pointless.
* Prices: the on-demand list price follows vCPUs, memory, family, generation, processor maker,
  accelerators and a regional multiplier (calibrated against a handful of published us-east-1 prices);
  it does not depend on the seed, like a public price list. Spot = on-demand * (1 - discount) with the
  discount in [45%, 90%], higher for pools with plenty of capacity, drifting every few hours.
* Spot Advisor: real document format; savings consistent with the spot model, interruption buckets worse
  for scarce pools and changing about once a day.
* Quota and throttling are kept in memory per resource instance (see `SimulatedAwsApi`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from statistics import NormalDist

from pydantic import Field, PrivateAttr

from spotlake_assets.aws.catalogue import Catalogue, InstanceTypeSpec, load_catalogue
from spotlake_assets.aws.constants import CONFIGS_PER_CREDENTIAL_PER_DAY, IF_BUCKETS, SIMULATED_KEY_PREFIX
from spotlake_assets.aws.models import (
    AvailabilityZone,
    ConfigLimitExceeded,
    Credential,
    Offering,
    OndemandQuote,
    RegionUnavailable,
    SpotPriceQuote,
    SpsScore,
    Throttled,
)
from spotlake_assets.aws.resources import AwsApi, sps_score
from spotlake_assets.domain.windows import WINDOW

WINDOW_SECONDS = int(WINDOW.total_seconds())
WINDOWS_PER_DAY = int(timedelta(days=1) / WINDOW)

# ~30 windows (5 h) per SPS epoch on average over pools: a pool's score noise is redrawn about once every 5
# hours, so roughly 1/30 of pools (minus those whose redraw rounds to the same score) change between
# consecutive windows. Per type the epoch is SPS_EPOCH_WINDOWS / volatility (see the module docstring).
SPS_EPOCH_WINDOWS = 30
SPS_NOISE = 1.25
# Spread of the per-type log-volatility: sigma 1.1 puts the top decile of a family-neutral type ~4x above
# the median, and the bottom decile at a redraw every day or two.
SPS_VOLATILITY_SIGMA = 1.1
SPS_POOL_EPOCH_JITTER = 0.25
SPS_MIN_EPOCH_WINDOWS = 3
SPS_MAX_EPOCH_WINDOWS = 3 * 144
# Spot prices move a few times a day on AWS: one redraw of the discount drift per pool every 6 hours.
PRICE_EPOCH_WINDOWS = 36
PRICE_DRIFT = 0.035
MIN_DISCOUNT, MAX_DISCOUNT = 0.45, 0.90
# The attempts bookkeeping only needs the windows a bounded retry can still be working on.
_ATTEMPT_MEMORY_WINDOWS = 6

_MASK64 = (1 << 64) - 1
_GOLDEN64 = 0x9E3779B97F4A7C15

# The published document's `ranges`, labels in IF_BUCKETS order; "max" values are AWS's, as published.
_ADVISOR_RANGE_MAX = (5, 11, 16, 22, 100)
ADVISOR_RANGES: tuple[dict[str, int | str], ...] = tuple(
    {"index": index, "label": label, "dots": index, "max": top}
    for index, (label, top) in enumerate(zip(IF_BUCKETS, _ADVISOR_RANGE_MAX, strict=True))
)
# Middle of each bucket (in %), for the document's `global_rate` summary.
_BUCKET_MIDPOINTS = (2.5, 7.5, 12.5, 17.5, 25.0)

# --- price model (synthetic; calibrated so that e.g. m5.large ≈ $0.096, c5.large ≈ $0.085, t3.micro ≈
# $0.0104, p4d.24xlarge ≈ $32.8 in us-east-1) -------------------------------------------------------------
_VCPU_HOUR = 0.037
_GIB_HOUR = 0.00275
_BURSTABLE_GIB_HOUR = 0.0104  # burstable types are priced by memory (t3.nano … t3.2xlarge)
_WINDOWS_LICENSE_VCPU_HOUR = 0.046
_SERIES_FACTOR: dict[str, float] = {
    "r": 1.05,
    "x": 1.5,
    "z": 1.3,
    "u": 1.85,
    "i": 1.4,
    "im": 1.4,
    "is": 1.4,
    "d": 2.0,
    "h": 1.2,
    "hpc": 0.6,
    "mac": 1.9,
}
_GENERATION_FACTOR: dict[int, float] = {1: 1.3, 2: 1.25, 3: 1.25, 4: 1.04, 5: 1.0, 6: 1.0, 7: 1.05, 8: 1.1}
_LATEST_GENERATION_FACTOR = 1.13
# Burstable generations are priced on their own ladder (t2 > t3 = t4g per GiB before the maker discount).
_BURSTABLE_GENERATION_FACTOR: dict[int, float] = {1: 1.3, 2: 1.115, 3: 1.0, 4: 1.0}
_LATEST_BURSTABLE_GENERATION_FACTOR = 1.05
_MANUFACTURER_FACTOR: dict[str, float] = {"Intel": 1.0, "AMD": 0.9, "AWS": 0.8, "Apple": 1.0}
_OPTION_FACTOR: dict[str, float] = {"d": 1.13, "n": 1.22, "z": 1.35, "b": 1.08, "e": 1.05}
_MAX_OPTIONS_FACTOR = 1.35  # several option letters (x2iedn) do not compound without limit
_FLEX_FACTOR = 0.95
# Hourly price of one accelerator device, on top of the host's vCPUs and memory.
_ACCELERATOR_HOUR: dict[str, float] = {
    "A100": 3.3,
    "H100": 6.0,
    "H200": 7.0,
    "B200": 12.5,
    "B300": 15.0,
    "V100": 3.4,
    "T4": 0.33,
    "T4g": 0.22,
    "A10G": 0.8,
    "L4": 0.6,
    "L40S": 1.55,
    "RTX PRO 4500": 1.0,
    "RTX PRO Server 6000": 2.6,
    "Inferentia": 0.1,
    "Inferentia2": 0.55,
    "Trainium": 1.1,
    "Trainium2": 2.7,
    "Qualcomm AI100": 0.9,
    "Virtex UltraScale+ (VU47P)": 1.6,
    "U30": 0.3,
}
_ACCELERATOR_GIB_HOUR = 0.03  # devices missing from the table: priced by their memory
_REGION_FACTOR: dict[str, float] = {
    "us-east-1": 1.0,
    "us-east-2": 1.0,
    "us-west-2": 1.0,
    "us-west-1": 1.17,
    "ca-central-1": 1.1,
    "ca-west-1": 1.1,
    "sa-east-1": 1.59,
    "eu-west-1": 1.11,
    "eu-west-2": 1.16,
    "eu-west-3": 1.17,
    "eu-central-1": 1.19,
    "eu-central-2": 1.31,
    "eu-north-1": 1.06,
    "eu-south-1": 1.17,
    "eu-south-2": 1.11,
    "il-central-1": 1.15,
    "me-south-1": 1.22,
    "me-central-1": 1.22,
    "af-south-1": 1.33,
    "ap-east-1": 1.38,
    "ap-south-1": 1.05,
    "ap-south-2": 1.05,
    "ap-northeast-1": 1.29,
    "ap-northeast-2": 1.23,
    "ap-northeast-3": 1.29,
    "ap-southeast-1": 1.25,
    "ap-southeast-2": 1.25,
    "ap-southeast-3": 1.25,
    "ap-southeast-4": 1.25,
    "ap-southeast-5": 1.2,
}
_DEFAULT_REGION_FACTOR = 1.2

# --- availability model (synthetic) ---------------------------------------------------------------------
_BASE_LATENT = 7.8
_CATEGORY_AVAILABILITY: dict[str, float] = {
    "general": 1.0,
    "compute": 1.0,
    "memory": 0.8,
    "burstable": 1.2,
    "storage": -0.3,
    "hpc": -1.2,
    "accelerated": -2.2,
    "high-memory": -3.0,
    "mac": -3.0,
}
_SERIES_CATEGORY: dict[str, str] = {
    "m": "general",
    "a": "general",
    "t": "burstable",
    "c": "compute",
    "r": "memory",
    "x": "memory",
    "z": "memory",
    "u": "high-memory",
    "i": "storage",
    "im": "storage",
    "is": "storage",
    "d": "storage",
    "h": "storage",
    "hpc": "hpc",
    "mac": "mac",
    "p": "accelerated",
    "g": "accelerated",
    "gr": "accelerated",
    "inf": "accelerated",
    "trn": "accelerated",
    "dl": "accelerated",
    "f": "accelerated",
    "vt": "accelerated",
}
# Pools of the mainstream generations are deep; old ones are shrinking and the newest still filling up.
_GENERATION_AVAILABILITY: dict[int, float] = {
    1: -1.5,
    2: -1.5,
    3: -1.5,
    4: -0.5,
    5: 0.5,
    6: 0.6,
    7: 0.4,
    8: -0.3,
}
_LATEST_GENERATION_AVAILABILITY = -1.0

# Log-volatility shifts (see the module docstring): accelerated capacity is scarce and fought over, the
# newest generations are still filling up and being adopted, old generations and burstable pools are calm.
_CATEGORY_VOLATILITY: dict[str, float] = {
    "general": 0.2,
    "compute": 0.2,
    "memory": 0.1,
    "burstable": -0.5,
    "storage": -0.2,
    "hpc": 0.0,
    "accelerated": 1.4,
    "high-memory": -0.4,
    "mac": -0.6,
}
_GENERATION_VOLATILITY: dict[int, float] = {1: -0.9, 2: -0.9, 3: -0.9, 4: -0.6, 5: -0.1, 6: 0.1, 7: 0.4}
_LATEST_GENERATION_VOLATILITY = 0.7
# Small sizes of mainstream families are what most Spot users ask for: their pools churn more.
_POPULAR_SIZE_VOLATILITY = 0.3
_BARE_METAL_VOLATILITY = -0.4
# Calibrated so that the mean redraw rate over the pools of the catalogue (scale 0.25 and 1.0, several
# seeds) stays one per SPS_EPOCH_WINDOWS: the overall share of changing pools is what it was before.
_VOLATILITY_SCALE = 0.32

_FAMILY_PATTERN = re.compile(r"^(?P<series>[a-z]+)(?P<generation>\d*)(?P<options>[a-z]*)(?:-(?P<extra>.+))?$")


# --- stable hashing ---------------------------------------------------------------------------------------
def _stable_u64(*parts: object) -> int:
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _mix64(value: int) -> int:
    """splitmix64 finaliser: a cheap, well-distributed integer hash for the per-window hot paths."""
    z = (value + _GOLDEN64) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _unit(value: int) -> float:
    """A uniform draw in [0, 1) determined by ``value``."""
    return _mix64(value) / 2.0**64


def _quad(value: int) -> tuple[float, float, float, float]:
    """Four uniform draws in [0, 1), 16 bits each, from one mix of ``value``."""
    mixed = _mix64(value)
    return (
        (mixed & 0xFFFF) / 65536.0,
        ((mixed >> 16) & 0xFFFF) / 65536.0,
        ((mixed >> 32) & 0xFFFF) / 65536.0,
        (mixed >> 48) / 65536.0,
    )


def _unit_of(*parts: object) -> float:
    return _stable_u64(*parts) / 2.0**64


def _epoch_key(key: int, epoch: int) -> int:
    return key ^ ((epoch * _GOLDEN64) & _MASK64)


def window_index(window_start: datetime) -> int:
    """Number of 10-minute windows since the Unix epoch. Naive datetimes are taken as UTC."""
    if window_start.tzinfo is None:
        window_start = window_start.replace(tzinfo=UTC)
    return int(window_start.timestamp()) // WINDOW_SECONDS


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


# --- the world --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _TypeModel:
    availability: float  # the type's share of a pool's long-run latent score
    sps_epoch: float  # windows between redraws of its pools' score noise (before the per-pool jitter)
    capacity_sensitivity: float  # how much bigger instances suffer from large target capacities
    ondemand_base: float  # us-east-1 on-demand $/hour
    ondemand_key: int  # seed-independent key for the per-region list-price jitter
    windows_license: float  # $/hour added to on-demand and spot prices for Windows


@dataclass(frozen=True, slots=True)
class _Pool:
    key: int  # stable identity of (seed, instance type, AZ id) for the per-window draws
    spot: bool
    latent: float  # long-run score at capacity 1, before the epoch noise
    sensitivity: float  # score lost per unit of ln(capacity)
    sps_epoch: int  # windows between redraws of the score noise (the type's volatility, jittered)
    sps_phase: int
    discount: float  # long-run spot discount
    price_phase: int


def _parse_family(family: str) -> tuple[str, int | None, str, str]:
    match = _FAMILY_PATTERN.match(family)
    if match is None:
        return family, None, "", ""
    generation = match["generation"]
    return match["series"], int(generation) if generation else None, match["options"], match["extra"] or ""


def _ondemand_base(
    spec: InstanceTypeSpec, series: str, generation: int | None, options: str, extra: str
) -> float:
    manufacturer = _MANUFACTURER_FACTOR.get(spec.manufacturer, 1.0)
    if spec.burstable:
        generation_factor = (
            _BURSTABLE_GENERATION_FACTOR.get(generation, _LATEST_BURSTABLE_GENERATION_FACTOR)
            if generation
            else 1.0
        )
        return spec.memory_gib * _BURSTABLE_GIB_HOUR * manufacturer * generation_factor
    generation_factor = _GENERATION_FACTOR.get(generation, _LATEST_GENERATION_FACTOR) if generation else 1.0
    host = spec.vcpus * _VCPU_HOUR + spec.memory_gib * _GIB_HOUR
    options_factor = 1.0
    for letter in set(options):
        options_factor *= _OPTION_FACTOR.get(letter, 1.0)
    factor = _SERIES_FACTOR.get(series, 1.0) * manufacturer * generation_factor
    factor *= min(options_factor, _MAX_OPTIONS_FACTOR)
    if extra == "flex":
        factor *= _FLEX_FACTOR
    accelerators = sum(
        device.count * _ACCELERATOR_HOUR.get(device.name, device.memory_mib / 1024 * _ACCELERATOR_GIB_HOUR)
        for device in spec.accelerators
    )
    return host * factor + accelerators


def _volatility(seed: int, spec: InstanceTypeSpec, category: str, generation: int | None) -> float:
    """The type's relative rate of SPS noise redraws (mean about 1 over pools; see the module docstring)."""
    if generation is None:
        generation_term = 0.0
    else:
        generation_term = _GENERATION_VOLATILITY.get(generation, _LATEST_GENERATION_VOLATILITY)
    popular = category in {"general", "compute", "memory"} and spec.vcpus <= 16 and not spec.bare_metal
    shift = (
        _CATEGORY_VOLATILITY[category]
        + generation_term
        + (_POPULAR_SIZE_VOLATILITY if popular else 0.0)
        + (_BARE_METAL_VOLATILITY if spec.bare_metal else 0.0)
    )
    u = min(max(_unit_of(seed, "volatility", spec.name), 1e-9), 1.0 - 1e-9)
    return _VOLATILITY_SCALE * math.exp(shift + SPS_VOLATILITY_SIGMA * _NORMAL.inv_cdf(u))


def _sps_epoch(seed: int, spec: InstanceTypeSpec, category: str, generation: int | None) -> float:
    return SPS_EPOCH_WINDOWS / _volatility(seed, spec, category, generation)


def _type_model(seed: int, spec: InstanceTypeSpec) -> _TypeModel:
    series, generation, options, extra = _parse_family(spec.family)
    category = _SERIES_CATEGORY.get(series, "general")
    if generation is None:
        generation_term = 0.0
    else:
        generation_term = _GENERATION_AVAILABILITY.get(generation, _LATEST_GENERATION_AVAILABILITY)
    size_term = -0.45 * math.log2(max(spec.vcpus, 2) / 2)
    availability = (
        _CATEGORY_AVAILABILITY[category]
        + generation_term
        + size_term
        - (0.8 if spec.bare_metal else 0.0)
        - 0.6 * sum(device.count for device in spec.accelerators if device.kind == "gpu") ** 0.5
        + (_unit_of(seed, "type", spec.name) - 0.5) * 1.2
    )
    # Only a deterministic ±1.5% per type: list prices are public, so they ignore the seed.
    ondemand_key = _stable_u64("ondemand", spec.name)
    jitter = 1.0 + (_unit(ondemand_key) - 0.5) * 0.03
    return _TypeModel(
        availability=availability,
        sps_epoch=_sps_epoch(seed, spec, category, generation),
        capacity_sensitivity=0.8 + 0.12 * math.log2(max(spec.vcpus, 1)),
        ondemand_base=_ondemand_base(spec, series, generation, options, extra) * jitter,
        ondemand_key=ondemand_key,
        windows_license=spec.vcpus * _WINDOWS_LICENSE_VCPU_HOUR,
    )


def _round_price(price: float) -> float:
    # AWS quotes spot and list prices to 4 decimals for all but the tiniest types.
    return max(round(price, 4), 0.0001)


class SimulatedWorld:
    """The deterministic model behind `SimulatedAwsApi`: no quota, throttling or failure injection here.

    Per-type, per-zone and per-pool terms are computed lazily on first use and cached. The values are pure
    functions of the seed, so threads racing to fill the same cache entry store equal values (dict writes
    are atomic), and no lock is needed on the hot paths.
    """

    def __init__(self, seed: int, scale: float) -> None:
        self.seed = seed
        self.catalogue: Catalogue = load_catalogue(scale)
        self._keys: dict[str, int] = {}
        self._types: dict[str, _TypeModel] = {}
        self._zone_terms: dict[str, float] = {}
        self._pools: dict[tuple[str, str], tuple[tuple[AvailabilityZone, _Pool], ...]] = {}
        self._ondemand: dict[tuple[str, str], float] = {}
        self._price_rows: dict[str, tuple[tuple[str, str, _Pool, float], ...]] = {}
        self._advisor_lock = threading.Lock()
        self._advisor: dict[int, bytes] = {}

    # -- terms ---------------------------------------------------------------------------------------
    def _key(self, name: str) -> int:
        """The seeded 64-bit key of a name (instance type, zone id, region). One blake2b per name; pairs
        of names are then combined with the cheap integer mixer."""
        key = self._keys.get(name)
        if key is None:
            key = _stable_u64(self.seed, name)
            self._keys[name] = key
        return key

    def _pair_key(self, first: str, second: str) -> int:
        # Mixing one side first makes the combination asymmetric, so (a, b) and (b, a) differ.
        return _mix64(self._key(first) ^ _mix64(self._key(second)))

    def type_model(self, instance_type: str) -> _TypeModel:
        model = self._types.get(instance_type)
        if model is None:
            model = _type_model(self.seed, self.catalogue.instance_types[instance_type])
            self._types[instance_type] = model
        return model

    def _zone_term(self, zone: AvailabilityZone) -> float:
        term = self._zone_terms.get(zone.zone_id)
        if term is None:
            # Regions with many zones are the big ones, with deeper pools.
            big_region = len(self.catalogue.zones_by_region[zone.region]) >= 4
            term = (_unit(self._key(zone.zone_id)) - 0.5) * 1.6 + (0.3 if big_region else 0.0)
            self._zone_terms[zone.zone_id] = term
        return term

    def _make_pool(self, instance_type: str, zone: AvailabilityZone) -> _Pool:
        model = self.type_model(instance_type)
        key = self._pair_key(instance_type, zone.zone_id)
        # Cold start builds ~64k pools per process: draw four 16-bit uniforms from each 64-bit mix.
        offset, sensitivity, sps_phase, price_phase = _quad(key ^ 1)
        discount_jitter = _unit(key ^ 2)
        epoch_jitter = 1.0 + (_unit(key ^ 3) - 0.5) * 2.0 * SPS_POOL_EPOCH_JITTER
        sps_epoch = int(
            _clamp(round(model.sps_epoch * epoch_jitter), SPS_MIN_EPOCH_WINDOWS, SPS_MAX_EPOCH_WINDOWS)
        )
        latent = _BASE_LATENT + model.availability + self._zone_term(zone) + (offset - 0.5) * 3.0
        # Deep pools are cheap: the long-run discount rises with availability.
        discount = 0.68 + 0.035 * (latent - _BASE_LATENT) + (discount_jitter - 0.5) * 0.16
        return _Pool(
            key=key,
            spot=self.catalogue.instance_types[instance_type].spot_supported,
            latent=latent,
            sensitivity=(0.55 + 0.5 * sensitivity) * model.capacity_sensitivity,
            sps_epoch=sps_epoch,
            sps_phase=int(sps_phase * sps_epoch),
            discount=_clamp(discount, MIN_DISCOUNT + 0.02, MAX_DISCOUNT - 0.02),
            price_phase=int(price_phase * PRICE_EPOCH_WINDOWS),
        )

    def pools(self, instance_type: str, region: str) -> tuple[tuple[AvailabilityZone, _Pool], ...]:
        """(zone, pool) pairs of ``instance_type`` in ``region``: one per AZ offering it, in zone order."""
        pools = self._pools.get((instance_type, region))
        if pools is None:
            by_zone = self.catalogue.types_by_zone_id
            pools = tuple(
                (zone, self._make_pool(instance_type, zone))
                for zone in self.catalogue.zones_by_region[region]
                if instance_type in by_zone[zone.zone_id]
            )
            self._pools[(instance_type, region)] = pools
        return pools

    # -- placement scores ------------------------------------------------------------------------------
    @staticmethod
    def sps_score(pool: _Pool, capacity: int, window: int) -> int:
        if not pool.spot:
            return 1  # no Spot capacity at all for types AWS does not sell as Spot
        epoch = (window + pool.sps_phase) // pool.sps_epoch
        noise = (_unit(_epoch_key(pool.key, epoch)) - 0.5) * 2.0 * SPS_NOISE
        value = pool.latent + noise - pool.sensitivity * math.log(capacity)
        return min(10, max(1, math.floor(value + 0.5)))

    def sps_scores(
        self, instance_type: str, regions: Sequence[str], capacity: int, window: int
    ) -> list[SpsScore]:
        """Scores of every AZ (by id) in ``regions`` offering ``instance_type``; [] for an unknown type."""
        if instance_type not in self.catalogue.instance_types:
            return []
        return [
            SpsScore(instance_type, region, zone.zone_id, self.sps_score(pool, capacity, window))
            for region in dict.fromkeys(regions)
            for zone, pool in self.pools(instance_type, region)
        ]

    # -- prices ----------------------------------------------------------------------------------------
    def ondemand_price(self, instance_type: str, region: str) -> float:
        price = self._ondemand.get((instance_type, region))
        if price is None:
            factor = _REGION_FACTOR.get(region)
            if factor is None:
                factor = _DEFAULT_REGION_FACTOR + (_unit_of("region", region) - 0.5) * 0.2
            # Seed-independent, like the rest of the list price.
            jitter_key = self.type_model(instance_type).ondemand_key ^ _mix64(_stable_u64("region", region))
            jitter = 1.0 + (_unit(jitter_key) - 0.5) * 0.02
            price = _round_price(self.type_model(instance_type).ondemand_base * factor * jitter)
            self._ondemand[(instance_type, region)] = price
        return price

    @staticmethod
    def spot_discount(pool: _Pool, window: int) -> float:
        epoch = (window + pool.price_phase) // PRICE_EPOCH_WINDOWS
        drift = (_unit(_epoch_key(pool.key ^ 6, epoch)) - 0.5) * 2.0 * PRICE_DRIFT
        return _clamp(pool.discount + drift, MIN_DISCOUNT, MAX_DISCOUNT)

    def _region_price_rows(self, region: str) -> tuple[tuple[str, str, _Pool, float], ...]:
        rows = self._price_rows.get(region)
        if rows is None:
            specs = self.catalogue.instance_types
            rows = tuple(
                sorted(
                    (zone.name, instance_type, pool, self.ondemand_price(instance_type, region))
                    for instance_type in self.catalogue.offered_types(region)
                    if specs[instance_type].spot_supported
                    for zone, pool in self.pools(instance_type, region)
                )
            )
            self._price_rows[region] = rows
        return rows

    def spot_prices(self, region: str, window: int) -> list[SpotPriceQuote]:
        """Current Linux spot price per (type, AZ name) for the Spot-capable types offered in ``region``."""
        return [
            SpotPriceQuote(
                instance_type, zone_name, _round_price(ondemand * (1.0 - self.spot_discount(pool, window)))
            )
            for zone_name, instance_type, pool, ondemand in self._region_price_rows(region)
        ]

    def ondemand_prices(self, region: str) -> list[OndemandQuote]:
        return [
            OndemandQuote(region, instance_type, self.ondemand_price(instance_type, region))
            for instance_type in self.catalogue.offered_types(region)
        ]

    # -- Spot Instance Advisor ------------------------------------------------------------------------------
    def advisor_document(self, window: int) -> bytes:
        """The advisor JSON for the UTC day holding ``window``: the published file changes about daily."""
        day = window // WINDOWS_PER_DAY
        with self._advisor_lock:
            cached = self._advisor.get(day)
            if cached is None:
                cached = self._build_advisor(day)
                # Callers ask about today (and maybe yesterday): keep backfills from growing the cache.
                if len(self._advisor) >= 4:
                    self._advisor.clear()
                self._advisor[day] = cached
            return cached

    def _build_advisor(self, day: int) -> bytes:
        first_window = day * WINDOWS_PER_DAY
        specs = self.catalogue.instance_types
        advisor: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
        listed: set[str] = set()
        rate_total = 0.0
        for region in self.catalogue.regions:
            linux: dict[str, dict[str, int]] = {}
            windows: dict[str, dict[str, int]] = {}
            for instance_type in self.catalogue.offered_types(region):
                spec = specs[instance_type]
                if not spec.spot_supported:
                    continue
                pools = [pool for _, pool in self.pools(instance_type, region)]
                latent = sum(pool.latent for pool in pools) / len(pools)
                discount = sum(self.spot_discount(pool, first_window) for pool in pools) / len(pools)
                bucket = self._interruption_bucket(instance_type, region, latent, day)
                linux[instance_type] = {"s": round(100 * discount), "r": bucket}
                if any(arch in ("x86_64", "i386") for arch in spec.architectures):
                    # Windows pays the same licence on Spot and on-demand, so its savings are smaller.
                    ondemand = self.ondemand_price(instance_type, region)
                    licence = self.type_model(instance_type).windows_license
                    spot = ondemand * (1.0 - discount)
                    savings = 100.0 * (1.0 - (spot + licence) / (ondemand + licence))
                    windows[instance_type] = {"s": round(savings), "r": bucket}
                listed.add(instance_type)
                rate_total += _BUCKET_MIDPOINTS[bucket]
            advisor[region] = {"Linux": linux, "Windows": windows}

        entries = sum(len(by_os["Linux"]) for by_os in advisor.values())
        mean_rate = rate_total / entries if entries else 0.0
        global_rate = next((f"<{limit}%" for limit in (5, 10, 15, 20) if mean_rate < limit), ">20%")
        document = {
            "global_rate": global_rate,
            "instance_types": {
                name: {
                    "emr": _emr_supported(specs[name]),
                    "cores": specs[name].vcpus,
                    "ram_gb": round(specs[name].memory_gib, 3),
                }
                for name in sorted(listed)
            },
            "ranges": [dict(entry) for entry in ADVISOR_RANGES],
            "spot_advisor": advisor,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def _interruption_bucket(self, instance_type: str, region: str, latent: float, day: int) -> int:
        key = self._pair_key(instance_type, region)
        jitter = (_unit(key ^ 7) - 0.5) * 1.2
        bucket = _clamp(math.floor((8.6 - latent) / 1.3 + jitter + 0.5), 0, 4)
        # About one (type, region) in ten moves one bucket on a given day.
        wobble = _unit(_epoch_key(key ^ 8, day))
        if wobble < 0.05:
            bucket -= 1
        elif wobble < 0.10:
            bucket += 1
        return int(_clamp(bucket, 0, 4))


def _emr_supported(spec: InstanceTypeSpec) -> bool:
    series, _, _, _ = _parse_family(spec.family)
    return (
        spec.current_generation
        and not spec.burstable
        and not spec.bare_metal
        and series in {"m", "c", "r", "i", "d", "g", "p", "x", "z", "h"}
    )


_WORLDS_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _cached_world(seed: int, scale: float) -> SimulatedWorld:
    return SimulatedWorld(seed, scale)


def simulated_world(seed: int, scale: float) -> SimulatedWorld:
    """The shared world for (seed, scale): Dagster builds a fresh resource per run, the world is reused."""
    with _WORLDS_LOCK:
        return _cached_world(seed, scale)


# --- latency ----------------------------------------------------------------------------------------------
# A call's latency is log-normal around the median: sigma 0.8 puts p90 at 2.8x, p99 at 6.4x the median (the
# long tail of a regional endpoint); capped at 20x so a draw never stalls a benchmark.
LATENCY_SIGMA = 0.8
LATENCY_CAP = 20.0
_NORMAL = NormalDist()


def call_latency_s(median_ms: float, *parts: object) -> float:
    """The seeded latency of the call ``parts`` identify (seed, method, arguments, attempt), in seconds: the
    same call always waits as long, so a benchmark is repeatable. 0 when ``median_ms`` is 0."""
    if median_ms <= 0.0:
        return 0.0
    u = min(max(_unit_of("latency", *parts), 1e-12), 1.0 - 1e-12)
    return median_ms / 1000.0 * min(math.exp(LATENCY_SIGMA * _NORMAL.inv_cdf(u)), LATENCY_CAP)


# --- the resource -----------------------------------------------------------------------------------------
_SpsConfiguration = tuple[str, tuple[str, ...], int]


class SimulatedAwsApi(AwsApi):
    """SIMULATED AWS (the embedded default, no account needed). ``simulated`` is always True.

    Quota: AWS allows 50 distinct SPS configurations (instance type, regions, capacity) per account in a
    rolling 24 hours, and repeating a configuration is free. This resource tracks that per access key id,
    rolling by ``window_start``, in memory (so per resource instance, i.e. per Dagster run), thread-safely.
    A seeded ``exhausted_credential_rate`` of credentials arrive with their quota already spent elsewhere
    (redrawn every UTC day), so `ConfigLimitExceeded` and credential rotation happen in every demo.

    Throttling: ``throttle_rate`` of (credential, configuration, window) triples throttle on their first
    attempt only, so a bounded retry succeeds; ``throttle_rate=1.0`` throttles every attempt (a storm).

    Latency: ``latency_ms`` > 0 makes every call wait a seeded log-normal time around that median (a long
    tail, `call_latency_s`), outside any lock, as a call to AWS would; 0 (the default, and in tests) waits not
    at all. ``SPOTLAKE_SIM_LATENCY_MS`` sets it; benchmarks/tick.py measures a tick at 150 ms.
    """

    seed: int = Field(default=7, description="Seed of the simulated world: same seed, same answers.")
    scale: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Fraction of instance types kept (1.0 = the full catalogue)."
    )
    throttle_rate: float = Field(
        default=0.002,
        ge=0.0,
        le=1.0,
        description="Fraction of SPS calls throttled on their first attempt; 1.0 throttles every attempt.",
    )
    exhausted_credential_rate: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="Fraction of credentials whose SPS quota is already used elsewhere (per UTC day).",
    )
    failing_regions: list[str] = Field(
        default=[], description="Regions whose price calls raise RegionUnavailable (explicit gaps)."
    )
    replay_past: bool = Field(
        default=True,
        description=(
            "Answer SPS and advisor calls for past windows from the deterministic world (the demo collects "
            "yesterday). False makes backfills skip them exactly as they do against AWS."
        ),
    )
    latency_ms: float = Field(
        default=0.0,
        ge=0.0,
        description="Median simulated latency of each call (ms), with a long tail; 0: none.",
    )

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    # access key id → configuration → window index at which it was first counted
    _quota: dict[str, dict[_SpsConfiguration, int]] = PrivateAttr(default_factory=dict)
    _attempts: dict[tuple[str, _SpsConfiguration, int], int] = PrivateAttr(default_factory=dict)
    _latest_window: int = PrivateAttr(default=0)
    _exhausted: dict[tuple[str, int], bool] = PrivateAttr(default_factory=dict)
    _world: SimulatedWorld | None = PrivateAttr(default=None)
    _sps_calls: int = PrivateAttr(default=0)

    @property
    def simulated(self) -> bool:
        return True

    @property
    def sps_calls(self) -> int:
        """SPS calls answered or refused by this resource (simulation only: for benchmarks)."""
        return self._sps_calls

    def _wait(self, *call: object) -> None:
        delay = call_latency_s(self.latency_ms, self.seed, *call)
        if delay > 0.0:
            time.sleep(delay)

    @property
    def observes_past(self) -> bool:
        return self.replay_past

    @property
    def world(self) -> SimulatedWorld:
        """The deterministic world this resource answers from (shared by resources with the same config)."""
        if self._world is None:
            self._world = simulated_world(self.seed, self.scale)
        return self._world

    # -- catalogue ---------------------------------------------------------------------------------------
    def _known_region(self, region: str) -> str:
        if region not in self.world.catalogue.zones_by_region:
            raise RegionUnavailable(region, "not a region of the simulated catalogue")
        return region

    def regions(self) -> list[str]:
        self._wait("regions")
        return sorted(self.world.catalogue.regions)

    def availability_zones(self, region: str) -> list[AvailabilityZone]:
        self._wait("availability_zones", region)
        return list(self.world.catalogue.zones_by_region[self._known_region(region)])

    def instance_type_offerings(self, region: str) -> list[Offering]:
        self._wait("instance_type_offerings", region)
        return list(self.world.catalogue.offerings_by_region[self._known_region(region)])

    # -- SPS ---------------------------------------------------------------------------------------------
    def spot_placement_scores(
        self,
        credential: Credential,
        instance_type: str,
        regions: Sequence[str],
        capacity: int,
        window_start: datetime,
    ) -> list[SpsScore]:
        if capacity < 1:
            raise ValueError(f"target capacity must be at least 1, got {capacity}")
        if not regions:
            raise ValueError("an SPS query needs at least one region")
        world = self.world
        known = world.catalogue.zones_by_region
        if any(region not in known for region in regions):
            unknown = sorted({region for region in regions if region not in known})
            raise ValueError(f"regions not in the simulated catalogue: {unknown}")
        window = window_index(window_start)
        configuration: _SpsConfiguration = (instance_type, tuple(sorted(set(regions))), capacity)
        with self._lock:
            self._sps_calls += 1
            attempt = self._attempts.get((credential.access_key_id, configuration, window), 0)
        self._wait("sps", credential.access_key_id, *configuration, window, attempt)
        self._admit(credential, configuration, window)
        # Through the same parser as AWS's answers: a model change that produced a score outside 1..10
        # fails here, naming the row, instead of reaching the checkpoints and the sinks.
        return [
            sps_score(
                instance_type,
                {"Region": score.region, "AvailabilityZoneId": score.zone_id, "Score": score.score},
                regions,
            )
            for score in world.sps_scores(instance_type, regions, capacity, window)
        ]

    def _admit(self, credential: Credential, configuration: _SpsConfiguration, window: int) -> None:
        """Apply throttling, then the per-credential configuration quota; raise like AWS would."""
        key = credential.access_key_id
        with self._lock:
            self._forget_old_attempts(window)
            attempt_key = (key, configuration, window)
            attempt = self._attempts.get(attempt_key, 0)
            self._attempts[attempt_key] = attempt + 1
            if self._throttles(key, configuration, window, attempt):
                raise Throttled(f"{credential.label}: RequestLimitExceeded (simulated)")

            if self._pre_exhausted(key, window // WINDOWS_PER_DAY):
                raise ConfigLimitExceeded(
                    f"{credential.label}: MaxConfigLimitExceeded "
                    "(simulated: quota already used outside SpotLake today)"
                )

            used = self._quota.setdefault(key, {})
            horizon = window - WINDOWS_PER_DAY
            for expired in [config for config, first in used.items() if first <= horizon]:
                del used[expired]
            if configuration in used:
                return
            if len(used) >= CONFIGS_PER_CREDENTIAL_PER_DAY:
                raise ConfigLimitExceeded(
                    f"{credential.label}: MaxConfigLimitExceeded (simulated: "
                    f"{CONFIGS_PER_CREDENTIAL_PER_DAY} distinct configurations in 24 h)"
                )
            used[configuration] = window

    def _pre_exhausted(self, key: str, day: int) -> bool:
        exhausted = self._exhausted.get((key, day))
        if exhausted is None:
            exhausted = _unit_of(self.seed, "exhausted", key, day) < self.exhausted_credential_rate
            if len(self._exhausted) > 100_000:  # a long-lived resource must not grow without bound
                self._exhausted.clear()
            self._exhausted[(key, day)] = exhausted
        return exhausted

    def _throttles(self, key: str, configuration: _SpsConfiguration, window: int, attempt: int) -> bool:
        if self.throttle_rate >= 1.0:
            return True
        if attempt > 0 or self.throttle_rate <= 0.0:
            return False
        return _unit_of(self.seed, "throttle", key, *configuration, window) < self.throttle_rate

    def _forget_old_attempts(self, window: int) -> None:
        if window <= self._latest_window:
            return
        self._latest_window = window
        oldest = window - _ATTEMPT_MEMORY_WINDOWS
        for stale in [attempt_key for attempt_key in self._attempts if attempt_key[2] < oldest]:
            del self._attempts[stale]

    def quota_used(self, credential: Credential, window_start: datetime) -> int:
        """Distinct SPS configurations ``credential`` has spent in the 24 hours up to ``window_start``
        (simulation only: lets demos and tests report quota without spending it)."""
        horizon = window_index(window_start) - WINDOWS_PER_DAY
        with self._lock:
            used = self._quota.get(credential.access_key_id, {})
            return sum(1 for first in used.values() if first > horizon)

    # -- prices ------------------------------------------------------------------------------------------
    def _reachable(self, region: str) -> str:
        if region in self.failing_regions:
            raise RegionUnavailable(region, "simulated outage (failing_regions)")
        return self._known_region(region)

    def spot_prices(self, region: str, window_start: datetime) -> list[SpotPriceQuote]:
        self._wait("spot_prices", region, window_index(window_start))
        return self.world.spot_prices(self._reachable(region), window_index(window_start))

    def ondemand_prices(self, region: str) -> list[OndemandQuote]:
        self._wait("ondemand_prices", region)
        return self.world.ondemand_prices(self._reachable(region))

    def spot_advisor_document(self, window_start: datetime) -> bytes:
        self._wait("spot_advisor_document", window_index(window_start))
        return self.world.advisor_document(window_index(window_start))


def simulated_credentials(count: int, seed: int) -> list[Credential]:
    """``count`` obviously fake credentials for the simulated cloud (``index`` = position in the list).

    Key ids look like AWS's 20-character ids but start with SIMULATED; the seed picks a 3-digit prefix and
    the index the rest, so ids are unique within a pool.
    """
    if count < 0:
        raise ValueError(f"credential count must be non-negative, got {count}")
    if count > 10**8:
        raise ValueError(f"at most 10**8 simulated credentials, got {count}")
    prefix = _stable_u64("credentials", seed) % 1000
    return [
        Credential(
            index=index,
            access_key_id=f"{SIMULATED_KEY_PREFIX}{prefix:03d}{index:08d}",
            secret_access_key=f"simulated-secret-not-a-real-key-{_stable_u64('secret', seed, index):016x}",
        )
        for index in range(count)
    ]


__all__ = [
    "ADVISOR_RANGES",
    "SimulatedAwsApi",
    "SimulatedWorld",
    "simulated_credentials",
    "simulated_world",
    "window_index",
]
