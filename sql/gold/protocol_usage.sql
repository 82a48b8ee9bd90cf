-- protocol_usage: per device, filter profile, scope (ALL, LAN, WAN), IP version, protocol label and remote address: packets and bytes, total and by direction, and their share of the device's traffic.
-- grain: dataset, site, capture, device, profile, scope, ip_version, protocol, remote_ip
-- partition: dataset
-- sources: iotlake.device_packets, iotlake.packet_protocols, filter_profiles (conf/iotlake.yaml), protocol_types (conf/protocol_types.csv)
-- Every device packet is counted once, under its one label of silver.packet_protocols (the application label,
-- else icmp/igmp/arp/…: `is_application` false), from the device's side (tx: it sent the frame). The scope is
-- the packet's own (LAN or WAN), and every packet also counts in ALL, so ALL = LAN + WAN. `category` is the
-- label's category in conf/protocol_types.csv; an application label missing there is 'Unknown' (and listed by
-- `iotlake protocols unknown`), never dropped; packets without an application label are 'Non-application'.
-- The shares divide by the device's packets (bytes) in the same capture, profile and scope.
WITH labelled AS (
  SELECT t.dataset, t.site, t.capture, t.device, p.profile, scope_name AS scope, t.ip_version, l.protocol,
         l.application IS NOT NULL AS is_application, t.remote_ip, t.direction, t.frame_len
  FROM iotlake.device_packets t
  JOIN iotlake.packet_protocols l
    ON l.dataset = t.dataset AND l.site = t.site AND l.capture = t.capture AND l.frame_no = t.frame_no
  JOIN filter_profiles p
    ON (t.is_ip OR NOT p.ip_only) AND NOT arrays_overlap(t.flags, p.exclude)
  LATERAL VIEW explode(array('ALL', t.scope)) AS scope_name
  WHERE t.dataset = :dataset AND l.dataset = :dataset
),
counted AS (
  SELECT dataset, site, capture, device, profile, scope, ip_version, protocol, is_application, remote_ip,
         count(*) AS packets,
         sum(frame_len) AS bytes,
         count_if(direction = 'tx') AS tx_packets,
         coalesce(sum(CASE WHEN direction = 'tx' THEN frame_len END), 0) AS tx_bytes,
         count_if(direction = 'rx') AS rx_packets,
         coalesce(sum(CASE WHEN direction = 'rx' THEN frame_len END), 0) AS rx_bytes
  FROM labelled
  GROUP BY dataset, site, capture, device, profile, scope, ip_version, protocol, is_application, remote_ip
)
SELECT c.dataset, c.site, c.capture, c.device, c.profile, c.scope, c.ip_version, c.protocol, c.is_application,
       CASE WHEN NOT c.is_application THEN 'Non-application' ELSE coalesce(ty.category, 'Unknown') END AS category,
       c.remote_ip, c.packets, c.bytes, c.tx_packets, c.tx_bytes, c.rx_packets, c.rx_bytes,
       c.packets / sum(c.packets) OVER (PARTITION BY c.dataset, c.site, c.capture, c.device, c.profile, c.scope)
         AS packet_share,
       c.bytes / sum(c.bytes) OVER (PARTITION BY c.dataset, c.site, c.capture, c.device, c.profile, c.scope)
         AS byte_share,
       'captures' AS source
FROM counted c
LEFT JOIN protocol_types ty ON c.is_application AND ty.protocol = c.protocol
