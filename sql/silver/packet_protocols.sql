-- packet_protocols: one row per frame: its protocol at each layer and the one label it is counted under.
-- grain: dataset, site, capture, frame_no
-- partition: dataset, site, capture
-- sources: iotlake.packets, protocol_ports (conf/protocol_types.csv, a session view)
-- Layers come from tshark's protocol chain (frame.protocols): network ip/ipv6, transport tcp/udp, session
-- tls/dtls. A TCP or UDP frame gets one application label, the same for every frame of its stream (tshark's
-- stream index and the two address:port ends): the first application protocol tshark dissects in the stream
-- (`label_rule` dissector: mdns, ssdp, ntp, dns, http, tplink-smarthome, …); for a stream with none (TLS, bare
-- TCP, undissected UDP) the name of its server port in conf/protocol_types.csv (known_port: https on 443,
-- secure-mqtt on 8883, …), else `tcp:<server port>` / `udp:<server port>` (server_port).
-- The server port (`server_port_rule`): TCP, the side that accepted the connection (destination of the SYN,
-- source of the SYN-ACK: handshake); without a handshake in the capture, and for UDP, a port listed in
-- conf/protocol_types.csv (known_port; the lower if both are), then for UDP to a group MAC the destination port
-- (group_destination: a multicast group is the listening side), then the lower port (lower_port).
-- Frames without TCP/UDP have no application label; `protocol` is then the IP payload protocol (icmp, icmpv6,
-- igmp, …) or, without IP, the top-most protocol (arp, eapol, llc, …; eth:<ethertype> when tshark names none).
WITH packets AS (
  SELECT dataset, site, capture, frame_no, src_ip, dst_ip, src_port, dst_port, tcp_flags, eth_dst, eth_type,
         CASE WHEN tcp_srcport IS NOT NULL THEN 'tcp' WHEN udp_srcport IS NOT NULL THEN 'udp' END AS l4_ports,
         CASE WHEN tcp_srcport IS NOT NULL THEN tcp_stream ELSE udp_stream END AS stream,
         CASE ip_version WHEN 4 THEN 'ip' WHEN 6 THEN 'ipv6' END AS network,
         split(protocols, ':') AS chain
  FROM iotlake.packets
  WHERE dataset = :dataset
),
above_ip AS (
  SELECT p.*,
         -- the headers after the (outer) IP header, IPv6 extension headers left out
         CASE WHEN network IS NOT NULL AND array_position(chain, network) > 0 THEN
           filter(slice(chain, CAST(array_position(chain, network) AS INT) + 1, size(chain)),
                  x -> x NOT LIKE 'ipv6.%')
         END AS upper
  FROM packets p
),
layered AS (
  SELECT a.*,
         try_element_at(upper, 1) AS l4,
         -- what tshark dissected above TCP/UDP, reassembly markers and undissected payload left out
         filter(slice(upper, 2, greatest(size(upper) - 1, 0)), x -> x NOT IN ('tcp.segments', 'data')) AS payload
  FROM above_ip a
),
framed AS (
  SELECT l.*,
         CASE WHEN l4 IN ('tcp', 'udp') AND l4 = l4_ports THEN l4 END AS transport,
         CASE WHEN l4 IN ('tcp', 'udp') THEN
           CASE WHEN array_contains(payload, 'tls') THEN 'tls' WHEN array_contains(payload, 'dtls') THEN 'dtls' END
         END AS session,
         CASE WHEN l4 IN ('tcp', 'udp') AND try_element_at(payload, 1) NOT IN ('tls', 'dtls')
           THEN try_element_at(payload, 1)
         END AS dissected,
         CASE
           WHEN l4 = 'tcp' AND (tcp_flags & 18) = 2 THEN dst_port   -- SYN: sent to the server
           WHEN l4 = 'tcp' AND (tcp_flags & 18) = 18 THEN src_port  -- SYN-ACK: sent by the server
         END AS handshake_port,
         concat_ws(' ', least(concat(src_ip, '/', src_port), concat(dst_ip, '/', dst_port)),
                   greatest(concat(src_ip, '/', src_port), concat(dst_ip, '/', dst_port))) AS ends
  FROM layered l
),
streams AS (
  SELECT dataset, site, capture, transport, stream, ends,
         min_by(handshake_port, frame_no) FILTER (WHERE handshake_port IS NOT NULL) AS handshake_port,
         min_by(dissected, frame_no) FILTER (WHERE dissected IS NOT NULL) AS dissected
  FROM framed
  WHERE transport IS NOT NULL
  GROUP BY dataset, site, capture, transport, stream, ends
),
served AS (
  SELECT f.*, s.dissected AS stream_dissected,
         CASE
           WHEN s.handshake_port IS NOT NULL THEN s.handshake_port
           WHEN ks.protocol IS NOT NULL AND kd.protocol IS NOT NULL THEN least(f.src_port, f.dst_port)
           WHEN kd.protocol IS NOT NULL THEN f.dst_port
           WHEN ks.protocol IS NOT NULL THEN f.src_port
           WHEN f.transport = 'udp' AND is_group_mac(f.eth_dst) THEN f.dst_port
           ELSE least(f.src_port, f.dst_port)
         END AS server_port,
         CASE
           WHEN s.handshake_port IS NOT NULL THEN 'handshake'
           WHEN ks.protocol IS NOT NULL OR kd.protocol IS NOT NULL THEN 'known_port'
           WHEN f.transport = 'udp' AND is_group_mac(f.eth_dst) THEN 'group_destination'
           ELSE 'lower_port'
         END AS server_port_rule
  FROM framed f
  LEFT JOIN streams s
    ON f.transport IS NOT NULL AND s.dataset = f.dataset AND s.site = f.site AND s.capture = f.capture
       AND s.transport = f.transport AND s.stream <=> f.stream AND s.ends = f.ends
  LEFT JOIN protocol_ports ks ON ks.transport = f.transport AND ks.port = f.src_port
  LEFT JOIN protocol_ports kd ON kd.transport = f.transport AND kd.port = f.dst_port
),
labelled AS (
  SELECT s.*, k.protocol AS port_name
  FROM served s
  LEFT JOIN protocol_ports k ON k.transport = s.transport AND k.port = s.server_port
)
SELECT
  dataset, site, capture, frame_no, network, transport, session,
  CASE WHEN transport IS NOT NULL THEN coalesce(stream_dissected, port_name, concat(transport, ':', server_port)) END
    AS application,
  coalesce(
    CASE WHEN transport IS NOT NULL THEN coalesce(stream_dissected, port_name, concat(transport, ':', server_port)) END,
    CASE WHEN network IS NOT NULL THEN coalesce(l4, network) END,
    CASE
      WHEN try_element_at(filter(chain, x -> x <> 'data'), -1) IN ('eth', 'ethertype') AND eth_type IS NOT NULL
        THEN concat('eth:', lpad(lower(hex(eth_type)), 4, '0'))
      ELSE try_element_at(filter(chain, x -> x <> 'data'), -1)
    END) AS protocol,
  dissected,
  CASE WHEN transport IS NOT NULL THEN server_port END AS server_port,
  CASE WHEN transport IS NOT NULL THEN server_port_rule END AS server_port_rule,
  CASE
    WHEN transport IS NULL THEN 'not_application'
    WHEN stream_dissected IS NOT NULL THEN 'dissector'
    WHEN port_name IS NOT NULL THEN 'known_port'
    ELSE 'server_port'
  END AS label_rule
FROM labelled
