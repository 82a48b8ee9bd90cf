-- protocol_type_distribution: per device, filter profile, scope and protocol category, over one capture or over all the device's captures ('*'): packets and bytes and their shares.
-- grain: dataset, site, capture, device, profile, scope, category
-- partition: dataset
-- sources: iotlake.protocol_usage
-- Categories: Discovery, Management, Encrypted, Unencrypted (conf/protocol_types.csv), Unknown (application
-- labels the file does not list: visible here, never dropped) and Non-application (ARP, ICMP, IGMP, …). Every
-- packet counts once, under its one label. `packet_share`/`byte_share` divide by the device's application
-- packets (bytes), the denominator of the earlier study (Non-application has none); `all_packet_share` divides
-- by all its packets. Every category has a row, zero when absent; `protocols` lists the labels counted in it.
WITH usage AS (
  SELECT dataset, site, capture, device, profile, scope, category, protocol, packets, bytes
  FROM iotlake.protocol_usage
  WHERE dataset = :dataset
),
both_grains AS (
  SELECT * FROM usage
  UNION ALL
  SELECT dataset, site, '*' AS capture, device, profile, scope, category, protocol, packets, bytes FROM usage
),
keys AS (
  SELECT DISTINCT dataset, site, capture, device, profile, scope FROM both_grains
),
categories AS (
  SELECT explode(array('Discovery', 'Management', 'Encrypted', 'Unencrypted', 'Unknown', 'Non-application'))
    AS category
),
counted AS (
  SELECT dataset, site, capture, device, profile, scope, category,
         sum(packets) AS packets, sum(bytes) AS bytes, array_sort(collect_set(protocol)) AS protocols
  FROM both_grains
  GROUP BY dataset, site, capture, device, profile, scope, category
),
filled AS (
  SELECT k.dataset, k.site, k.capture, k.device, k.profile, k.scope, c.category,
         coalesce(n.packets, 0) AS packets, coalesce(n.bytes, 0) AS bytes,
         coalesce(n.protocols, array()) AS protocols
  FROM keys k
  CROSS JOIN categories c
  LEFT JOIN counted n
    ON n.dataset = k.dataset AND n.site = k.site AND n.capture = k.capture AND n.device = k.device
       AND n.profile = k.profile AND n.scope = k.scope AND n.category = c.category
)
SELECT dataset, site, capture, device, profile, scope, category, packets, bytes,
       CASE WHEN category <> 'Non-application' THEN
         try_divide(packets, sum(CASE WHEN category <> 'Non-application' THEN packets END)
           OVER (PARTITION BY dataset, site, capture, device, profile, scope))
       END AS packet_share,
       CASE WHEN category <> 'Non-application' THEN
         try_divide(bytes, sum(CASE WHEN category <> 'Non-application' THEN bytes END)
           OVER (PARTITION BY dataset, site, capture, device, profile, scope))
       END AS byte_share,
       try_divide(packets, sum(packets) OVER (PARTITION BY dataset, site, capture, device, profile, scope))
         AS all_packet_share,
       protocols
FROM filled
