"""The EC2/SSM resource of the single-account mode (architectures, AMIs, Spot launches), boto3 and simulated.

Assets and `launch.py` only see `Ec2Lab`. The boto3 implementation makes every call through botocore's retry
mode (`storage/botocore_config.client_config`), never a loop of its own. The simulated one is deterministic
from its seed: SSM answers seeded AMI ids, Spot requests are fulfilled along a seeded launch-time curve on a
virtual clock (``sleep`` advances it, so a 10-minute measurement runs in milliseconds).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from spotlake_assets.aws_single.constants import AL2023_PARAMETER
from spotlake_assets.storage.botocore_config import client_config


@dataclass(frozen=True)
class SpotRequest:
    request_id: str
    instance_id: str | None
    state: str  # open, active, cancelled, closed, failed


@dataclass(frozen=True)
class TypeSpec:
    instance_type: str
    architectures: tuple[str, ...]
    vcpus: int
    memory_mib: int


@dataclass(frozen=True)
class Tagged:
    """Resources carrying a tag: Spot requests and live instances, with when they were created."""

    requests: tuple[tuple[str, datetime, str | None], ...]  # (request id, created, instance id)
    instances: tuple[tuple[str, datetime], ...]  # (instance id, launched), pending or running only


class Ec2Lab(dg.ConfigurableResource, ABC):  # type: ignore[type-arg]
    """Every EC2/SSM call of the single-account mode."""

    @property
    @abstractmethod
    def simulated(self) -> bool: ...

    @abstractmethod
    def instance_specs(self, region: str) -> list[TypeSpec]:
        """`describe_instance_types` (all pages): ProcessorInfo.SupportedArchitectures, vCPUs and memory."""

    @abstractmethod
    def latest_ami(self, region: str, architecture: str) -> str:
        """The current Amazon Linux 2023 AMI id of ``region`` from the public SSM parameter."""

    @abstractmethod
    def request_spot(
        self, region: str, instance_type: str, image_id: str, count: int, tags: Mapping[str, str]
    ) -> list[str]:
        """One-time Spot requests for ``count`` instances, requests and instances tagged; the request ids."""

    @abstractmethod
    def spot_requests(self, region: str, request_ids: Sequence[str]) -> list[SpotRequest]: ...

    @abstractmethod
    def tag_instances(self, region: str, instance_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        """Spot requests do not pass their tags on: instances are tagged as soon as they are known."""

    @abstractmethod
    def ready_instances(self, region: str, instance_ids: Sequence[str]) -> set[str]:
        """Instances running (`describe_instances`) whose status checks pass (`describe_instance_status`)."""

    @abstractmethod
    def cancel_requests(self, region: str, request_ids: Sequence[str]) -> None: ...

    @abstractmethod
    def terminate(self, region: str, instance_ids: Sequence[str]) -> None: ...

    @abstractmethod
    def tagged(self, region: str, tag_key: str) -> Tagged:
        """Live Spot requests and instances that carry ``tag_key`` (any value)."""

    def now(self) -> float:
        """Seconds on the clock the measurement polls with (monotonic)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


