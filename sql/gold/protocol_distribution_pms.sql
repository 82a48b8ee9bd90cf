-- protocol_distribution_pms: per device, filter profile and scope, over one capture or all ('*'): the earlier study's protocol-type distribution row (`*-proto-distributions.csv`).
-- grain: dataset, site, capture, device, profile, scope
-- partition: dataset
-- sources: iotlake.protocol_type_distribution, iotlake.devices
-- The earlier semantics (reference passive-mode-study §4.3, §7.2): application packets only, IPv4 and IPv6
-- pooled, categories Discovery, Management, Encrypted, NonEncrypted (= Unencrypted) and Unknown; TotalCount is
-- their sum and each Pct is count / TotalCount, 0 when the total is 0. Unlike the earlier files, every packet
-- counts once (no `*` duplicate rows), so ALL = LAN + WAN.
WITH dist AS (
  SELECT * FROM iotlake.protocol_type_distribution WHERE dataset = :dataset AND category <> 'Non-application'
),
wide AS (
  SELECT dataset, site, capture, device, profile, scope,
         sum(packets) AS total_count,
         sum(CASE WHEN category = 'Discovery' THEN packets ELSE 0 END) AS discovery_count,
         sum(CASE WHEN category = 'Management' THEN packets ELSE 0 END) AS management_count,
         sum(CASE WHEN category = 'Encrypted' THEN packets ELSE 0 END) AS encrypted_count,
         sum(CASE WHEN category = 'Unencrypted' THEN packets ELSE 0 END) AS nonencrypted_count,
         sum(CASE WHEN category = 'Unknown' THEN packets ELSE 0 END) AS unknown_count
  FROM dist
  GROUP BY dataset, site, capture, device, profile, scope
)
SELECT w.dataset, w.site, w.capture, w.device, d.mac, w.profile, w.scope, w.total_count,
       w.discovery_count, coalesce(try_divide(w.discovery_count, w.total_count), 0D) AS discovery_pct,
       w.management_count, coalesce(try_divide(w.management_count, w.total_count), 0D) AS management_pct,
       w.encrypted_count, coalesce(try_divide(w.encrypted_count, w.total_count), 0D) AS encrypted_pct,
       w.nonencrypted_count, coalesce(try_divide(w.nonencrypted_count, w.total_count), 0D) AS nonencrypted_pct,
       w.unknown_count, coalesce(try_divide(w.unknown_count, w.total_count), 0D) AS unknown_pct
FROM wide w
LEFT JOIN (SELECT DISTINCT site, device, mac FROM iotlake.devices WHERE dataset = :dataset) d
  ON d.site = w.site AND d.device = w.device
