"""Pseudonymise a contribution: MACs and local IP addresses become keyed HMAC values before the gate validates.

The contributor keeps a secret key in a file outside the lake (`--key-file`). Every value is replaced by a
function of (key, value) alone, so the same address gets the same pseudonym in every column and table (packets,
devices, and thus every derived table), and in every contribution made with the same key.

Construction, all in Spark built-in expressions (no Python per row):

- HMAC-SHA256 as RFC 2104 defines it: ``sha2(opad_key || unhex(sha2(ipad_key || message, 256)), 256)``, where
  ``ipad_key``/``opad_key`` are the key (zero-padded to the 64-byte block) XOR 0x36/0x5c, computed once in
  Python and passed as binary literals. Messages are ``mac:<lower-case MAC>`` and ``ip:<ip_hex(address)>``
  (32 hex digits, so two spellings of one IPv6 address agree).
- A unicast MAC becomes the first 6 bytes of its HMAC with the first octet's group bit copied from the original
  (0) and the locally-administered bit set: still a lower-case colon MAC, and `is_group_mac` gives the same
  answer. Group MACs (broadcast, multicast) and 00:00:00:00:00:00 stay as they are.
- A local address (inside a `local` prefix of its site: the built-in ranges plus the site's own) keeps the
  network part of the broadest local prefix that holds it, at least a /16 for IPv4 and a /64 for IPv6, and gets
  host bits from its HMAC, so LAN/WAN scope and the site's subnets are unchanged. An IPv4 pseudonym never ends
  in .0 or .255 (those, directed broadcasts in home /24s, stay as they are). Multicast, broadcast, unspecified
  and loopback addresses, and the site's gateway and excluded addresses, stay as they are; public addresses
  are not touched.
- IPv6 pseudonyms are written as eight groups without leading zeros, the first run of zero groups as `::`.
- The expressions run once per distinct (site, address) of the dataset (a small table); the changed ones are
  collected and applied to every column as a literal map, which keeps the query plans small.

A pseudonym that two different originals share (a collision: likely only for many hosts in a small prefix) is
a one-line error; a new key resolves it. Not pseudonymised: public IPv6 addresses (whose EUI-64 interface ID
may embed a MAC), host and DNS names (DHCP host name, mDNS names, reverse-DNS names), solicited-node multicast
MACs (33:33:ff + the last 24 bits of an address), IP literals in URIs and user agents.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake.errors import IotlakeError
from iotlake.lake import tables
from iotlake.lake.writer import write_table
from iotlake.models.runner import register_functions

KEY_BYTES = 32
MIN_KEY_BYTES = 16
BLOCK = 64  # SHA-256 block size in bytes

# Address columns of bronze `packets` (capture/fields.py plus the derived src_ip/dst_ip) and `devices`.
MAC_COLUMNS = ("eth_src", "eth_dst", "sll_src", "arp_src_mac", "arp_dst_mac", "dhcp_client_mac")
MAC_LIST_COLUMNS = ("nd_linkaddr",)
IP_COLUMNS = (
    "ip_src",
    "ip_dst",
    "ipv6_src",
    "ipv6_dst",
    "src_ip",
    "dst_ip",
    "arp_src_ip",
    "arp_dst_ip",
    "nd_ns_target",
    "nd_na_target",
    "dhcp_requested_ip",
    "dhcp_your_ip",
    "dhcp_client_ip",
)
IP_LIST_COLUMNS = ("dns_a", "dns_aaaa")
HOST_COLUMNS = ("http_host",)  # an IPv4 literal (with an optional port) is pseudonymised
DEVICE_COLUMNS = {"mac": "mac", "ip": "ip"}

_MAC = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
_V4_PREFIX = "00000000000000000000ffff"
_HOST_V4 = r"^([0-9]{1,3}(?:[.][0-9]{1,3}){3})(:[0-9]+)?$"


# --------------------------------------------------------------------------------------------------------
# The key
# --------------------------------------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _local_lake(lake_root: str) -> Path | None:
    if lake_root.startswith("file:"):
        return Path(lake_root.removeprefix("file:").removeprefix("//"))
    return None if "://" in lake_root else Path(lake_root)


def prepare_key(path: Path, lake_root: str) -> tuple[bytes, bool]:
    """The key of a key file, creating the file (random, mode 0600) when missing; returns (key, created).

    The file must not be under the lake root: the key never travels with the data.
    """
    path = Path(path).expanduser()
    lake = _local_lake(lake_root)
    if lake is not None and _inside(path, lake):
        raise IotlakeError(path, f"the pseudonymisation key must be kept outside the lake ({lake})")
    if path.is_dir():
        raise IotlakeError(path, "key file is a folder: give a file name")
    if path.exists():
        return load_key(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(
            "# iotlake pseudonymisation key (HMAC-SHA256): keep it secret and outside the lake; the same key\n"
            "# gives the same pseudonyms, so keep it to contribute more captures of the same devices.\n"
            f"{key.hex()}\n"
        )
    return key, True


def load_key(path: Path) -> bytes:
    """Read a key file: hex digits (at least 16 bytes) on one line; lines starting with '#' are comments."""
    try:
        lines = Path(path).read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise IotlakeError(path, f"cannot read the key file ({exc.__class__.__name__})") from None
    text = "".join(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise IotlakeError(path, "not a key file: expected one line of hex digits") from None
    if len(key) < MIN_KEY_BYTES:
        raise IotlakeError(path, f"key too short: {len(key)} bytes, at least {MIN_KEY_BYTES} needed")
    return key


# --------------------------------------------------------------------------------------------------------
# The expressions
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalPrefix:
    """A prefix of a site: `local` ones decide what is pseudonymised, `gateway`/`excluded` ones stay as they are."""

    site: str
    kind: str
    start_hex: str
    end_hex: str
    length: int  # prefix length in the address's own family (IPv4: 0-32, IPv6: 0-128)


def prefixes_of(rows: Iterable[tuple[str, str, str, str, str]]) -> list[LocalPrefix]:
    """`site_prefixes` rows (site, kind, prefix, start_hex, end_hex) as LocalPrefix, broadest first."""
    found = [
        LocalPrefix(site, kind, start, end, ipaddress.ip_network(prefix, strict=False).prefixlen)
        for site, kind, prefix, start, end in rows
    ]
    return sorted(found, key=lambda p: (p.site, p.kind, p.length))


@dataclass(frozen=True)
class Pseudonymiser:
    """Column expressions that pseudonymise MACs and local IP addresses with one key and a site's prefixes."""

    key: bytes
    prefixes: Sequence[LocalPrefix]

    def hmac_hex(self, message: Column) -> Column:
        """HMAC-SHA256(key, message) as 64 lower-case hex digits (RFC 2104, built-in expressions only)."""
        block = self.key if len(self.key) <= BLOCK else hashlib.sha256(self.key).digest()
        block = block.ljust(BLOCK, b"\0")
        ipad = bytearray(b ^ 0x36 for b in block)
        opad = bytearray(b ^ 0x5C for b in block)
        inner = F.unhex(F.sha2(F.concat(F.lit(ipad), F.encode(message, "UTF-8")), 256))
        return F.sha2(F.concat(F.lit(opad), inner), 256)

    def mac(self, column: Column) -> Column:
        """A unicast MAC's pseudonym (lower-case colon form); group and all-zero MACs unchanged."""
        mac = F.lower(F.trim(column))
        well_formed = mac.rlike(_MAC)
        first = F.conv(F.substring(mac, 1, 2), 16, 10).cast("int")
        group_bit = F.when(well_formed, first.bitwiseAND(1)).otherwise(F.lit(0))
        h = self.hmac_hex(F.concat(F.lit("mac:"), mac))
        octet0 = (
            F.conv(F.substring(h, 1, 2), 16, 10)
            .cast("int")
            .bitwiseAND(0xFC)
            .bitwiseOR(2)
            .bitwiseOR(group_bit)
        )
        octets = [F.lpad(F.lower(F.hex(octet0)), 2, "0")] + [F.substring(h, 3 + 2 * i, 2) for i in range(5)]
        keep = column.isNull() | (well_formed & ((group_bit == 1) | (mac == "00:00:00:00:00:00")))
        return F.when(keep, column).otherwise(F.concat_ws(":", *octets))

    def _when_site(self, site: Column, hexed: Column, kinds: set[str], value: object) -> Column | None:
        """A CASE over the site's prefixes of these kinds (broadest first): `value(prefix)` of the first that holds it."""
        chain: Column | None = None
        for prefix in self.prefixes:
            if prefix.kind not in kinds:
                continue
            test = (site == prefix.site) & hexed.between(prefix.start_hex, prefix.end_hex)
            result = value(prefix) if callable(value) else F.lit(value)
            chain = F.when(test, result) if chain is None else chain.when(test, result)
        return chain

    def ip(self, column: Column, site: Column) -> Column:
        """A local address's pseudonym in the same local prefix; other addresses unchanged (see the module doc)."""
        hexed = F.call_function("ip_hex", F.lower(F.trim(column)))
        return self._ip(column, hexed, self._local(site, hexed), self._fixed(site, hexed))

    def _local(self, site: Column, hexed: Column) -> Column:
        """The length of the broadest local prefix of the site that holds the address (NULL: not local)."""
        chain = self._when_site(site, hexed, {"local"}, lambda p: F.lit(p.length))
        return F.lit(None).cast("int") if chain is None else chain

    def _fixed(self, site: Column, hexed: Column) -> Column:
        """True for the site's gateway and excluded addresses, which stay as they are."""
        chain = self._when_site(site, hexed, {"gateway", "excluded"}, True)
        return F.lit(False) if chain is None else F.coalesce(chain, F.lit(False))

    def _ip(self, column: Column, hexed: Column, local: Column, fixed: Column) -> Column:
        text = F.lower(F.trim(column))
        v4 = hexed.startswith(_V4_PREFIX) & text.contains(".")
        n = F.conv(F.substring(hexed, 25, 8), 16, 10).cast("long")
        first, last = F.shiftright(n, 24), n.bitwiseAND(255)
        v4_kept = (first >= 224) | (first == 127) | (first == 0) | (last == 0) | (last == 255)
        v6_kept = hexed.startswith("ff") | (hexed == "0" * 32) | (hexed == "0" * 31 + "1")
        kept = column.isNull() | local.isNull() | fixed | F.when(v4, v4_kept).otherwise(v6_kept)
        h = self.hmac_hex(F.concat(F.lit("ip:"), hexed))
        pseudonym = F.when(v4, self._ipv4(n, local, h)).otherwise(self._ipv6(hexed, local, h))
        return F.when(kept | pseudonym.isNull(), column).otherwise(pseudonym)

    def mapping(self, addresses: DataFrame) -> DataFrame:
        """(kind, site, value) rows with their `pseudonym`: each distinct address computed once, in steps."""
        hexed = F.call_function("ip_hex", F.lower(F.trim(F.col("value"))))
        staged = addresses.withColumn("_hex", F.when(F.col("kind") == "ip", hexed))
        staged = staged.withColumns(
            {
                "_local": self._local(F.col("site"), F.col("_hex")),
                "_fixed": self._fixed(F.col("site"), F.col("_hex")),
            }
        )
        ip = self._ip(F.col("value"), F.col("_hex"), F.col("_local"), F.col("_fixed"))
        pseudonym = F.when(F.col("kind") == "mac", self.mac(F.col("value"))).otherwise(ip)
        return staged.select("kind", "site", "value", pseudonym.alias("pseudonym"))

    @staticmethod
    def _ipv4(n: Column, length: Column, h: Column) -> Column:
        """Network bits of the broadest local prefix (at least /16) kept, host bits from the HMAC."""
        host_bits = (F.lit(32) - F.greatest(length, F.lit(16))).cast("int")
        size = F.pow(F.lit(2), host_bits).cast("long")
        a = F.conv(F.substring(h, 1, 8), 16, 10).cast("long")
        b = F.conv(F.substring(h, 9, 8), 16, 10).cast("long")
        wide = F.pmod(a, F.pow(F.lit(2), host_bits - 8).cast("long")) * 256 + F.pmod(b, F.lit(254)) + 1
        narrow = F.pmod(b, size - 2) + 1
        host = F.when(host_bits >= 8, wide).when(host_bits >= 2, narrow)
        value = n - F.pmod(n, size) + host
        octets = [F.shiftright(value, s).bitwiseAND(255).cast("string") for s in (24, 16, 8, 0)]
        return F.when(host.isNotNull(), F.concat_ws(".", *octets))

    @staticmethod
    def _ipv6(hexed: Column, length: Column, h: Column) -> Column:
        """The first max(64, prefix) bits (whole hex digits) kept, the rest from the HMAC; RFC 4291 text."""
        keep = F.ceil(F.greatest(length, F.lit(64)) / 4).cast("int")
        digits = F.concat(hexed.substr(F.lit(1), keep), h.substr(F.lit(1), F.lit(32) - keep))
        groups = F.transform(
            F.sequence(F.lit(0), F.lit(7)),
            lambda i: F.regexp_replace(digits.substr(i * 4 + 1, F.lit(4)), "^0{1,3}", ""),
        )
        text = F.array_join(groups, ":")
        compressed = F.regexp_replace(text, r"^(.*?)(?:^|:)0(?::0)+(?::|$)(.*)$", "$1::$2")
        return F.when(keep < 32, compressed)


