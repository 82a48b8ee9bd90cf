"""Exports of a dataset's event signatures and periodic background, per device: the earlier tool's
`signature.csv`, the smart-home firewall's YAML device profile and nftables rules, and an RFC 8520 MUD file.

The pure functions take plain rows (dicts with the columns of `event_signatures` and `flow_patterns`) and a
`Device`, so they run without Spark; `export` reads the lake tables and writes
`<out_dir>/<device>/{signature-<event>.csv, profile.yaml, firewall.nft, <device>.mud.json}`.
Semantics follow the reference (signature-extraction, "Translation to firewall and profile"): the initiator of
a flow is its source, the fixed (server) port is kept and the ephemeral one wildcarded, names matched by their
host key (leftmost label dropped) are written `$.<key>` in the profile.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import logging
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from iotlake.errors import IotlakeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from iotlake.config import Config

log = logging.getLogger(__name__)

Row = Mapping[str, Any]

FORMATS = ("csv", "yaml", "nft", "mud")
CSV_HEADER = ["src", "sport", "dst", "dport", "transport_protocol", "application_protocol"]
# The application layers the earlier tool parsed, with the name its CSV gives them.
CSV_APPLICATION = {
    "dns": "DNS Question Record",
    "http": "HTTP Request",
    "coap": "CoAP",
    "dhcp": "DHCP options",
}
DNS_QTYPES = {
    "1": "A",
    "2": "NS",
    "5": "CNAME",
    "6": "SOA",
    "12": "PTR",
    "15": "MX",
    "16": "TXT",
    "28": "AAAA",
    "33": "SRV",
    "64": "SVCB",
    "65": "HTTPS",
    "255": "ANY",
}
COAP_TYPES = {"0": "CON", "1": "NON", "2": "ACK", "3": "RST"}
COAP_METHODS = {"1": "GET", "2": "POST", "3": "PUT", "4": "DELETE", "5": "FETCH", "6": "PATCH", "7": "iPATCH"}
DHCP_TYPES = {
    "1": "discover",
    "2": "offer",
    "3": "request",
    "4": "decline",
    "5": "ack",
    "6": "nak",
    "7": "release",
    "8": "inform",
}
IP_PROTOCOLS = {"tcp": 6, "udp": 17}
DHCP_PORTS = {"server": 67, "client": 68}
BROADCAST = "255.255.255.255"
MUD_BASE_URL = "https://mud.iotlake.invalid"


# --------------------------------------------------------------------------- devices and rules


@dataclass(frozen=True)
class Peer:
    """Another device of the site, seen at some LAN address."""

    name: str
    vendor: str | None = None


@dataclass(frozen=True)
class Device:
    """What the exports need to know about a device: its name and addresses, its site's gateways and peers
    (LAN address → other device); `network` is the site's own prefix that holds its address, when known."""

    name: str
    mac: str | None = None
    ipv4: str | None = None
    network: str | None = None
    vendor: str | None = None
    gateways: tuple[str, ...] = ()
    peers: Mapping[str, Peer] = field(default_factory=dict)


