-- device_addresses: one row per span of time in which an IP address belonged to a device of the site's MAC map.
-- grain: dataset, site, capture, device, ip, valid_from
-- partition: dataset
-- sources: iotlake.packets, iotlake.devices, iotlake.site_prefixes
-- Evidence, all from the capture itself: the device's own frames (its MAC as Ethernet source ⇒ the IP source
-- is its address), ARP (sender MAC and address; probes from 0.0.0.0 claim nothing), DHCP ACKs (the
-- acknowledged address `yiaddr` to the client hardware address) and IPv6 neighbour discovery (an advertised
-- target from the device's MAC; a duplicate-address-detection solicitation from :: for its target).
-- IPv4: a device holds one address at a time, so its evidence is cut into runs of the same address in time
-- order; a run is valid from its first evidence until the next run starts (`valid_until`, exclusive; NULL: to
-- the end of the capture). A DHCP change mid-capture therefore ends one binding and starts the next. Only local
-- IPv4 addresses (built-in ranges plus the site's prefixes) count from own frames, so a router in the MAC map
-- does not collect the addresses of what it forwards. IPv6: a device holds several addresses at once; each is
-- one row from its first to its last evidence, valid_until NULL.
WITH packets AS (
  SELECT * FROM iotlake.packets WHERE dataset = :dataset
),
devices AS (
  SELECT site, device, mac FROM iotlake.devices WHERE dataset = :dataset
),
evidence AS (
  SELECT p.dataset, p.site, p.capture, d.device, d.mac, p.src_ip AS ip, p.ts, p.frame_no, 'frame' AS source
  FROM packets p JOIN devices d ON p.site = d.site AND p.eth_src = d.mac
  WHERE p.src_ip IS NOT NULL
  UNION ALL
  SELECT p.dataset, p.site, p.capture, d.device, d.mac, p.arp_src_ip, p.ts, p.frame_no, 'arp'
  FROM packets p JOIN devices d ON p.site = d.site AND p.arp_src_mac = d.mac
  WHERE p.arp_src_ip IS NOT NULL
  UNION ALL
  SELECT p.dataset, p.site, p.capture, d.device, d.mac, p.dhcp_your_ip, p.ts, p.frame_no, 'dhcp_ack'
  FROM packets p JOIN devices d ON p.site = d.site AND p.dhcp_client_mac = d.mac
  WHERE p.dhcp_msg_type = 5 AND p.dhcp_your_ip IS NOT NULL
  UNION ALL
  SELECT p.dataset, p.site, p.capture, d.device, d.mac, p.nd_na_target, p.ts, p.frame_no, 'nd_advertisement'
  FROM packets p JOIN devices d ON p.site = d.site AND p.eth_src = d.mac
  WHERE p.icmpv6_type = 136 AND p.nd_na_target IS NOT NULL
  UNION ALL
  SELECT p.dataset, p.site, p.capture, d.device, d.mac, p.nd_ns_target, p.ts, p.frame_no, 'nd_dad'
  FROM packets p JOIN devices d ON p.site = d.site AND p.eth_src = d.mac
  WHERE p.icmpv6_type = 135 AND p.src_ip = '::' AND p.nd_ns_target IS NOT NULL
),
local_prefixes AS (
  SELECT site, start_hex, end_hex FROM iotlake.site_prefixes WHERE dataset = :dataset AND kind = 'local'
),
addresses AS (
  SELECT a.site, a.ip, count(l.site) > 0 AS is_local
  FROM (SELECT DISTINCT site, ip FROM evidence) a
  LEFT JOIN local_prefixes l ON l.site = a.site AND ip_hex(a.ip) BETWEEN l.start_hex AND l.end_hex
  GROUP BY a.site, a.ip
),
checked AS (
  SELECT e.*, CASE WHEN e.ip LIKE '%:%' THEN 6 ELSE 4 END AS ip_version, a.is_local
  FROM evidence e JOIN addresses a ON a.site = e.site AND a.ip = e.ip
  WHERE e.ip NOT IN ('0.0.0.0', '::', '255.255.255.255')
),
kept AS (
  SELECT * FROM checked WHERE ip_version = 6 OR is_local OR source <> 'frame'
),
runs AS (
  SELECT k.*,
         sum(CASE WHEN ip_version = 4 AND prev_ip IS DISTINCT FROM ip THEN 1 ELSE 0 END)
           OVER (PARTITION BY dataset, site, capture, device, ip_version ORDER BY ts, frame_no, source) AS run
  FROM (
    SELECT c.*, lag(ip) OVER (PARTITION BY dataset, site, capture, device, ip_version
                              ORDER BY ts, frame_no, source) AS prev_ip
    FROM kept c
  ) k
),
spans AS (
  SELECT dataset, site, capture, device, mac, ip, ip_version, run,
         min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS evidence,
         array_sort(collect_set(source)) AS sources
  FROM runs
  GROUP BY dataset, site, capture, device, mac, ip, ip_version, run
)
SELECT dataset, site, capture, device, mac, ip, ip_version,
       first_seen AS valid_from,
       CASE WHEN ip_version = 4
         THEN lead(first_seen) OVER (PARTITION BY dataset, site, capture, device, ip_version ORDER BY first_seen)
       END AS valid_until,
       first_seen, last_seen, evidence, sources
FROM spans