# --------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------


def _v4_literal(column: Column) -> Column:
    return F.regexp_extract(column, _HOST_V4, 1)


def addresses(packets: DataFrame, devices: DataFrame) -> DataFrame:
    """Distinct (kind, site, value) of every MAC and IP column of `packets` and `devices` (kind 'mac' or 'ip')."""

    def items(
        kind: str, columns: Sequence[str], lists: Sequence[str] = (), hosts: Sequence[str] = ()
    ) -> Column:
        def item(value: Column) -> Column:
            return F.struct(F.lit(kind).alias("kind"), value.alias("value"))

        singles = [item(F.col(c)) for c in columns if c in packets.columns]
        singles += [item(F.nullif(_v4_literal(F.col(c)), F.lit(""))) for c in hosts if c in packets.columns]
        arrays = [F.array(*singles)] if singles else []
        arrays += [F.coalesce(F.transform(F.col(c), item), F.array()) for c in lists if c in packets.columns]
        return F.concat(*arrays)

    found = packets.select(
        "site",
        F.explode(
            F.concat(
                items("mac", MAC_COLUMNS, MAC_LIST_COLUMNS),
                items("ip", IP_COLUMNS, IP_LIST_COLUMNS, HOST_COLUMNS),
            )
        ).alias("a"),
    ).select("site", "a.kind", "a.value")
    listed = devices.select("site", F.explode(F.array(
        F.struct(F.lit("mac").alias("kind"), F.col("mac").alias("value")),
        F.struct(F.lit("ip").alias("kind"), F.col("ip").alias("value")),
    )).alias("a")).select("site", "a.kind", "a.value")  # fmt: skip
    return found.unionByName(listed).where(F.col("value").isNotNull()).distinct()


