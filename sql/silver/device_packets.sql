-- device_packets: one row per frame × device of the site's MAC map that sent it (tx) or received it (rx).
-- grain: dataset, site, capture, frame_no, device
-- partition: dataset, site, capture
-- sources: iotlake.packets, iotlake.devices, iotlake.site_prefixes
-- Direction is by MAC (tx: the device's MAC is the Ethernet source; rx: the destination), so group-addressed
-- frames of other hosts do not belong to the device. Scope is LAN when the frame is group-addressed at layer 2,
-- has no IP layer (ARP and other link-local protocols), or both addresses are local (built-in ranges of
-- conf/iotlake.yaml plus the site's prefixes); WAN otherwise. The flag columns feed the filter profiles.
WITH packets AS (
  SELECT * FROM iotlake.packets WHERE dataset = :dataset
),
devices AS (
  SELECT site, device, mac FROM iotlake.devices WHERE dataset = :dataset
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
attributed AS (
  SELECT d.device, 'tx' AS direction, p.*
  FROM packets p JOIN devices d ON p.site = d.site AND p.eth_src = d.mac
  UNION ALL
  SELECT d.device, 'rx' AS direction, p.*
  FROM packets p JOIN devices d ON p.site = d.site AND p.eth_dst = d.mac AND p.eth_src <> d.mac
)
SELECT
  t.dataset, t.site, t.capture, t.frame_no, t.device, t.direction, t.ts, t.frame_len,
  CASE
    WHEN is_group_mac(t.eth_dst) OR t.src_ip IS NULL THEN 'LAN'
    WHEN s.is_local AND d.is_local THEN 'LAN'
    ELSE 'WAN'
  END AS scope,
  t.ip_version, t.transport,
  CASE WHEN t.direction = 'tx' THEN t.dst_ip ELSE t.src_ip END AS remote_ip,
  CASE WHEN t.direction = 'tx' THEN t.src_port ELSE t.dst_port END AS local_port,
  CASE WHEN t.direction = 'tx' THEN t.dst_port ELSE t.src_port END AS remote_port,
  t.protocol, t.protocols,
  t.ip_version IS NOT NULL AS is_ip,
  t.tcp_retransmission AS is_retransmission,
  t.tcp_duplicate_ack AS is_duplicate_ack,
  t.tcp_ack_lost_segment AS is_ack_lost_segment,
  t.protocols RLIKE '(^|:)dhcp(:|$)' AS is_dhcp,
  t.protocols RLIKE '(^|:)dhcpv6(:|$)' AS is_dhcpv6,
  t.protocols RLIKE '(^|:)icmp(:|$)' AS is_icmp,
  t.protocols RLIKE '(^|:)icmpv6(:|$)' AS is_icmpv6,
  t.protocols RLIKE '(^|:)igmp(:|$)' AS is_igmp,
  t.protocols RLIKE '(^|:)dns(:|$)' AS is_dns,
  coalesce(s.is_gateway, false) OR coalesce(d.is_gateway, false) AS with_gateway,
  coalesce(s.is_excluded, false) OR coalesce(d.is_excluded, false) AS with_excluded
FROM attributed t
LEFT JOIN classified s ON s.site = t.site AND s.ip = t.src_ip
LEFT JOIN classified d ON d.site = t.site AND d.ip = t.dst_ip
