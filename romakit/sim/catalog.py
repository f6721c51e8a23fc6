"""What a sandbox fleet is made of: its products, sites, applications, tags and the
other small vocabularies device fields take their values from."""

from __future__ import annotations

DAY_MS = 86_400_000
#: 2025-01-01T00:00:00Z: a fleet's time stamps lie in the year before an epoch up to 180 days after it
BASE_EPOCH_MS = 1_735_689_600_000

#: (product_name, manufacturer_id, model, protocol_type, product_type, name prefix, weight);
#: product_type 1 is a gateway product, protocol_type 1 a cellular one (IMEI-like node_ids)
PRODUCTS: list[tuple[str, str, str, int, int, str, float]] = [
    ("SmartMeter EM300", "Huixin Metering", "EM300-3P", 0, 0, "meter", 5.0),
    ("AquaGuard Leak Sensor", "Hangzhou Aqualink", "WL-2", 1, 0, "water", 3.0),
    ("ClimaCore HVAC Controller", "Guangzhou ClimaCore", "HC-500", 2, 0, "hvac", 2.0),
    ("ThermoSense T/H Sensor", "Suzhou Sensetek", "TH-10", 0, 0, "th", 3.0),
    ("GateKeeper Access Controller", "Shenzhen Gatekeeper", "AC-7", 3, 0, "door", 1.0),
    ("EdgeLink 4G Gateway", "EdgeLink Networks", "GW-4G-X2", 0, 1, "edgegw", 3.0),
    ("OPC Bridge Industrial Gateway", "Ningbo Fieldbus", "IG-200", 4, 1, "indgw", 1.0),
]
SITES = ["sz", "bj", "sh", "gz", "hz", "cd", "wh", "xa", "nj", "tj"]
#: the applications devices belong to (a fleet uses the first two or three)
APPS = ["Metering operations", "Facility management", "Cold chain monitoring"]
TAGS = ["building-a", "building-b", "floor-1", "floor-2", "floor-3", "critical", "pilot",
        "batch-2024q3", "batch-2025q1", "outdoor", "retrofit"]
#: descriptions, keep-alive seconds and firmware versions with the weights they are drawn by
DESCRIPTIONS = {"": 4.0, "installed by field team": 1.0, "replaced in last audit": 1.0,
                "pilot site device": 1.0, "under warranty": 1.0, "firmware pinned by customer": 1.0}
KEEP_ALIVE = {"120": 2.0, "60": 1.0, "300": 1.0}
VERSIONS = [f"1.{a}.{b}" for a in range(6) for b in range(10)]
#: what a device created at run time starts with
CREATED_KEEP_ALIVE, CREATED_VERSION = "120", "1.0.0"
#: share of devices never connected, online and offline (online_status 0, 1, 2); share frozen (status 1)
ONLINE_SHARES = (0.05, 0.70, 0.25)
FROZEN_SHARE = 0.02
#: one gateway per this many devices; share of devices that are children of a gateway
DEVICES_PER_GATEWAY = 40
CHILD_SHARE = 0.6
#: the customer's staff who create and change devices: (IAM user id, user name)
STAFF = [("0b8e3c2a5f7d4e19a6c1d2e3f4a5b6c7", "wang.li"), ("1c9f4d3b6a8e5f20b7d2e3f4a5b6c7d8", "chen.jing"),
         ("2da05e4c7b9f6031c8e3f4a5b6c7d8e9", "zhao.min"), ("3eb16f5d8ca07142d9f4a5b6c7d8e9f0", "ops-automation")]
#: what the calling account may do with a device (LINK's ``permissions``)
PERMISSIONS = ("read", "access", "delete", "modify")
#: the device SDK a device that has connected reports (IoTDA's ``device_sdk_version``)
DEVICE_SDK_VERSION = "C_v1.2.0"