@dataclass(frozen=True)
class Mapping:
    """The pseudonyms of one dataset's changed addresses: MACs by value, IPs by (site, value)."""

    macs: dict[str, str]
    ips: dict[tuple[str, str], str]

    def _map(self, entries: dict[str, str]) -> Column:
        return F.create_map(*[F.lit(x) for pair in sorted(entries.items()) for x in pair])

    def mac(self, column: Column) -> Column:
        """The column with each changed MAC replaced."""
        if not self.macs:
            return column
        return F.coalesce(F.try_element_at(self._map(self.macs), column), column)

    def ip(self, column: Column, site: Column) -> Column:
        """The column with each changed address of the row's site replaced."""
        if not self.ips:
            return column
        by_key = {f"{s}/{v}": p for (s, v), p in self.ips.items()}
        return F.coalesce(F.try_element_at(self._map(by_key), F.concat(site, F.lit("/"), column)), column)

    def host(self, column: Column, site: Column) -> Column:
        """An IPv4 literal Host (with an optional port) with its address replaced."""
        address = _v4_literal(column)
        port = F.regexp_extract(column, _HOST_V4, 2)
        return F.when(column.rlike(_HOST_V4), F.concat(self.ip(address, site), port)).otherwise(column)


def build_mapping(pseudo: Pseudonymiser, packets: DataFrame, devices: DataFrame) -> Mapping:
    """Compute the pseudonyms of the dataset's distinct addresses; a one-line error names any collision."""
    mapped = pseudo.mapping(addresses(packets, devices)).cache()
    try:
        scope = F.when(F.col("kind") == "ip", F.col("site")).otherwise(F.lit(""))
        shared = (
            mapped.select("kind", scope.alias("scope"), F.lower("value").alias("value"), "pseudonym")
            .distinct()
            .groupBy("kind", "scope", "pseudonym")
            .agg(F.array_sort(F.collect_set("value")).alias("originals"))
            .where(F.size("originals") > 1)
            .orderBy("kind", "scope", "pseudonym")
            .limit(3)
            .collect()
        )
        if shared:
            texts = "; ".join(f"{', '.join(r['originals'])} -> {r['pseudonym']}" for r in shared)
            raise IotlakeError("--key-file", f"pseudonym collision ({texts}): use a new key file")
        changed = mapped.where(F.col("pseudonym") != F.col("value")).collect()
    finally:
        mapped.unpersist()
    return Mapping(
        {r["value"]: r["pseudonym"] for r in changed if r["kind"] == "mac"},
        {(r["site"], r["value"]): r["pseudonym"] for r in changed if r["kind"] == "ip"},
    )


