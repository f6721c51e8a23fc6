"""Huawei Cloud regions: the one place the public endpoint templates live.

``endpoints("cn-north-4")`` gives the ROMA Connect, IAM and IoTDA addresses of a
region (``huaweicloudsdkroma/v2/region/roma_region.py`` and the SDK core's IAM table
follow the same pattern). IoTDA instances also have their own access addresses (shown
in the console); the regional one serves the basic edition. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from romakit.errors import InputError

#: service -> URL template; ``{region}`` is the region id
TEMPLATES = {
    "roma": "https://roma.{region}.myhuaweicloud.com",
    "iam": "https://iam.{region}.myhuaweicloud.com",
    "iotda": "https://iotda.{region}.myhuaweicloud.com",
}
#: what a region id looks like: cn-north-4, ap-southeast-3, my-kualalumpur-1, ...
_REGION_RE = re.compile(r"[a-z]{2}-[a-z]+-[0-9]{1,2}")


def check_region(region: object, setting: str = "region") -> str:
    """``region`` if it looks like a region id, else an InputError naming ``setting``."""
    if not isinstance(region, str) or not _REGION_RE.fullmatch(region):
        shown = repr(region) if isinstance(region, str) and len(region) <= 40 else type(region).__name__
        raise InputError(f"{setting} must be a region id like 'cn-north-4', got {shown}")
    return region


@dataclass(frozen=True)
class Endpoints:
    """The public endpoints of one region."""

    region: str
    roma: str
    iam: str
    iotda: str


def endpoints(region: str) -> Endpoints:
    """The ROMA Connect, IAM and IoTDA endpoints of ``region``."""
    region = check_region(region)
    return Endpoints(region, **{k: t.format(region=region) for k, t in TEMPLATES.items()})
