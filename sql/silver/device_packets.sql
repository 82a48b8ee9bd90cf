-- device_packets: one row per frame × device of the site's MAC map that sent it (tx) or received it (rx).
-- grain: dataset, site, capture, frame_no, device
-- partition: dataset, site, capture
-- sources: iotlake.packets, iotlake.devices, iotlake.site_prefixes
-- Direction is by MAC (tx: the device's MAC is the Ethernet source; rx: the destination), so group-addressed
-- frames of other hosts do not belong to the device. Frames without Ethernet addresses (raw IP, Linux cooked
-- captures) and devices the map knows only by IP are attributed by IP instead (tx: the device's IP is the
-- source; rx: the destination and not the source); `attribution` says which ('mac' or 'ip'). Each attribution
-- is its own equi-join (UNION ALL): the IP branches read only frames without Ethernet addresses (Delta skips
-- Ethernet files by their null counts) or, for Ethernet frames, only IP-only devices (none: no join at all).
-- Scope is LAN when the frame is group-addressed at layer 2 (a frame without an Ethernet destination is not),
-- has no IP layer (ARP and other link-local protocols), or both addresses are local (built-in ranges of
-- conf/iotlake.yaml, which include IP multicast and broadcast, plus the site's prefixes); WAN otherwise. The
-- flag columns feed the filter profiles (conf/iotlake.yaml), which the gold models apply.
WITH packets AS (
  SELECT * FROM iotlake.packets WHERE dataset = :dataset
),
devices AS (
  SELECT site, device, mac FROM iotlake.devices WHERE dataset = :dataset AND mac IS NOT NULL
),
ip_devices AS (
  SELECT site, device, ip, mac IS NULL AS ip_only FROM iotlake.devices WHERE dataset = :dataset AND ip IS NOT NULL
),
prefixes AS (
  SELECT site, kind, start_hex, end_hex FROM iotlake.site_prefixes WHERE dataset = :dataset
),
addresses AS (
  SELECT DISTINCT site, src_ip AS ip FROM packets WHERE src_ip IS NOT NULL
  UNION
  SELECT DISTINCT site, dst_ip AS ip FROM packets WHERE dst_ip IS NOT NULL
),
classified AS (
  SELECT a.site, a.ip,
         coalesce(max(p.kind = 'local'), false) AS is_local,
         coalesce(max(p.kind = 'gateway'), false) AS is_gateway,
         coalesce(max(p.kind = 'excluded'), false) AS is_excluded
  FROM addresses a
  LEFT JOIN prefixes p ON p.site = a.site AND ip_hex(a.ip) BETWEEN p.start_hex AND p.end_hex
  GROUP BY a.site, a.ip
),
no_ethernet AS (
  SELECT * FROM packets WHERE eth_src IS NULL AND eth_dst IS NULL
),
ethernet AS (
  SELECT * FROM packets WHERE eth_src IS NOT NULL OR eth_dst IS NOT NULL
),
ip_only_devices AS (
  SELECT site, device, ip FROM ip_devices WHERE ip_only
),
attributed AS (
  SELECT d.device, 'tx' AS direction, 'mac' AS attribution, p.*
  FROM packets p JOIN devices d ON p.site = d.site AND p.eth_src = d.mac
  UNION ALL
  SELECT d.device, 'rx' AS direction, 'mac' AS attribution, p.*
  FROM packets p JOIN devices d ON p.site = d.site AND p.eth_dst = d.mac AND p.eth_src <> d.mac
  UNION ALL
  -- frames without Ethernet addresses: every device with an IP
  SELECT d.device, 'tx' AS direction, 'ip' AS attribution, p.*
  FROM no_ethernet p JOIN ip_devices d ON p.site = d.site AND p.src_ip = d.ip
  UNION ALL
  SELECT d.device, 'rx' AS direction, 'ip' AS attribution, p.*
  FROM no_ethernet p JOIN ip_devices d ON p.site = d.site AND p.dst_ip = d.ip AND p.src_ip <> d.ip
  UNION ALL
  -- Ethernet frames: devices the map knows only by IP
  SELECT d.device, 'tx' AS direction, 'ip' AS attribution, p.*
  FROM ethernet p JOIN ip_only_devices d ON p.site = d.site AND p.src_ip = d.ip
  UNION ALL
  SELECT d.device, 'rx' AS direction, 'ip' AS attribution, p.*
  FROM ethernet p JOIN ip_only_devices d ON p.site = d.site AND p.dst_ip = d.ip AND p.src_ip <> d.ip
)
SELECT
  t.dataset, t.site, t.capture, t.frame_no, t.device, t.direction, t.attribution, t.ts, t.frame_len,
  CASE
    WHEN is_group_mac(t.eth_dst) OR t.src_ip IS NULL THEN 'LAN'
    WHEN s.is_local AND d.is_local THEN 'LAN'
    ELSE 'WAN'
  END AS scope,
  t.ip_version, t.transport,
  CASE WHEN t.direction = 'tx' THEN t.dst_ip ELSE t.src_ip END AS remote_ip,
  -- a Linux cooked frame has no Ethernet source, but its link-layer header names the sender's MAC
  CASE WHEN t.direction = 'tx' THEN t.eth_dst ELSE coalesce(t.eth_src, t.sll_src) END AS peer_mac,
  CASE WHEN t.direction = 'tx' THEN t.src_port ELSE t.dst_port END AS local_port,
  CASE WHEN t.direction = 'tx' THEN t.dst_port ELSE t.src_port END AS remote_port,
  t.protocol, t.protocols,
  t.ip_version IS NOT NULL AS is_ip,
  -- The flags a filter profile may exclude (conf/iotlake.yaml `profiles`), as booleans and as one array.
  f.is_retransmission, f.is_duplicate_ack, f.is_ack_lost_segment, f.is_dhcp, f.is_dhcpv6, f.is_icmp,
  f.is_icmpv6, f.is_igmp, f.is_dns, f.with_gateway, f.with_excluded,
  array_compact(array(
    CASE WHEN f.is_retransmission THEN 'retransmission' END,
    CASE WHEN f.is_duplicate_ack THEN 'duplicate_ack' END,
    CASE WHEN f.is_ack_lost_segment THEN 'ack_lost_segment' END,
    CASE WHEN f.is_dhcp THEN 'dhcp' END,
    CASE WHEN f.is_dhcpv6 THEN 'dhcpv6' END,
    CASE WHEN f.is_icmp THEN 'icmp' END,
    CASE WHEN f.is_icmpv6 THEN 'icmpv6' END,
    CASE WHEN f.is_igmp THEN 'igmp' END,
    CASE WHEN f.is_dns THEN 'dns' END,
    CASE WHEN f.with_gateway THEN 'gateway' END,
    CASE WHEN f.with_excluded THEN 'excluded' END)) AS flags
FROM attributed t
LEFT JOIN classified s ON s.site = t.site AND s.ip = t.src_ip
LEFT JOIN classified d ON d.site = t.site AND d.ip = t.dst_ip
LATERAL VIEW inline(array(named_struct(
  'is_retransmission', coalesce(t.tcp_retransmission, false),
  'is_duplicate_ack', coalesce(t.tcp_duplicate_ack, false),
  'is_ack_lost_segment', coalesce(t.tcp_ack_lost_segment, false),
  'is_dhcp', t.protocols RLIKE '(^|:)dhcp(:|$)',
  'is_dhcpv6', t.protocols RLIKE '(^|:)dhcpv6(:|$)',
  'is_icmp', t.protocols RLIKE '(^|:)icmp(:|$)',
  'is_icmpv6', t.protocols RLIKE '(^|:)icmpv6(:|$)',
  'is_igmp', t.protocols RLIKE '(^|:)igmp(:|$)',
  'is_dns', t.protocols RLIKE '(^|:)dns(:|$)',
  'with_gateway', coalesce(s.is_gateway, false) OR coalesce(d.is_gateway, false),
  'with_excluded', coalesce(s.is_excluded, false) OR coalesce(d.is_excluded, false)))) f