def is_ip(host: str) -> bool:
    """True when `host` is an IPv4 or IPv6 address literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_key(host: str) -> str:
    """The match key of a host, as the SQL `host_key`: a name minus its leftmost label when it has at least
    three labels; addresses unchanged."""
    if is_ip(host):
        return host
    labels = host.strip().rstrip(".").lower().split(".")
    return ".".join(labels[1:] if len(labels) >= 3 else labels)


def _is_local(host: str) -> bool:
    if not is_ip(host):
        return False
    address = ipaddress.ip_address(host)
    return address.is_private or address.is_link_local or address.is_multicast or host == BROADCAST


def _is_group(host: str) -> bool:
    """Broadcast or multicast: an address no single peer owns."""
    return is_ip(host) and (host == BROADCAST or ipaddress.ip_address(host).is_multicast)


def parse_app_fields(text: str | None) -> dict[str, str]:
    """`'qtype=1 qname=tplinkra.com'` → `{'qtype': '1', 'qname': 'tplinkra.com'}`."""
    fields: dict[str, str] = {}
    for token in (text or "").split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


@dataclass(frozen=True)
class FlowRule:
    """One flow of a signature or of the background, seen from the device: who starts it, which side serves
    the fixed port, the remote host and the application fields."""

    remote: str
    remote_key: str
    scope: str
    transport: str
    application: str
    fixed_port: int | None
    device_serves: bool
    device_initiates: bool
    fields: tuple[tuple[str, str], ...]
    bidirectional: bool

    @classmethod
    def from_row(cls, row: Row) -> FlowRule:
        """A rule from an `event_signatures` row (or a background row with the same columns)."""
        remote = str(row["remote"])
        transport = str(row["transport"]).lower()
        bidirectional = row.get("bidirectional")
        if bidirectional is None:
            # Without per-direction counts: a TCP flow always has packets both ways (handshake); a UDP flow
            # of two packets or more is taken as request and answer.
            bidirectional = transport == "tcp" or (_int_or_none(row.get("min_packets")) or 0) >= 2
        return cls(
            remote=remote,
            remote_key=str(row.get("remote_key") or host_key(remote)),
            scope=str(row.get("scope") or ("LAN" if _is_local(remote) else "WAN")),
            transport=transport,
            application=str(row.get("application") or f"{transport}:{row.get('fixed_port')}"),
            fixed_port=_int_or_none(row.get("fixed_port")),
            device_serves=row.get("device_role") == "server",
            device_initiates=(row.get("initiator") or "device") == "device",
            fields=tuple(parse_app_fields(row.get("app_fields")).items()),
            bidirectional=bool(bidirectional),
        )

    @property
    def wildcard(self) -> bool:
        """True when the remote is a name matched by its key (so any sibling name matches too)."""
        return not is_ip(self.remote) and self.remote_key != self.remote.lower().rstrip(".")

    def ports(self) -> tuple[int | None, int | None]:
        """(device port, remote port): the fixed port on the serving side, DHCP's two well-known ports, else
        None for the ephemeral side."""
        device_port = self.fixed_port if self.device_serves else None
        remote_port = None if self.device_serves else self.fixed_port
        if self.application == "dhcp" and self.transport == "udp":
            if self.device_serves:
                remote_port = remote_port or DHCP_PORTS["client"]
            else:
                device_port = device_port or DHCP_PORTS["client"]
        return device_port, remote_port


# --------------------------------------------------------------------------- signature.csv


def _order(elements: Iterable[Row]) -> list[Row]:
    return sorted(elements, key=lambda r: int(r["element_no"]))


def signature_rows(elements: Iterable[Row], device_ip: str | None) -> list[list[str]]:
    """The CSV rows of one signature (one device and event) in element order: initiator as src, the device
    written as its IPv4 address (`self` when unknown), the ephemeral port empty."""
    rows = []
    for element in _order(elements):
        rule = FlowRule.from_row(element)
        device_port, remote_port = rule.ports()
        me = (device_ip or "self", "" if device_port is None else str(device_port))
        them = (rule.remote, "" if remote_port is None else str(remote_port))
        src, dst = (me, them) if rule.device_initiates else (them, me)
        app = CSV_APPLICATION.get(rule.application, "")
        rows.append([src[0], src[1], dst[0], dst[1], rule.transport.upper(), app])
    return rows


def signature_csv(elements: Iterable[Row], device_ip: str | None) -> str:
    """The earlier tool's `signature.csv` text for one signature."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(signature_rows(elements, device_ip))
    return buffer.getvalue()


# --------------------------------------------------------------------------- background


