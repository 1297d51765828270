"""The credential pool (CSV, Secrets Manager) and the per-day ledger with conditional writes."""

from __future__ import annotations

import threading

import boto3
import pytest

from spotlake_assets.aws.budget import CredentialLedger, CredentialPoolExhausted
from spotlake_assets.aws.credentials import AwsCredentialPool, CredentialPoolError, parse_credentials_csv
from spotlake_assets.aws.models import Credential
from spotlake_assets.storage.lake import LakeResource, LocalLake, S3Lake

# Obviously fake keys: fixtures never hold anything that looks like a real secret.
CSV = "AccessKeyId,SecretAccessKey\nFAKEKEY0000000000001,fake-secret-1\nFAKEKEY0000000000002,fake-secret-2\n"


def pool(n: int) -> list[Credential]:
    return [Credential(i, f"FAKEKEY{i:013d}", f"fake-secret-{i}") for i in range(n)]


def test_csv_parses_in_order() -> None:
    creds = parse_credentials_csv(CSV, "test")
    assert [c.access_key_id for c in creds] == ["FAKEKEY0000000000001", "FAKEKEY0000000000002"]
    assert [c.index for c in creds] == [0, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Key,Secret\nA,B\n", "lacks columns"),
        ("AccessKeyId,SecretAccessKey\n", "no credentials"),
        ("AccessKeyId,SecretAccessKey\nFAKEKEY1,\n", "line 2 has an empty"),
        ("AccessKeyId,SecretAccessKey\nFAKEKEY1,s1\nFAKEKEY1,s2\n", "line 3 repeats"),
    ],
)
def test_bad_csv_is_named_without_secrets(text: str, message: str) -> None:
    with pytest.raises(CredentialPoolError, match=message) as info:
        parse_credentials_csv(text, "lake:config/aws/credentials.csv")
    assert "s1" not in str(info.value) and "s2" not in str(info.value)


def test_a_byte_order_mark_before_the_header_is_accepted(local_lake: LocalLake) -> None:
    # Excel's "CSV UTF-8" and Notepad save one; the header then read "\ufeffAccessKeyId".
    local_lake.write_bytes("config/aws/credentials.csv", b"\xef\xbb\xbf" + CSV.encode())
    creds = AwsCredentialPool(source="lake_csv").load(local_lake)
    assert [c.access_key_id for c in creds] == ["FAKEKEY0000000000001", "FAKEKEY0000000000002"]
    assert [c.index for c in parse_credentials_csv("\ufeff" + CSV, "secretsmanager:x")] == [0, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Blank lines are skipped by the reader: the line named is the file's, not the row's position.
        ("AccessKeyId,SecretAccessKey\n\nFAKEKEY1,\n", "line 3 has an empty"),
        ('AccessKeyId,SecretAccessKey\nFAKEKEY1,"s1\nstill s1"\nFAKEKEY2,\n', "line 4 has an empty"),
        ("Key,Secret\nA,B\n", "line 1 \\(header\\) lacks columns"),
    ],
)
def test_csv_errors_name_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(CredentialPoolError, match=f"^lake:config/aws/credentials.csv: {message}"):
        parse_credentials_csv(text, "lake:config/aws/credentials.csv")


def test_secret_never_in_repr() -> None:
    credential = pool(1)[0]
    assert "fake-secret" not in repr(credential)
    assert "fake-secret" not in credential.label


def test_pool_from_the_read_bucket_in_test(moto_s3: None) -> None:
    boto3.client("s3").put_object(Bucket="spotlake-read", Key="config/aws/credentials.csv", Body=CSV.encode())
    lake = S3Lake(bucket="spotlake-write", config_bucket="spotlake-read", require_distinct_buckets=True)
    assert len(AwsCredentialPool(source="lake_csv").load(lake)) == 2


def test_pool_from_secrets_manager(moto_s3: None, local_lake: LocalLake) -> None:
    boto3.client("secretsmanager").create_secret(Name="spotlake/sps", SecretString=CSV)
    source = AwsCredentialPool(source="secrets_manager", secret_id="spotlake/sps")
    assert [c.index for c in source.load(local_lake)] == [0, 1]
    assert source.describe() == "secretsmanager:spotlake/sps"


def test_ledger_reuses_the_same_credential_for_a_slot(local_lake: LocalLake) -> None:
    ledger = CredentialLedger(local_lake, "2026-03-01", pool(5))
    first = ledger.credential_for(10, 0)
    assert ledger.credential_for(10, 0) == first
    # A new process (a retried run) finds the same assignment in the lake.
    again = CredentialLedger(local_lake, "2026-03-01", pool(5)).credential_for(10, 0)
    assert again == first
    assert ledger.credential_for(15, 0) != first
    # Another day starts a fresh ledger.
    assert CredentialLedger(local_lake, "2026-03-02", pool(5)).credential_for(15, 0).index == 0


def test_rotation_retires_and_exhaustion_is_named(local_lake: LocalLake) -> None:
    ledger = CredentialLedger(local_lake, "2026-03-01", pool(2))
    first = ledger.credential_for(1, 0)
    second = ledger.rotate(1, 0, first)
    assert second != first and ledger.rotations == 1
    assert ledger.credential_for(1, 0) == second
    with pytest.raises(CredentialPoolExhausted, match="all 2 credentials"):
        ledger.rotate(1, 0, second)


def test_concurrent_ledgers_never_share_a_credential(s3_server_lake: LakeResource) -> None:
    # A moto server applying one request at a time: in-process moto's conditional writes are not atomic.
    creds = pool(40)
    chosen: dict[tuple[int, int], int] = {}
    lock = threading.Lock()

    def worker(slot_group: int) -> None:
        # Separate ledger objects stand for separate processes racing on the same S3 object.
        ledger = CredentialLedger(s3_server_lake, "2026-03-01", creds)
        for capacity in (1, 5):
            credential = ledger.credential_for(capacity, slot_group)
            with lock:
                chosen[(capacity, slot_group)] = credential.index

    threads = [threading.Thread(target=worker, args=(g,)) for g in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(chosen) == 16
    assert len(set(chosen.values())) == 16
    final = CredentialLedger(s3_server_lake, "2026-03-01", creds)
    assert all(final.credential_for(c, g).index == i for (c, g), i in chosen.items())
