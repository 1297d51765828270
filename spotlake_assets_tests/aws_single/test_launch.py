"""Launch-time measurement and the sweep: moto's EC2 and SSM through the boto3 resource, and the simulated
lab's launch curve. Nothing may be left running, whatever happens to the run."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from spotlake_assets.aws_single.constants import LAUNCH_TAG
from spotlake_assets.aws_single.images import AmiLookup, specs_frame
from spotlake_assets.aws_single.launch import Measurement, measure_launch, request_and_poll, sweep
from spotlake_assets.aws_single.resources import Boto3Ec2Lab, SimulatedEc2Lab

REGION = "us-east-1"


@pytest.fixture
def lab(aws_env: None) -> Iterator[Boto3Ec2Lab]:
    with mock_aws():
        yield Boto3Ec2Lab()


def live(region: str = REGION) -> list[str]:
    ec2 = boto3.client("ec2", region_name=region)
    return [
        i["InstanceId"]
        for r in ec2.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )["Reservations"]
        for i in r["Instances"]
    ]


def test_architectures_and_the_al2023_ami_come_from_ec2_and_ssm(lab: Boto3Ec2Lab) -> None:
    specs = {s.instance_type: s for s in lab.instance_specs(REGION)}
    assert specs["m7g.large"].architectures == ("arm64",)
    assert "x86_64" in specs["m5.large"].architectures and specs["m5.large"].vcpus == 2
    amis = [(REGION, a, lab.latest_ami(REGION, a)) for a in ("x86_64", "arm64")]
    assert all(ami.startswith("ami-") for _, _, ami in amis)
    rows = [(s.instance_type, s.architectures, s.vcpus, s.memory_mib) for s in specs.values()]
    import pandas as pd

    lookup = AmiLookup(specs_frame(rows), pd.DataFrame(amis, columns=["Region", "Architecture", "ImageId"]))
    assert lookup.ami_for(REGION, "m7g.2xlarge") == amis[1][2]
    assert lookup.ami_for(REGION, "m5.2xlarge") == amis[0][2]
    assert lookup.smallest_of_family("m5.4xlarge") == "m5.large"


def test_a_measurement_always_cancels_and_terminates(lab: Boto3Ec2Lab) -> None:
    ami = lab.latest_ami(REGION, "x86_64")
    m = measure_launch(lab, "m5.large", REGION, ami, 2, "t1", poll_s=0.01, timeout_s=1.0)
    assert m.error is None and m.launch_time_s is not None and m.curve[-1][1] == 2
    assert len(m.instance_ids) == 2 and live() == []
    ec2 = boto3.client("ec2", region_name=REGION)
    states = {
        r["State"]
        for r in ec2.describe_spot_instance_requests(SpotInstanceRequestIds=m.request_ids)[
            "SpotInstanceRequests"
        ]
    }
    assert states <= {"cancelled", "closed"}


def test_an_error_mid_measurement_still_cleans_up(lab: Boto3Ec2Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> set[str]:
        raise RuntimeError("describe_instance_status is down")

    monkeypatch.setattr(lab.__class__, "ready_instances", lambda self, *a: broken())
    m = measure_launch(lab, "m5.large", REGION, lab.latest_ami(REGION, "x86_64"), 1, "t2", poll_s=0.01)
    assert m.error is not None and "down" in m.error
    assert live() == []


class KilledWhileSleeping(Boto3Ec2Lab):
    """A run killed between two polls (SIGKILL: no `finally` runs). Nothing is ready yet when it dies."""

    def ready_instances(self, region: str, instance_ids: Sequence[str]) -> set[str]:
        return set()

    def sleep(self, seconds: float) -> None:
        raise TimeoutError("SIGKILL")


def test_an_interrupted_run_leaves_nothing_running_after_the_sweep(lab: Boto3Ec2Lab) -> None:
    m = Measurement("m5.large", REGION, lab.latest_ami(REGION, "x86_64"), 3)
    with pytest.raises(TimeoutError):
        request_and_poll(KilledWhileSleeping(), m, {LAUNCH_TAG: "killed"}, poll_s=3.0, timeout_s=600.0)
    assert len(live()) == 3 and len(m.request_ids) == 3
    # moto dates every Spot request 2015-01-01, so only the instances' launch time tells age here.
    report = sweep(lab, [REGION, "eu-west-1"], datetime.now(UTC) + timedelta(minutes=11))
    assert set(report.terminated) == m.instance_ids and set(report.cancelled) == set(m.request_ids)
    assert live() == []


def test_the_simulated_curve_is_seeded_and_runs_on_a_virtual_clock() -> None:
    def run(seed: int) -> list[tuple[float, int]]:
        sim = SimulatedEc2Lab(seed=seed)
        m = measure_launch(sim, "m5.large", REGION, sim.latest_ami(REGION, "x86_64"), 3, "sim")
        assert sim.live_instances() == 0 and m.launch_time_s is not None
        return m.curve

    assert run(1) == run(1) != run(2)
    curve = run(1)
    assert [r for _, r in curve] == sorted(r for _, r in curve) and curve[-1][1] == 3
    assert all(b - a == pytest.approx(3.0) for (a, _), (b, _) in itertools.pairwise(curve))


def test_the_simulated_sweep_terminates_leftovers() -> None:
    sim = SimulatedEc2Lab(seed=3)
    m = Measurement("c5.large", REGION, "ami-x", 2)
    m.request_ids.extend(sim.request_spot(REGION, "c5.large", "ami-x", 2, {LAUNCH_TAG: "x"}))
    sim.sleep(200)
    assert sim.live_instances() == 2
    # Younger than the timeout: a measurement that may still be running is left alone.
    assert sweep(sim, [REGION], datetime.fromisoformat(sim.epoch)).terminated == ()
    sweep(sim, [REGION], datetime.fromisoformat(sim.epoch) + timedelta(hours=1))
    assert sim.live_instances() == 0
