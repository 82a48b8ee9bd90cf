"""The field catalog: every tshark field the lake keeps, in the order of the landing TSV columns.

One tshark pass exports all of these at once (`-T fields`, all occurrences joined by ','). The catalog is
the contract between extraction (capture/) and the bronze `packets` table (lake/): each field names its
bronze column and how the text is parsed. Kinds:

- ``long`` / ``int``: a decimal integer (first occurrence);
- ``hex``: an integer that tshark prints as ``0x…`` (first occurrence);
- ``bool``: a flag, true when tshark printed anything but ``0``/``False`` (FT_NONE flags print ``1``);
- ``string``: text, first occurrence (the outermost header for addresses of tunnelled packets);
- ``text``: text kept whole (it may itself contain commas);
- ``string_list`` / ``int_list`` / ``hex_list``: every occurrence, split on ','.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["long", "int", "hex", "bool", "string", "text", "string_list", "int_list", "hex_list"]

AGGREGATOR = ","


@dataclass(frozen=True)
class Field:
    """One tshark field and the bronze column it fills."""

    tshark: str
    column: str
    kind: Kind
    doc: str = ""


# Columns that extraction computes itself are not here (frame offsets of chunks, partition keys).
FIELDS: tuple[Field, ...] = (
    # frame
    Field("frame.number", "frame_no", "long", "frame number within the capture (1-based)"),
    Field("frame.time_epoch", "ts", "text", "capture time, epoch seconds (parsed to a timestamp)"),
    Field("frame.len", "frame_len", "int", "bytes on the wire"),
    Field("frame.cap_len", "cap_len", "int", "bytes captured (smaller when snap-length truncated)"),
    Field("frame.encap_type", "encap_type", "int", "Wireshark encapsulation type of the frame"),
    Field(
        "frame.protocols", "protocols", "text", "the dissected protocol chain, e.g. eth:ethertype:ip:tcp:tls"
    ),
    Field("_ws.col.Protocol", "protocol", "text", "tshark's Protocol column (the top-most protocol)"),
    # link layer
    Field("eth.src", "eth_src", "string", "source MAC"),
    Field("eth.dst", "eth_dst", "string", "destination MAC"),
    Field("eth.type", "eth_type", "hex", "EtherType"),
    Field("sll.src.eth", "sll_src", "string", "source MAC of a Linux cooked capture"),
    Field("arp.opcode", "arp_opcode", "int", "ARP request (1) or reply (2)"),
    Field("arp.src.hw_mac", "arp_src_mac", "string", "ARP sender MAC"),
    Field("arp.src.proto_ipv4", "arp_src_ip", "string", "ARP sender IPv4"),
    Field("arp.dst.hw_mac", "arp_dst_mac", "string", "ARP target MAC"),
    Field("arp.dst.proto_ipv4", "arp_dst_ip", "string", "ARP target IPv4"),
    # network layer
    Field("ip.src", "ip_src", "string", "IPv4 source (outer header)"),
    Field("ip.dst", "ip_dst", "string", "IPv4 destination (outer header)"),
    Field("ip.proto", "ip_proto", "int", "IPv4 protocol number"),
    Field("ip.ttl", "ip_ttl", "int", "IPv4 TTL"),
    Field("ipv6.src", "ipv6_src", "string", "IPv6 source (outer header)"),
    Field("ipv6.dst", "ipv6_dst", "string", "IPv6 destination (outer header)"),
    Field("ipv6.nxt", "ipv6_nxt", "int", "IPv6 next header"),
    Field("ipv6.hlim", "ipv6_hlim", "int", "IPv6 hop limit"),
    Field("icmp.type", "icmp_type", "int", "ICMP type"),
    Field("icmp.code", "icmp_code", "int", "ICMP code"),
    Field("icmpv6.type", "icmpv6_type", "int", "ICMPv6 type (133-137: neighbour discovery)"),
    Field("icmpv6.code", "icmpv6_code", "int", "ICMPv6 code"),
    Field("icmpv6.nd.ns.target_address", "nd_ns_target", "string", "neighbour solicitation target"),
    Field("icmpv6.nd.na.target_address", "nd_na_target", "string", "neighbour advertisement target"),
    Field("icmpv6.opt.linkaddr", "nd_linkaddr", "string_list", "link-layer addresses in ND options"),
    Field("igmp.type", "igmp_type", "hex", "IGMP message type"),
    # transport layer
    Field("tcp.srcport", "tcp_srcport", "int", "TCP source port"),
    Field("tcp.dstport", "tcp_dstport", "int", "TCP destination port"),
    Field("tcp.stream", "tcp_stream", "long", "tshark's TCP stream index (per file or chunk)"),
    Field("tcp.flags", "tcp_flags", "hex", "TCP flags (0x002 SYN, 0x010 ACK, 0x001 FIN, 0x004 RST)"),
    Field("tcp.len", "tcp_len", "int", "TCP payload length"),
    Field("tcp.analysis.retransmission", "tcp_retransmission", "bool", "tshark flags a retransmission"),
    Field("tcp.analysis.duplicate_ack", "tcp_duplicate_ack", "bool", "tshark flags a duplicate ACK"),
    Field("tcp.analysis.ack_lost_segment", "tcp_ack_lost_segment", "bool", "ACK of a segment not captured"),
    Field("udp.srcport", "udp_srcport", "int", "UDP source port"),
    Field("udp.dstport", "udp_dstport", "int", "UDP destination port"),
    Field("udp.stream", "udp_stream", "long", "tshark's UDP stream index (per file or chunk)"),
    # DNS and mDNS/LLMNR (the same dissector fields)
    Field("dns.id", "dns_id", "hex", "DNS transaction id"),
    Field("dns.flags.response", "dns_response", "bool", "DNS response (true) or query"),
    Field("dns.flags.rcode", "dns_rcode", "int", "DNS response code"),
    Field(
        "dns.count.answers",
        "dns_answers",
        "int",
        "records in the answer section (the rest is authority/glue)",
    ),
    Field("dns.qry.name", "dns_qry_name", "string", "first question name"),
    Field("dns.qry.type", "dns_qry_type", "int", "first question type"),
    Field("dns.resp.name", "dns_resp_name", "string_list", "answer record names"),
    Field("dns.resp.type", "dns_resp_type", "int_list", "answer record types"),
    Field("dns.resp.ttl", "dns_resp_ttl", "int_list", "answer record TTLs"),
    Field("dns.a", "dns_a", "string_list", "A answers"),
    Field("dns.aaaa", "dns_aaaa", "string_list", "AAAA answers"),
    Field("dns.cname", "dns_cname", "string_list", "CNAME answers"),
    # TLS
    Field("tls.record.content_type", "tls_content_type", "int_list", "TLS record content types"),
    Field("tls.handshake.type", "tls_handshake_type", "int_list", "TLS handshake message types"),
    Field("tls.handshake.extensions_server_name", "tls_sni", "string", "TLS server name indication"),
    Field("tls.record.version", "tls_record_version", "hex", "TLS record-layer version"),
    Field("tls.handshake.version", "tls_handshake_version", "hex", "TLS handshake version"),
    Field(
        "tls.handshake.extensions.supported_version", "tls_supported_versions", "hex_list", "TLS 1.3 versions"
    ),
    Field(
        "tls.handshake.certificate", "tls_certificates", "string_list", "DER certificates, hex (TLS <= 1.2)"
    ),
    # HTTP and SSDP (SSDP is HTTP over UDP)
    Field("http.request.method", "http_method", "string", "HTTP/SSDP request method"),
    Field("http.host", "http_host", "string", "HTTP Host header"),
    Field("http.request.uri", "http_uri", "text", "HTTP request URI"),
    Field("http.response.code", "http_status", "int", "HTTP response status"),
    Field("http.user_agent", "http_user_agent", "text", "HTTP User-Agent"),
    Field("http.server", "http_server", "text", "HTTP Server header"),
    # DHCP / DHCPv6
    Field("dhcp.option.dhcp", "dhcp_msg_type", "int", "DHCP message type (1 discover ... 5 ack)"),
    Field("dhcp.option.hostname", "dhcp_hostname", "text", "DHCP host name option"),
    Field("dhcp.option.vendor_class_id", "dhcp_vendor_class", "text", "DHCP vendor class"),
    Field("dhcp.option.requested_ip_address", "dhcp_requested_ip", "string", "DHCP requested address"),
    Field("dhcp.ip.your", "dhcp_your_ip", "string", "DHCP offered/acknowledged address (yiaddr)"),
    Field("dhcp.ip.client", "dhcp_client_ip", "string", "DHCP client address (ciaddr)"),
    Field("dhcp.hw.mac_addr", "dhcp_client_mac", "string", "DHCP client hardware address"),
    Field("dhcpv6.msgtype", "dhcpv6_msg_type", "int", "DHCPv6 message type"),
    # CoAP
    Field("coap.type", "coap_type", "int", "CoAP type (0 CON, 1 NON, 2 ACK, 3 RST)"),
    Field("coap.code", "coap_code", "int", "CoAP code"),
    Field("coap.opt.uri_path_recon", "coap_uri", "text", "CoAP URI path, reconstructed"),
    # NTP
    Field("ntp.flags.mode", "ntp_mode", "int", "NTP mode (3 client, 4 server)"),
    Field("ntp.stratum", "ntp_stratum", "int", "NTP stratum"),
)

COLUMNS: tuple[str, ...] = tuple(f.column for f in FIELDS)


def tshark_field_args() -> list[str]:
    """The `-e field` arguments of the one tshark pass, in catalog order."""
    args: list[str] = []
    for field in FIELDS:
        args += ["-e", field.tshark]
    return args


def by_column(column: str) -> Field:
    """The catalog entry of a bronze column."""
    for field in FIELDS:
        if field.column == column:
            return field
    raise KeyError(column)