def background_rows(patterns: Iterable[Row]) -> list[dict[str, Any]]:
    """The device's periodic background from `flow_patterns` rows (one per capture): one row per remote,
    transport, application and server port that is periodic in at least one capture, with the median period
    over those captures and the total flow count."""
    groups: dict[tuple, list[Row]] = {}
    for row in patterns:
        key = (row["remote"], row["transport"], row["application"], row.get("server_port"))
        groups.setdefault(key, []).append(row)
    out = []
    for (remote, transport, application, port), rows in groups.items():
        periodic = [r for r in rows if r.get("periodic")]
        if not periodic:
            continue
        periods = [float(r["period_s"]) for r in periodic if r.get("period_s") is not None]
        first = periodic[0]
        out.append(
            {
                "remote": remote,
                "remote_key": first.get("remote_key") or host_key(str(remote)),
                "scope": first.get("scope"),
                "transport": transport,
                "application": application,
                "fixed_port": port,
                "device_role": first.get("device_role") or "client",
                "initiator": first.get("initiator") or "device",
                "app_fields": None,
                "bidirectional": first.get("bidirectional"),
                "min_packets": min((r.get("packets") or 0) // max(r.get("flows") or 1, 1) for r in rows),
                "period_s": statistics.median(periods) if periods else None,
                "flows": sum(int(r.get("flows") or 0) for r in rows),
            }
        )
    return sorted(out, key=lambda r: (str(r["remote"]), r["transport"], str(r["application"])))


# --------------------------------------------------------------------------- device profile (YAML)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "x"


def remote_label(rule: FlowRule, device: Device) -> str:
    """How the profile writes the remote host: `gateway`, `broadcast`, a peer device's name, `$.<key>` for a
    name matched by its key, else the name or address."""
    if rule.remote in device.gateways:
        return "gateway"
    if rule.remote == BROADCAST:
        return "broadcast"
    if rule.remote in device.peers:
        return device.peers[rule.remote].name
    if rule.wildcard:
        return f"$.{rule.remote_key}"
    return rule.remote


def application_layer(rule: FlowRule) -> dict[str, Any] | None:
    """The profile's application-layer section of a rule (DNS, HTTP, CoAP, DHCP), or None."""
    fields = dict(rule.fields)
    if rule.application == "dns" and ("qname" in fields or "qtype" in fields):
        layer: dict[str, Any] = {}
        if "qtype" in fields:
            layer["qtype"] = DNS_QTYPES.get(fields["qtype"], fields["qtype"])
        if "qname" in fields:
            layer["domain-name"] = f"$.{fields['qname']}"
        return {"dns": layer}
    if rule.application == "http" and ("method" in fields or "uri" in fields):
        http = {k: fields[k] for k in ("method", "uri") if k in fields}
        return {"http": http}
    if rule.application == "coap" and ("coap" in fields or "coap_uri" in fields):
        coap: dict[str, Any] = {}
        kind, _, code = fields.get("coap", "").partition("/")
        if kind:
            coap["type"] = COAP_TYPES.get(kind, kind)
        if code:
            coap["method"] = COAP_METHODS.get(code, code)
        if "coap_uri" in fields:
            coap["uri"] = "/" + fields["coap_uri"].lstrip("/")
        return {"coap": coap}
    if rule.application == "dhcp" and "dhcp" in fields:
        return {"dhcp": {"type": DHCP_TYPES.get(fields["dhcp"], fields["dhcp"]), "client-mac": "self"}}
    return None


def policy_body(rule: FlowRule, device: Device) -> dict[str, Any]:
    """A single policy: `protocols` (ipv4 src/dst with the device as `self`, transport with its fixed ports,
    application fields) and `bidirectional` when packets flow both ways."""
    remote = remote_label(rule, device)
    device_port, remote_port = rule.ports()
    if rule.device_initiates:
        src, dst, sport, dport = "self", remote, device_port, remote_port
    else:
        src, dst, sport, dport = remote, "self", remote_port, device_port
    transport: dict[str, int] = {}
    if sport is not None:
        transport["src-port"] = sport
    if dport is not None:
        transport["dst-port"] = dport
    family = "ipv6" if is_ip(rule.remote) and ipaddress.ip_address(rule.remote).version == 6 else "ipv4"
    protocols: dict[str, Any] = {family: {"src": src, "dst": dst}, rule.transport: transport}
    protocols.update(application_layer(rule) or {})
    body: dict[str, Any] = {"protocols": protocols}
    if rule.bidirectional:
        body["bidirectional"] = True
    return body


def policy_name(rule: FlowRule, device: Device) -> str:
    """A readable policy name: application, then source and destination labels (`self` for the device)."""
    remote = remote_label(rule, device).removeprefix("$.")
    ends = ("self", remote) if rule.device_initiates else (remote, "self")
    return _slug("-".join([rule.application, *ends]))


@dataclass
class Policy:
    """A policy of the profile with the flow it came from and its optional stats."""

    name: str
    rule: FlowRule
    body: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    def as_yaml(self) -> dict[str, Any]:
        """The policy as the profile writes it."""
        out = dict(self.body)
        if self.stats:
            out["stats"] = dict(self.stats)
        return out


@dataclass
class DeviceProfile:
    """A device's policies (signatures' flows and periodic background) and its events as policy sequences."""

    device: Device
    policies: dict[str, Policy]
    interactions: dict[str, list[str]]


def build_profile(device: Device, signatures: Iterable[Row], background: Iterable[Row] = ()) -> DeviceProfile:
    """The device profile from the device's `event_signatures` rows (all events) and its background rows
    (`background_rows`); identical policies are shared between events and the background."""
    policies: dict[str, Policy] = {}
    by_content: dict[str, str] = {}

    def add(rule: FlowRule) -> Policy:
        body = policy_body(rule, device)
        content = json.dumps(body, sort_keys=True)
        if content in by_content:
            return policies[by_content[content]]
        base = policy_name(rule, device)
        name, n = base, 1
        while name in policies:
            n += 1
            name = f"{base}-{n}"
        policies[name] = Policy(name, rule, body)
        by_content[content] = name
        return policies[name]

    interactions: dict[str, list[str]] = {}
    events: dict[str, list[Row]] = {}
    for row in signatures:
        events.setdefault(str(row["event"]), []).append(row)
    for event in sorted(events):
        names: list[str] = []
        for element in _order(events[event]):
            policy = add(FlowRule.from_row(element))
            if element.get("max_packets") is not None:
                count = max(int(element["max_packets"]), int(policy.stats.get("packet-count", 0)))
                policy.stats["packet-count"] = count
            if event not in policy.events:
                policy.events.append(event)
            if policy.name not in names:
                names.append(policy.name)
        interactions[event] = names
    for row in background:
        policy = add(FlowRule.from_row(row))
        if row.get("period_s") is not None:
            policy.stats["period"] = f"{round(float(row['period_s']), 1):g}s"
    return DeviceProfile(device, policies, interactions)


def profile_dict(profile: DeviceProfile) -> dict[str, Any]:
    """The firewall's YAML device profile as a mapping: `device-info`, `single-policies`, `interactions`."""
    device = profile.device
    info: dict[str, Any] = {"name": device.name}
    for key, value in (("mac", device.mac), ("ipv4", device.ipv4), ("network", device.network)):
        if value:
            info[key] = value
    return {
        "device-info": info,
        "single-policies": {name: p.as_yaml() for name, p in profile.policies.items()},
        "interactions": {event: list(names) for event, names in profile.interactions.items()},
    }


def profile_yaml(profile: DeviceProfile) -> str:
    """The device profile as YAML text."""
    return yaml.safe_dump(
        profile_dict(profile), sort_keys=False, explicit_start=True, default_flow_style=False
    )


# --------------------------------------------------------------------------- nftables


def nft_name(text: str) -> str:
    """An nftables identifier from any text: letters, digits and `_`, starting with a letter."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    return name if name[:1].isalpha() else f"d_{name}"


def _nft_string(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


@dataclass
class _NftSets:
    """Named address sets for host names, filled at run time by the resolver."""

    device: str
    sets: dict[str, str] = field(default_factory=dict)  # set name → domain it holds

    def host(self, rule: FlowRule) -> str:
        domain = rule.remote_key if rule.wildcard else rule.remote.lower().rstrip(".")
        name = nft_name(f"{self.device}_{domain}")
        self.sets[name] = domain
        return f"@{name}"


def _nft_match(rule: FlowRule, device_ip: str, sets: _NftSets, forward: bool) -> str:
    """One IPv4 rule's match: the initiator's packets when `forward`, else the answers."""
    remote = rule.remote if is_ip(rule.remote) else sets.host(rule)
    device_port, remote_port = rule.ports()
    if rule.device_initiates == forward:
        parts = [f"ip saddr {device_ip}", f"ip daddr {remote}"]
        ports = [("sport", device_port), ("dport", remote_port)]
    else:
        parts = [f"ip saddr {remote}", f"ip daddr {device_ip}"]
        ports = [("sport", remote_port), ("dport", device_port)]
    parts += [f"{rule.transport} {kind} {port}" for kind, port in ports if port is not None]
    if all(port is None for _, port in ports):
        parts.append(f"meta l4proto {rule.transport}")
    return " ".join(parts)


def firewall_nft(profile: DeviceProfile) -> str:
    """nftables rules for a device: in `table inet iotlake`, a chain per device accepting each policy's
    packets (both ways when bidirectional) and logging and dropping the rest, reached from the input, output
    and forward hooks. Host names are address sets to be filled by the resolver (dnsmasq `nftset=`)."""
    device = profile.device
    if not device.ipv4:
        raise ValueError(f"device {device.name}: no IPv4 address known, cannot write firewall rules")
    chain = nft_name(device.name)
    sets = _NftSets(chain)
    rules: list[str] = []
    for name, policy in profile.policies.items():
        rule = policy.rule
        if is_ip(rule.remote) and ipaddress.ip_address(rule.remote).version == 6:
            rules.append(
                f"# policy {name}: IPv6 peer {rule.remote}, not covered (the device's IPv6 is unknown)"
            )
            continue
        app = application_layer(rule)
        note = (
            f" (application layer not matched by nftables: {json.dumps(app, sort_keys=True)})" if app else ""
        )
        rules.append(f"# policy {name}{note}")
        rules.append(f"{_nft_match(rule, device.ipv4, sets, True)} accept comment {_nft_string(name)}")
        if rule.bidirectional:
            rules.append(f"{_nft_match(rule, device.ipv4, sets, False)} accept comment {_nft_string(name)}")
    rules.append(f"log prefix {_nft_string(f'iotlake {device.name} drop: ')} drop")
    lines = [
        "#!/usr/sbin/nft -f",
        f"# iotlake: firewall for device {device.name} ({device.ipv4}"
        + (f", {device.mac}" if device.mac else "")
        + "), from its event signatures and periodic background",
        "table inet iotlake {",
    ]
    for set_name, domain in sets.sets.items():
        lines += [
            f"    # addresses of {domain} and its subdomains, e.g. dnsmasq nftset=/{domain}/4#inet#iotlake#{set_name}",
            f"    set {set_name} {{",
            "        type ipv4_addr",
            "        flags timeout",
            "    }",
        ]
    lines.append(f"    chain {chain} {{")
    lines += [f"        {r}" for r in rules]
    lines.append("    }")
    hooks = {
        "input": [f"ip saddr {device.ipv4}"],
        "output": [f"ip daddr {device.ipv4}"],
        "forward": [f"ip saddr {device.ipv4}", f"ip daddr {device.ipv4}"],
    }
    for hook, matches in hooks.items():
        lines.append(f"    chain {chain}_{hook} {{")
        lines.append(f"        type filter hook {hook} priority filter; policy accept;")
        lines += [f"        {m} jump {chain}" for m in matches]
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- RFC 8520 MUD


def _mud_port(port: int) -> dict[str, Any]:
    return {"operator": "eq", "port": port}


def _ace_matches(rule: FlowRule, device: Device, from_device: bool) -> dict[str, Any]:
    """The matches of one ACE: the remote end (DNS name, address, or a MUD class for LAN peers), the
    protocol, the fixed ports on the packet's sides, and who initiates a TCP connection."""
    v6 = is_ip(rule.remote) and ipaddress.ip_address(rule.remote).version == 6
    l3: dict[str, Any] = {"protocol": IP_PROTOCOLS[rule.transport]}
    matches: dict[str, Any] = {}
    side = "dst" if from_device else "src"
    direction = "destination" if from_device else "source"
    if not is_ip(rule.remote):
        l3[f"ietf-acldns:{side}-dnsname"] = rule.remote.rstrip(".")
    elif rule.scope == "LAN" and not _is_group(rule.remote):
        peer = device.peers.get(rule.remote)
        same = bool(peer and peer.vendor and device.vendor and peer.vendor.lower() == device.vendor.lower())
        matches["ietf-mud:mud"] = {"same-manufacturer" if same else "local-networks": [None]}
    else:
        l3[f"{direction}-ipv{6 if v6 else 4}-network"] = f"{rule.remote}/{128 if v6 else 32}"
    matches["ipv6" if v6 else "ipv4"] = l3
    device_port, remote_port = rule.ports()
    l4: dict[str, Any] = {}
    own, other = ("source", "destination") if from_device else ("destination", "source")
    if device_port is not None:
        l4[f"{own}-port"] = _mud_port(device_port)
    if remote_port is not None:
        l4[f"{other}-port"] = _mud_port(remote_port)
    if rule.transport == "tcp":
        l4["ietf-mud:direction-initiated"] = "from-device" if rule.device_initiates else "to-device"
    matches[rule.transport] = l4
    return dict(sorted(matches.items(), key=lambda kv: kv[0] == "ietf-mud:mud"))


def mud_document(
    profile: DeviceProfile,
    mud_url: str,
    *,
    last_update: datetime | None = None,
    cache_validity: int = 48,
    systeminfo: str | None = None,
) -> dict[str, Any]:
    """An RFC 8520 MUD file for the device: from-device and to-device ACLs (IPv4, plus IPv6 when an IPv6
    peer occurs) accepting each policy's packets; names as `ietf-acldns` matches, LAN peers as
    `local-networks` (or `same-manufacturer`), other addresses as /32 (/128) networks."""
    device = profile.device
    stem = _slug(device.name)[:40]
    acls: dict[tuple[int, bool], list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for name, policy in profile.policies.items():
        rule = policy.rule
        version = 6 if is_ip(rule.remote) and ipaddress.ip_address(rule.remote).version == 6 else 4
        directions = (
            [rule.device_initiates] if not rule.bidirectional and rule.transport != "tcp" else [True, False]
        )
        for from_device in directions:
            matches = _ace_matches(rule, device, from_device)
            key = json.dumps([version, from_device, matches], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            aces = acls.setdefault((version, from_device), [])
            suffix = f"-{len(aces)}-{'fr' if from_device else 'to'}"
            aces.append(
                {
                    "name": name[: 64 - len(suffix)] + suffix,
                    "matches": matches,
                    "actions": {"forwarding": "accept"},
                }
            )
    acl_list = []
    refs: dict[bool, list[dict[str, str]]] = {True: [], False: []}
    for version in (4, 6):
        for from_device in (True, False):
            aces = acls.get((version, from_device))
            if aces is None and (version == 6 or not acls):
                continue
            acl_name = f"mud-{stem}-v{version}{'fr' if from_device else 'to'}"
            refs[from_device].append({"name": acl_name})
            acl_list.append({"name": acl_name, "type": f"ipv{version}-acl-type", "aces": {"ace": aces or []}})
    updated = (last_update or datetime.now(UTC)).replace(microsecond=0)
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    info = systeminfo or f"{device.vendor + ' ' if device.vendor else ''}{device.name} (iotlake profile)"
    mud: dict[str, Any] = {
        "mud-version": 1,
        "mud-url": mud_url,
        "last-update": updated.isoformat(),
        "cache-validity": cache_validity,
        "is-supported": True,
        "systeminfo": info[:60],
    }
    if device.vendor:
        mud["mfg-name"] = device.vendor
    for from_device, key in ((True, "from-device-policy"), (False, "to-device-policy")):
        if refs[from_device]:
            mud[key] = {"access-lists": {"access-list": refs[from_device]}}
    return {"ietf-mud:mud": mud, "ietf-access-control-list:acls": {"acl": acl_list}}


# --------------------------------------------------------------------------- files


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "x"


def write_device(
    device: Device,
    signatures: Sequence[Row],
    patterns: Sequence[Row],
    formats: Iterable[str],
    out_dir: Path,
    *,
    mud_url: str | None = None,
    last_update: datetime | None = None,
) -> list[Path]:
    """Write one device's files under `out_dir/<device>/`; `patterns` are raw `flow_patterns` rows (the
    periodic ones become background policies). Returns the files written."""
    wanted = check_formats(formats)
    folder = out_dir / _file_part(device.name)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)

    if "csv" in wanted:
        events: dict[str, list[Row]] = {}
        for row in signatures:
            events.setdefault(str(row["event"]), []).append(row)
        for event, rows in sorted(events.items()):
            write(f"signature-{_file_part(event)}.csv", signature_csv(rows, device.ipv4))
    profile = build_profile(device, signatures, background_rows(patterns))
    if "yaml" in wanted:
        write("profile.yaml", profile_yaml(profile))
    if "nft" in wanted:
        if device.ipv4:
            write("firewall.nft", firewall_nft(profile))
        else:
            log.warning("device %s: no IPv4 address known, no firewall.nft written", device.name)
    if "mud" in wanted:
        url = mud_url or f"{MUD_BASE_URL}/{_file_part(device.name)}.json"
        document = mud_document(profile, url, last_update=last_update)
        write(f"{_file_part(device.name)}.mud.json", json.dumps(document, indent=2) + "\n")
    return written


def check_formats(formats: Iterable[str]) -> set[str]:
    """The requested formats, checked against FORMATS (`all` means every one)."""
    wanted = {f.strip().lower() for f in formats}
    if "all" in wanted:
        return set(FORMATS)
    unknown = wanted - set(FORMATS)
    if unknown:
        raise IotlakeError(
            "--format",
            f"unknown export format(s) {', '.join(sorted(unknown))}: use {', '.join(FORMATS)} or all",
        )
    return wanted


# --------------------------------------------------------------------------- the lake


def _most_specific(ip: str, prefixes: Iterable[str]) -> str | None:
    address = ipaddress.ip_address(ip)
    best = None
    for text in prefixes:
        network = ipaddress.ip_network(text, strict=False)
        inside = address.version == network.version and address in network
        if (
            inside
            and network.prefixlen < network.max_prefixlen
            and (best is None or network.prefixlen > best.prefixlen)
        ):
            best = network
    return str(best) if best else None


def _flow_facts(fingerprints: DataFrame | None) -> tuple[dict[tuple, bool], dict[tuple, dict[str, Any]]]:
    """From `flow_fingerprints`: whether each (device, fingerprint) has packets both ways (in most of its
    flows), and each (device, remote, transport, application, port)'s usual roles, for background rows."""
    from pyspark.sql import functions as F

    bidirectional: dict[tuple, bool] = {}
    roles: dict[tuple, dict[str, Any]] = {}
    if fingerprints is None:
        return bidirectional, roles
    share = F.avg(((F.col("tx_packets") > 0) & (F.col("rx_packets") > 0)).cast("double"))
    for r in fingerprints.groupBy("device", "fingerprint").agg(share.alias("both")).collect():
        bidirectional[(r["device"], r["fingerprint"])] = r["both"] >= 0.5
    keys = ["device", "remote", "transport", "application", "fixed_port"]
    aggregated = fingerprints.groupBy(*keys).agg(
        F.mode("device_role").alias("device_role"),
        F.mode("initiator").alias("initiator"),
        F.mode("scope").alias("scope"),
        F.first("remote_key").alias("remote_key"),
        share.alias("both"),
    )
    for r in aggregated.collect():
        roles[tuple(r[k] for k in keys)] = {
            "device_role": r["device_role"],
            "initiator": r["initiator"],
            "scope": r["scope"],
            "remote_key": r["remote_key"],
            "bidirectional": r["both"] >= 0.5,
        }
    return bidirectional, roles


def _devices(
    names: Iterable[str], devices: DataFrame | None, addresses: DataFrame | None, sites: DataFrame | None
) -> dict[str, Device]:
    """`Device`s from the MAC map, the observed addresses (most evidence wins) and the site's own prefixes
    and gateways (not the built-in local ranges of site_prefixes)."""
    from pyspark.sql import functions as F

    info = {r["device"]: r.asDict() for r in devices.collect()} if devices is not None else {}
    best_ip: dict[str, str] = {}
    best_mac: dict[str, str] = {}
    seen_at: dict[str, dict[str, str]] = {}  # site → ip → device
    if addresses is not None:
        v4 = addresses.where(F.col("ip_version") == 4)
        counted = v4.groupBy("site", "device", "ip", "mac").agg(F.sum("evidence").alias("evidence"))
        for r in counted.orderBy(F.desc("evidence"), "ip").collect():
            best_ip.setdefault(r["device"], r["ip"])
            if r["mac"]:
                best_mac.setdefault(r["device"], r["mac"])
            seen_at.setdefault(r["site"], {}).setdefault(r["ip"], r["device"])
    gateways: dict[str, list[str]] = {}
    local: dict[str, list[str]] = {}
    for r in sites.collect() if sites is not None else []:
        gateways[r["site"]] = list(r["gateway_ips"] or [])
        local[r["site"]] = list(r["local_prefixes"] or [])

    out = {}
    for name in names:
        row = info.get(name, {})
        site = row.get("site")
        ip = row.get("ip")
        ipv4 = ip if ip and ":" not in ip else best_ip.get(name)
        peers = {
            o["ip"]: Peer(o["device"], o.get("vendor"))
            for o in info.values()
            if o["device"] != name and o.get("site") == site and o.get("ip")
        }
        for address, other in seen_at.get(site, {}).items():
            if other != name and address not in peers:
                peers[address] = Peer(other, info.get(other, {}).get("vendor"))
        out[name] = Device(
            name=name,
            mac=row.get("mac") or best_mac.get(name),
            ipv4=ipv4,
            network=_most_specific(ipv4, local.get(site, [])) if ipv4 else None,
            vendor=row.get("vendor"),
            gateways=tuple(
                str(ipaddress.ip_network(g, strict=False).network_address) for g in gateways.get(site, [])
            ),
            peers=peers,
        )
    return out


def export(
    spark: SparkSession, config: Config, dataset: str, formats: Iterable[str], out_dir: Path
) -> list[Path]:
    """Export every device with signatures or periodic background in `dataset`: reads `event_signatures`,
    `flow_patterns`, `flow_fingerprints`, `devices`, `device_addresses` and `sites`, writes
    `out_dir/<device>/…` in the requested formats (csv, yaml, nft, mud or all) and returns the files."""
    from pyspark.sql import functions as F

    from iotlake.lake import tables
    from iotlake.models.runner import declare, discover
    from iotlake.names import check_name
    from iotlake.signatures import mining

    check_name("dataset", dataset)
    wanted = check_formats(formats)
    declare(discover(config.project_dir / "sql"))
    mining.declare(config)
    root = config.lake_root

    def load(name: str, required: bool = False) -> DataFrame | None:
        entry = tables.table(name)
        if not tables.exists(spark, root, entry):
            if required:
                raise IotlakeError(root, f"no {name} table yet: run `iotlake signatures learn` first")
            return None
        return spark.read.format("delta").load(entry.path(root)).where(F.col("dataset") == dataset)

    signature_frame = load("event_signatures", required=True)
    assert signature_frame is not None
    signatures = [r.asDict() for r in signature_frame.collect()]
    bidirectional, roles = _flow_facts(load("flow_fingerprints"))
    for row in signatures:
        row["bidirectional"] = bidirectional.get((row["device"], row["fingerprint"]))
    patterns: list[dict[str, Any]] = []
    patterns_frame = load("flow_patterns")
    for r in patterns_frame.where(F.col("periodic")).collect() if patterns_frame is not None else []:
        row = r.asDict()
        row.update(
            roles.get(
                (row["device"], row["remote"], row["transport"], row["application"], row["server_port"]), {}
            )
        )
        patterns.append(row)
    if not signatures and not patterns:
        raise IotlakeError(
            dataset, "no signatures or periodic patterns: run `iotlake signatures learn` first"
        )

    names = sorted({r["device"] for r in signatures} | {r["device"] for r in patterns})
    devices = _devices(names, load("devices"), load("device_addresses"), load("sites"))
    written: list[Path] = []
    for name in names:
        written += write_device(
            devices[name],
            [r for r in signatures if r["device"] == name],
            [r for r in patterns if r["device"] == name],
            wanted,
            out_dir,
            mud_url=f"{MUD_BASE_URL}/{_file_part(dataset)}/{_file_part(name)}.json",
        )
    log.info("exported %d file(s) for %d device(s) of %s to %s", len(written), len(names), dataset, out_dir)
    return written
