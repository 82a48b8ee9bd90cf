-- all_proto_distributions: per device MAC and scope (ALL, LAN, WAN): application packets per protocol category and their shares — the published All-proto-distributions.csv.
-- grain: MAC, Type
-- partition:
-- sources: iotlake.protocol_usage (source imported), iotlake.devices, pms_captures (session view of iotlake.imports.reproduce)
-- Reference §4.3, §7.2: the summary captures' protocol files, scope from the file name, IPv4 and IPv6 pooled,
-- keyed by MAC (a second unit is its own MAC); TotalPackets of application rows summed per category,
-- `*`-flagged rows included as the earlier script counted them (so ALL is not LAN + WAN); Pct = count /
-- TotalCount, 0 when the total is 0. A scope without rows is a row of zeros.
WITH usage AS (
  SELECT upper(d.mac) AS mac, p.scope, p.category, p.packets
  FROM iotlake.protocol_usage p
  JOIN pms_captures c ON c.site = p.site AND c.capture = p.capture
  JOIN iotlake.devices d ON d.dataset = p.dataset AND d.site = p.site AND d.device = p.device
  WHERE p.dataset = :dataset AND p.source = 'imported' AND p.is_application
),
keys AS (
  SELECT DISTINCT u.mac, s.scope
  FROM usage u
  CROSS JOIN (SELECT explode(array('ALL', 'LAN', 'WAN')) AS scope) s
),
counted AS (
  SELECT u.mac, u.scope,
         sum(CASE WHEN u.category = 'Discovery' THEN u.packets ELSE 0 END) AS DiscoveryCount,
         sum(CASE WHEN u.category = 'Management' THEN u.packets ELSE 0 END) AS ManagementCount,
         sum(CASE WHEN u.category = 'Encrypted' THEN u.packets ELSE 0 END) AS EncryptedCount,
         sum(CASE WHEN u.category = 'Unencrypted' THEN u.packets ELSE 0 END) AS NonEncryptedCount,
         sum(CASE WHEN u.category = 'Unknown' THEN u.packets ELSE 0 END) AS UnknownCount,
         sum(u.packets) AS TotalCount
  FROM usage u
  GROUP BY u.mac, u.scope
)
SELECT k.mac AS MAC, k.scope AS Type, coalesce(n.TotalCount, 0) AS TotalCount,
       coalesce(n.DiscoveryCount, 0) AS DiscoveryCount, coalesce(try_divide(n.DiscoveryCount, n.TotalCount), 0D) AS DiscoveryPct,
       coalesce(n.ManagementCount, 0) AS ManagementCount, coalesce(try_divide(n.ManagementCount, n.TotalCount), 0D) AS ManagementPct,
       coalesce(n.EncryptedCount, 0) AS EncryptedCount, coalesce(try_divide(n.EncryptedCount, n.TotalCount), 0D) AS EncryptedPct,
       coalesce(n.NonEncryptedCount, 0) AS NonEncryptedCount, coalesce(try_divide(n.NonEncryptedCount, n.TotalCount), 0D) AS NonEncryptedPct,
       coalesce(n.UnknownCount, 0) AS UnknownCount, coalesce(try_divide(n.UnknownCount, n.TotalCount), 0D) AS UnknownPct
FROM keys k
LEFT JOIN counted n ON n.mac = k.mac AND n.scope = k.scope
