"""A moto account of a test's own, so tests sharing the session's moto server never see each other's resources."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import boto3


@dataclass(frozen=True, slots=True)
class MotoAccount:
    """A fresh account on the moto server: its id, a session in it and the session's credentials."""

    account_id: str
    session: boto3.Session
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        """The credentials as the AWS_* environment variables boto3 reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


def fresh_account(endpoint: str, region: str, purpose: str) -> MotoAccount:
    """A new random moto account, entered with STS AssumeRole (moto creates the account on the fly)."""
    account_id = f"{uuid.uuid4().int % 10**12:012d}"
    sts = boto3.client("sts", endpoint_url=endpoint, region_name=region)
    role = f"arn:aws:iam::{account_id}:role/logpipe-{purpose}"
    issued = sts.assume_role(RoleArn=role, RoleSessionName=purpose)["Credentials"]
    session = boto3.Session(
        aws_access_key_id=issued["AccessKeyId"],
        aws_secret_access_key=issued["SecretAccessKey"],
        aws_session_token=issued["SessionToken"],
        region_name=region,
    )
    return MotoAccount(account_id, session, issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