def pseudonymise_packets(frame: DataFrame, mapping: Mapping) -> DataFrame:
    """Bronze `packets` with every MAC and local IP column pseudonymised."""
    site = F.col("site")
    replaced: dict[str, Column] = {}
    for name in MAC_COLUMNS:
        replaced[name] = mapping.mac(F.col(name))
    for name in MAC_LIST_COLUMNS:
        replaced[name] = F.transform(F.col(name), mapping.mac)
    for name in IP_COLUMNS:
        replaced[name] = mapping.ip(F.col(name), site)
    for name in IP_LIST_COLUMNS:
        replaced[name] = F.transform(F.col(name), lambda x: mapping.ip(x, site))
    for name in HOST_COLUMNS:
        replaced[name] = mapping.host(F.col(name), site)
    return frame.withColumns({k: v for k, v in replaced.items() if k in frame.columns})


def pseudonymise_devices(frame: DataFrame, mapping: Mapping) -> DataFrame:
    """Bronze `devices` with `mac` and `ip` pseudonymised like the packets."""
    return frame.withColumns({"mac": mapping.mac(F.col("mac")), "ip": mapping.ip(F.col("ip"), F.col("site"))})


def pseudonymise_staging(
    spark: SparkSession,
    raw_root: str,
    staging_root: str,
    dataset: str,
    key: bytes,
    sql_dir: Path,
    names: Sequence[str],
) -> dict[str, int]:
    """Copy the dataset's rows of the bronze tables `names` from `raw_root` to `staging_root`, pseudonymised.

    Raises a one-line error on a pseudonym collision (nothing is written then); returns the table versions.
    """
    register_functions(spark, sql_dir)

    def load(name: str) -> DataFrame:
        path = tables.table(name).path(raw_root)
        return spark.read.format("delta").load(path).where(F.col("dataset") == dataset)

    rows = load("site_prefixes").select("site", "kind", "prefix", "start_hex", "end_hex").collect()
    pseudo = Pseudonymiser(key, prefixes_of(tuple(r) for r in rows))
    mapping = build_mapping(pseudo, load("packets"), load("devices"))
    versions = {}
    for name in names:
        frame = load(name)
        if name == "packets":
            frame = pseudonymise_packets(frame, mapping)
        elif name == "devices":
            frame = pseudonymise_devices(frame, mapping)
        versions[name] = write_table(
            frame,
            tables.table(name),
            staging_root,
            {"dataset": dataset},
            "contribute",
            {"pseudonymised": True},
        )
    return versions
