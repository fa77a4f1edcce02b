"""Small helpers several test packages share."""

import json
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def allow_public_reads(s3_client: "S3Client", bucket: str, prefix: str = "videos/") -> None:
    """What a production bucket (or its CDN) is configured with: stored videos are public."""
    s3_client.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
                    }
                ],
            }
        ),
    )
