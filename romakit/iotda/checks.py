"""The gateway's input checks (``checks.address(...)``, ``checks.statuses(...)``, ...):
refuse bad input before anything is sent.

Each check raises :class:`~romakit.errors.InputError` with a message that names the
offending value, or returns the input in the shape the gateway sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from romakit._net import is_loopback
from romakit.engine import BatchOptions
from romakit.errors import InputError
from romakit.ids import IOTDA_ID_RE, iotda_ids
from romakit.operations import OPERATIONS, check_chunk

if TYPE_CHECKING:  # pragma: no cover
    from romakit.iotda.settings import GatewaySettings

#: what one child device of an add may carry
ADD_KEYS = frozenset({"node_id", "product_id", "device_id", "name", "description", "parent_device_id", "extension_info"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def address(host: Any, port: Any, device_id: Any) -> str:
    """The broker's host (stripped), after checking it, the port and the gateway's id."""
    if not isinstance(host, str) or not host.strip():
        raise InputError(f"host must be a non-empty string, got {host!r}")
    if not _is_int(port) or not 1 <= port <= 65535:
        raise InputError(f"port must be an int in 1..65535, got {port!r}")
    if not isinstance(device_id, str) or not IOTDA_ID_RE.match(device_id):
        raise InputError(f"device_id must be 1..128 letters, digits, '_' or '-', got {device_id!r}")
    return host.strip()


def limits(s: GatewaySettings) -> None:
    """The connection's and the batches' limits."""
    keepalive, timeout, connect_timeout, max_in_flight, rate, sig = (
        s.keepalive, s.timeout, s.connect_timeout, s.max_in_flight, s.rate, s.sig)
    if not _is_int(keepalive) or not 30 <= keepalive <= 1200:
        raise InputError(f"keepalive must be 30..1200 seconds (IoTDA's range), got {keepalive!r}")
    for name, val in (("timeout", timeout), ("connect_timeout", connect_timeout)):
        if not isinstance(val, (int, float)) or isinstance(val, bool) or not val > 0:
            raise InputError(f"{name} must be a number of seconds > 0, got {val!r}")
    if not _is_int(max_in_flight) or max_in_flight < 1:
        raise InputError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0):
        raise InputError(f"rate must be a number > 0 or None, got {rate!r}")
    if sig not in (0, 1) or isinstance(sig, bool):
        raise InputError(f"sig must be 0 (timestamp not checked) or 1 (checked), got {sig!r}")


def tls(s: GatewaySettings, host: str) -> bool:
    """Whether to use TLS to ``host`` (the settings' host, checked): on for ports 8883 and
    443 unless told; plain MQTT off loopback is refused unless ``allow_insecure`` (the
    password would cross the network in clear); TLS to an IP literal off loopback is
    refused (IoTDA's certificates name its domain)."""
    use = (s.port in (8883, 443)) if s.tls is None else bool(s.tls)
    ca_file, certfile, allow_insecure = s.ca_file, s.certfile, s.allow_insecure
    if ca_file is not None and not use:
        raise InputError("ca_file was given but TLS is off; pass tls=True (IoTDA's TLS ports: 8883, wss 443)")
    if certfile is not None and not use:
        raise InputError("certfile (X.509 login) needs TLS; pass tls=True (port 8883, or wss on 443)")
    if use and not is_loopback(host) and _is_ip(host):
        raise InputError(
            f"TLS to the IP address {host!r} is refused: IoTDA's certificates name the instance's domain, "
            "not an IP, so the host-name check would fail, and turning that check off would let anyone "
            "on the path pose as the broker. Connect by the access address's domain name (IoTDA console > "
            "Overview > Access Details)")
    if not use and not allow_insecure and not is_loopback(host):
        raise InputError(
            f"plain MQTT to {host!r} would send the device password unencrypted; "
            "use TLS (port 8883, tls=True) or pass allow_insecure=True"
        )
    return use


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def transport(value: Any, proxy: Any, certfile: Any, keyfile: Any) -> str:
    """The MQTT transport (``tcp`` or ``websockets``) after checking it, the proxy URL
    and the X.509 files."""
    if value not in ("tcp", "websockets"):
        raise InputError(f"transport must be 'tcp' or 'websockets' (wss on 443), got {value!r}")
    if proxy is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(proxy) if isinstance(proxy, str) else None
        if parts is None or parts.scheme not in ("http", "socks5", "socks5h", "socks4") or not parts.hostname \
                or not parts.port:
            raise InputError("proxy must be a URL like http://proxy:3128 or socks5://proxy:1080")
    if (certfile is None) != (keyfile is None):
        raise InputError("certfile and keyfile go together (the device's X.509 certificate and its key)")
    import os

    for name, path in (("certfile", certfile), ("keyfile", keyfile)):
        if path is not None and not os.path.isfile(path):
            raise InputError(f"{name} {path!r} does not exist")
    return value


def batch_options(operation: str, options: Mapping[str, Any]) -> BatchOptions:
    """The batch options of one call of ``operation``, checked (chunk size within its
    limit; the pace and the per-try bound are the gateway's own)."""
    opts = BatchOptions.from_kwargs(options, refuse=("rate", "attempt_timeout"), where=operation)
    return opts.merged(chunk_size=check_chunk(operation, opts.chunk_size or OPERATIONS[operation].default_chunk))


def add_specs(devices: Any) -> dict[str, dict[str, Any]]:
    """The children to add, by ``node_id``: dicts (or a DataFrame's rows) of :data:`ADD_KEYS`
    with ``node_id`` and ``product_id``; None values dropped, ``product_id`` as a string."""
    if hasattr(devices, "to_dict") and not isinstance(devices, Mapping):  # a DataFrame
        devices = devices.to_dict("records")
    if isinstance(devices, Mapping) or isinstance(devices, (str, bytes)) or not isinstance(devices, Iterable):
        raise InputError(f"devices must be a list of dicts (node_id, product_id, ...), got {type(devices).__name__}")
    items = list(devices)
    if not items:
        raise InputError("no devices given")
    bad: list[str] = []
    specs: dict[str, dict[str, Any]] = {}
    for i, d in enumerate(items):
        if not isinstance(d, Mapping):
            bad.append(f"item {i}: not a dict ({type(d).__name__})")
            continue
        unknown = sorted(set(d) - ADD_KEYS)
        node_id, pid, dev_id = d.get("node_id"), d.get("product_id"), d.get("device_id")
        if unknown:
            bad.append(f"item {i}: unknown key(s) {', '.join(map(repr, unknown))}")
        elif not isinstance(node_id, str) or not 1 <= len(node_id) <= 64:
            bad.append(f"item {i}: node_id {node_id!r} must be a string of 1..64 characters")
        elif pid is None or isinstance(pid, bool) or not isinstance(pid, (str, int)) or pid == "":
            bad.append(f"item {i}: product_id {pid!r} is missing or not a string/int")
        elif dev_id is not None and (not isinstance(dev_id, str) or not IOTDA_ID_RE.match(dev_id)):
            bad.append(f"item {i}: device_id {dev_id!r} is not a valid IoTDA device id")
        elif node_id in specs:
            bad.append(f"item {i}: node_id {node_id!r} given twice")
        else:
            spec = {k: v for k, v in d.items() if v is not None}
            spec["product_id"] = str(pid)
            specs[node_id] = spec
    if bad:
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise InputError(f"{len(bad)} of {len(items)} devices refused, nothing was sent: {'; '.join(bad[:10])}{more}")
    return specs


def statuses(statuses: Any) -> dict[str, str]:
    """``{device_id: "ONLINE" | "OFFLINE"}`` from such a dict or a list of
    ``{"device_id", "status"}`` dicts (status case-insensitive)."""
    if isinstance(statuses, Mapping):
        pairs = list(statuses.items())
    elif isinstance(statuses, Iterable) and not isinstance(statuses, (str, bytes)):
        pairs = []
        for i, item in enumerate(statuses):
            if not isinstance(item, Mapping) or set(item) - {"device_id", "status"}:
                raise InputError(f"status item {i} must be a dict with device_id and status, got {item!r}")
            pairs.append((item.get("device_id"), item.get("status")))
    else:
        raise InputError(f"statuses must be a dict {{device_id: status}} or a list of dicts, got {type(statuses).__name__}")
    if not pairs:
        raise InputError("no statuses given")
    iotda_ids([d for d, _ in pairs])  # names bad ids
    out: dict[str, str] = {}
    bad: list[str] = []
    for dev, st in pairs:
        s = st.upper() if isinstance(st, str) else st
        if s not in ("ONLINE", "OFFLINE"):
            bad.append(f"{dev!r}: status {st!r} is not ONLINE or OFFLINE")
        elif out.get(dev, s) != s:
            bad.append(f"{dev!r}: given both ONLINE and OFFLINE")
        else:
            out[dev] = s
    if bad:
        raise InputError(f"{len(bad)} statuses refused, nothing was sent: {'; '.join(bad[:10])}")
    return out


def sync_version(version: Any) -> int | None:
    """The child-list version a sync asks from: an int >= 0, or None (everything)."""
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise InputError(f"version must be an int >= 0 or None, got {version!r}")
    return version


__all__ = ["ADD_KEYS", "add_specs", "address", "batch_options", "limits", "statuses", "sync_version", "tls",
           "transport"]