_LIVE_REQUEST_STATES = ["open", "active"]
_LIVE_INSTANCE_STATES = ["pending", "running"]


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class Boto3Ec2Lab(Ec2Lab):
    """`Ec2Lab` on EC2 and SSM through boto3 (the ambient credentials: the account's own)."""

    endpoint_url: str | None = None  # a moto server in tests; None for AWS
    max_attempts: int = 8
    retry_mode: str = "adaptive"

    _clients: dict[tuple[str, str], Any] = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def simulated(self) -> bool:
        return False

    def _client(self, service: str, region: str) -> Any:
        # Imported here, not at module level: loading the definitions must not pay for it.
        import boto3

        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                config = client_config(retry_mode=self.retry_mode, max_attempts=self.max_attempts)
                session: Any = boto3.session.Session()
                client = session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=config
                )
                self._clients[(service, region)] = client
            return client

    def instance_specs(self, region: str) -> list[TypeSpec]:
        found: list[TypeSpec] = []
        pages = self._client("ec2", region).get_paginator("describe_instance_types")
        for page in pages.paginate():
            for item in page.get("InstanceTypes", []):
                archs = item.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
                found.append(
                    TypeSpec(
                        str(item["InstanceType"]),
                        tuple(sorted(str(a) for a in archs)),
                        int(item.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
                        int(item.get("MemoryInfo", {}).get("SizeInMiB", 0)),
                    )
                )
        return sorted(found, key=lambda t: t.instance_type)

    def latest_ami(self, region: str, architecture: str) -> str:
        name = AL2023_PARAMETER.format(architecture=architecture)
        answer = self._client("ssm", region).get_parameter(Name=name)
        return str(answer["Parameter"]["Value"])

    def request_spot(
        self, region: str, instance_type: str, image_id: str, count: int, tags: Mapping[str, str]
    ) -> list[str]:
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        answer = self._client("ec2", region).request_spot_instances(
            InstanceCount=count,
            Type="one-time",
            LaunchSpecification={"ImageId": image_id, "InstanceType": instance_type},
            TagSpecifications=[{"ResourceType": "spot-instances-request", "Tags": tag_list}],
        )
        return [str(r["SpotInstanceRequestId"]) for r in answer.get("SpotInstanceRequests", [])]

    def spot_requests(self, region: str, request_ids: Sequence[str]) -> list[SpotRequest]:
        if not request_ids:
            return []
        answer = self._client("ec2", region).describe_spot_instance_requests(
            SpotInstanceRequestIds=list(request_ids)
        )
        return [
            SpotRequest(str(r["SpotInstanceRequestId"]), r.get("InstanceId"), str(r.get("State", "open")))
            for r in answer.get("SpotInstanceRequests", [])
        ]

    def tag_instances(self, region: str, instance_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        if instance_ids:
            self._client("ec2", region).create_tags(
                Resources=list(instance_ids), Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
            )

    def ready_instances(self, region: str, instance_ids: Sequence[str]) -> set[str]:
        if not instance_ids:
            return set()
        ec2 = self._client("ec2", region)
        running = {
            str(i["InstanceId"])
            for r in ec2.describe_instances(InstanceIds=list(instance_ids)).get("Reservations", [])
            for i in r.get("Instances", [])
            if i.get("State", {}).get("Name") == "running"
        }
        if not running:
            return set()
        statuses = ec2.describe_instance_status(InstanceIds=sorted(running)).get("InstanceStatuses", [])
        return {
            str(s["InstanceId"])
            for s in statuses
            if s.get("InstanceStatus", {}).get("Status") == "ok"
            and s.get("SystemStatus", {}).get("Status") == "ok"
        }

    def cancel_requests(self, region: str, request_ids: Sequence[str]) -> None:
        if request_ids:
            self._client("ec2", region).cancel_spot_instance_requests(
                SpotInstanceRequestIds=list(request_ids)
            )

    def terminate(self, region: str, instance_ids: Sequence[str]) -> None:
        if instance_ids:
            self._client("ec2", region).terminate_instances(InstanceIds=list(instance_ids))

    def tagged(self, region: str, tag_key: str) -> Tagged:
        ec2 = self._client("ec2", region)
        requests = ec2.describe_spot_instance_requests(
            Filters=[
                {"Name": "tag-key", "Values": [tag_key]},
                {"Name": "state", "Values": _LIVE_REQUEST_STATES},
            ]
        ).get("SpotInstanceRequests", [])
        instances = ec2.describe_instances(
            Filters=[
                {"Name": "tag-key", "Values": [tag_key]},
                {"Name": "instance-state-name", "Values": _LIVE_INSTANCE_STATES},
            ]
        ).get("Reservations", [])
        return Tagged(
            requests=tuple(
                (str(r["SpotInstanceRequestId"]), _utc(r["CreateTime"]), r.get("InstanceId"))
                for r in requests
            ),
            instances=tuple(
                (str(i["InstanceId"]), _utc(i["LaunchTime"]))
                for res in instances
                for i in res.get("Instances", [])
            ),
        )


# --- the simulated EC2 -------------------------------------------------------------------------------------
# Fulfilment of a Spot request: log-normal around 25 s (the capacity search), then boot to passing status
# checks around 45 s; scarcer families (accelerated) take longer. Seeded per (seed, region, type, index).
_FULFIL_MEDIAN_S = 25.0
_BOOT_MEDIAN_S = 45.0
_SIGMA = 0.5


def _unit(*parts: object) -> float:
    text = "\x1f".join(map(str, parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2.0**64


def _lognormal(median: float, *parts: object) -> float:
    # Box-Muller on two seeded uniforms: no global random state.
    u1, u2 = max(_unit("a", *parts), 1e-12), _unit("b", *parts)
    return median * math.exp(_SIGMA * math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2))


@dataclass
class _SimInstance:
    instance_id: str
    region: str
    ready_at: float
    launched: datetime
    tags: dict[str, str]
    state: str = "none"  # not launched yet; then pending, running, terminated


@dataclass
class _SimRequest:
    request_id: str
    region: str
    fulfil_at: float
    instance: _SimInstance
    created: datetime
    tags: dict[str, str]
    state: str = "open"


class SimulatedEc2Lab(Ec2Lab):
    """SIMULATED EC2 and SSM: architectures from the packaged catalogue, seeded AMI ids, seeded launch curves
    on a virtual clock. State is per resource instance (a Dagster run), like the simulated SPS quota."""

    seed: int = 7
    scale: float = 1.0
    # The wall-clock instant the virtual clock starts at (creation times of simulated resources).
    epoch: str = "2026-01-01T00:00:00+00:00"

    _clock: float = PrivateAttr(default=0.0)
    _requests: dict[str, _SimRequest] = PrivateAttr(default_factory=dict)
    _counter: int = PrivateAttr(default=0)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def simulated(self) -> bool:
        return True

    def now(self) -> float:
        return self._clock

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._clock += max(0.0, seconds)
            self._advance()

    def _wall(self) -> datetime:
        return datetime.fromisoformat(self.epoch) + timedelta(seconds=self._clock)

    def instance_specs(self, region: str) -> list[TypeSpec]:
        # Imported here: the packaged catalogue is only loaded where it is used.
        from spotlake_assets.aws.catalogue import load_catalogue

        catalogue = load_catalogue(self.scale)
        offered = {o.instance_type for o in catalogue.offerings_by_region.get(region, ())}
        return [
            TypeSpec(name, tuple(sorted(spec.architectures)), spec.vcpus, spec.memory_mib)
            for name, spec in sorted(catalogue.instance_types.items())
            if name in offered
        ]

    def latest_ami(self, region: str, architecture: str) -> str:
        # AMIs are republished every few weeks: the id changes every 14 days of the virtual calendar.
        fortnight = int(self._wall().timestamp()) // (14 * 86400)
        digest = hashlib.blake2b(f"{self.seed}|{region}|{architecture}|{fortnight}".encode(), digest_size=9)
        return f"ami-{digest.hexdigest()[:17]}"

    def request_spot(
        self, region: str, instance_type: str, image_id: str, count: int, tags: Mapping[str, str]
    ) -> list[str]:
        scarce = 2.5 if instance_type[:1] in {"p", "g", "u", "x"} else 1.0
        ids: list[str] = []
        with self._lock:
            for _ in range(count):
                self._counter += 1
                n = self._counter
                fulfil = _lognormal(_FULFIL_MEDIAN_S * scarce, self.seed, region, instance_type, n, "fulfil")
                boot = _lognormal(_BOOT_MEDIAN_S, self.seed, region, instance_type, n, "boot")
                instance = _SimInstance(
                    f"i-sim{n:013x}", region, self._clock + fulfil + boot, self._wall(), {}
                )
                request = _SimRequest(
                    f"sir-sim{n:08x}", region, self._clock + fulfil, instance, self._wall(), dict(tags)
                )
                self._requests[request.request_id] = request
                ids.append(request.request_id)
            self._advance()
        return ids

    def _advance(self) -> None:
        for request in self._requests.values():
            if request.state == "open" and self._clock >= request.fulfil_at:
                request.state = "active"
                request.instance.state = "pending"
                request.instance.launched = self._wall()
            if request.instance.state == "pending" and self._clock >= request.instance.ready_at:
                request.instance.state = "running"

    def spot_requests(self, region: str, request_ids: Sequence[str]) -> list[SpotRequest]:
        with self._lock:
            found = [self._requests[r] for r in request_ids if r in self._requests]
            return [
                SpotRequest(
                    r.request_id,
                    r.instance.instance_id if r.instance.state != "none" else None,
                    r.state,
                )
                for r in found
            ]

    def tag_instances(self, region: str, instance_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        with self._lock:
            for request in self._requests.values():
                if request.instance.instance_id in instance_ids:
                    request.instance.tags.update(tags)

    def ready_instances(self, region: str, instance_ids: Sequence[str]) -> set[str]:
        with self._lock:
            return {
                r.instance.instance_id
                for r in self._requests.values()
                if r.instance.instance_id in instance_ids and r.instance.state == "running"
            }

    def cancel_requests(self, region: str, request_ids: Sequence[str]) -> None:
        with self._lock:
            for request_id in request_ids:
                request = self._requests.get(request_id)
                if request is not None and request.state in _LIVE_REQUEST_STATES:
                    # As on AWS, cancelling a fulfilled request leaves its instance running.
                    request.state = "cancelled" if request.state == "open" else "closed"

    def terminate(self, region: str, instance_ids: Sequence[str]) -> None:
        with self._lock:
            for request in self._requests.values():
                if (
                    request.instance.instance_id in instance_ids
                    and request.instance.state in _LIVE_INSTANCE_STATES
                ):
                    request.instance.state = "terminated"

    def tagged(self, region: str, tag_key: str) -> Tagged:
        with self._lock:
            mine = [r for r in self._requests.values() if r.region == region and tag_key in r.tags]
            return Tagged(
                requests=tuple(
                    (r.request_id, r.created, r.instance.instance_id if r.instance.state != "none" else None)
                    for r in mine
                    if r.state in _LIVE_REQUEST_STATES
                ),
                instances=tuple(
                    (r.instance.instance_id, r.instance.launched)
                    for r in mine
                    if r.instance.state in _LIVE_INSTANCE_STATES
                ),
            )

    def live_instances(self) -> int:
        """Instances pending or running (simulation only: tests prove nothing is left)."""
        with self._lock:
            return sum(
                1
                for r in self._requests.values()
                if r.instance.state in _LIVE_INSTANCE_STATES or r.state == "open"
            )
