-- unique_protos_per_mac: per summary file (All, FR-Combined, US1-Combined, US2), device MAC and scope (ALL, WAN, LAN): the distinct protocol names at each layer — the published *-unique-protos-per-mac.csv files.
-- grain: File, MAC, Type
-- partition:
-- sources: iotlake.protocol_usage (source imported), iotlake.devices, pms_captures, pms_groups (session views of iotlake.imports.reproduce)
-- Reference §4.3, §7.2: layers Network (ip, ipv6), Transport (tcp, udp), Session (tls), Application (every
-- other name), over the group's summary captures, `*` rows included; lists are sorted (compare as sets).
WITH usage AS (
  SELECT g.file_name, upper(d.mac) AS mac, p.scope, p.protocol,
         CASE WHEN p.protocol IN ('ip', 'ipv6') THEN 'network'
              WHEN p.protocol IN ('tcp', 'udp') THEN 'transport'
              WHEN p.protocol = 'tls' THEN 'session'
              ELSE 'application' END AS layer
  FROM iotlake.protocol_usage p
  JOIN pms_captures c ON c.site = p.site AND c.capture = p.capture
  JOIN pms_groups g ON g.site = p.site
  JOIN iotlake.devices d ON d.dataset = p.dataset AND d.site = p.site AND d.device = p.device
  WHERE p.dataset = :dataset AND p.source = 'imported'
),
keys AS (
  SELECT DISTINCT u.file_name, u.mac, s.scope
  FROM usage u
  CROSS JOIN (SELECT explode(array('ALL', 'WAN', 'LAN')) AS scope) s
),
listed AS (
  SELECT file_name, mac, scope,
         array_sort(collect_set(CASE WHEN layer = 'network' THEN protocol END)) AS network,
         array_sort(collect_set(CASE WHEN layer = 'transport' THEN protocol END)) AS transport,
         array_sort(collect_set(CASE WHEN layer = 'session' THEN protocol END)) AS session,
         array_sort(collect_set(CASE WHEN layer = 'application' THEN protocol END)) AS application
  FROM usage
  GROUP BY file_name, mac, scope
)
SELECT k.file_name AS File, k.mac AS MAC, k.scope AS Type,
       coalesce(l.network, array()) AS Network, coalesce(l.transport, array()) AS Transport,
       coalesce(l.session, array()) AS Session, coalesce(l.application, array()) AS Application
FROM keys k
LEFT JOIN listed l ON l.file_name = k.file_name AND l.mac = k.mac AND l.scope = k.scope
