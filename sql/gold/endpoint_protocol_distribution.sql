-- endpoint_protocol_distribution: per device, filter profile, semantics and protocol category, over one capture or all ('*'): the endpoint traffic counted for the category and the share of each party class (First, Support, Third, Local) in it.
-- grain: dataset, site, capture, device, profile, semantics, category
-- partition: dataset
-- sources: iotlake.endpoint_usage, iotlake.protocol_usage
-- Two semantics side by side. `pms` re-derives the earlier endpoint_protocol_distribution.csv (reference §4.7,
-- §7.3): for every distinct application protocol an endpoint used in the capture (scope ALL, IPv4 and IPv6
-- pooled), the endpoint's whole traffic is added to that protocol's category, so an endpoint that used https
-- and tcp:8883 counts twice in Encrypted and one that used https and ntp counts in Encrypted and Management.
-- `own` adds each protocol's own packets to its category, so every packet counts exactly once (packets without
-- an application label under Non-application). Shares are per metric over the category's overall; classes are
-- decided per capture and every Local (…) label counts as Local; a share is 0 when its overall is 0.
WITH endpoints AS (
  SELECT dataset, site, capture, device, profile, remote_ip,
         CASE WHEN class LIKE 'Local%' THEN 'Local' ELSE class END AS party,
         packets, bytes, tx_packets, tx_bytes, rx_packets, rx_bytes
  FROM iotlake.endpoint_usage
  WHERE dataset = :dataset
),
used AS (
  SELECT dataset, site, capture, device, profile, remote_ip, protocol, is_application, category,
         sum(packets) AS packets, sum(bytes) AS bytes, sum(tx_packets) AS tx_packets,
         sum(tx_bytes) AS tx_bytes, sum(rx_packets) AS rx_packets, sum(rx_bytes) AS rx_bytes
  FROM iotlake.protocol_usage
  WHERE dataset = :dataset AND scope = 'ALL' AND remote_ip IS NOT NULL
  GROUP BY dataset, site, capture, device, profile, remote_ip, protocol, is_application, category
),
counted AS (
  SELECT 'pms' AS semantics, e.dataset, e.site, e.capture, e.device, e.profile, u.category, e.party,
         e.packets, e.bytes, e.tx_packets, e.tx_bytes, e.rx_packets, e.rx_bytes
  FROM endpoints e
  JOIN used u USING (dataset, site, capture, device, profile, remote_ip)
  WHERE u.is_application
  UNION ALL
  SELECT 'own' AS semantics, e.dataset, e.site, e.capture, e.device, e.profile, u.category, e.party,
         u.packets, u.bytes, u.tx_packets, u.tx_bytes, u.rx_packets, u.rx_bytes
  FROM endpoints e
  JOIN used u USING (dataset, site, capture, device, profile, remote_ip)
)
SELECT dataset, site, coalesce(capture, '*') AS capture, device, profile, semantics, category,
       sum(packets) AS packets_overall,
       sum(bytes) AS bytes_overall,
       sum(tx_packets) AS tx_packets_overall,
       sum(tx_bytes) AS tx_bytes_overall,
       sum(rx_packets) AS rx_packets_overall,
       sum(rx_bytes) AS rx_bytes_overall,
       coalesce(sum(CASE WHEN party = 'First' THEN packets END) / nullif(sum(packets), 0), 0D) AS packets_pct_first,
       coalesce(sum(CASE WHEN party = 'First' THEN bytes END) / nullif(sum(bytes), 0), 0D) AS bytes_pct_first,
       coalesce(sum(CASE WHEN party = 'First' THEN tx_packets END) / nullif(sum(tx_packets), 0), 0D) AS tx_packets_pct_first,
       coalesce(sum(CASE WHEN party = 'First' THEN tx_bytes END) / nullif(sum(tx_bytes), 0), 0D) AS tx_bytes_pct_first,
       coalesce(sum(CASE WHEN party = 'First' THEN rx_packets END) / nullif(sum(rx_packets), 0), 0D) AS rx_packets_pct_first,
       coalesce(sum(CASE WHEN party = 'First' THEN rx_bytes END) / nullif(sum(rx_bytes), 0), 0D) AS rx_bytes_pct_first,
       coalesce(sum(CASE WHEN party = 'Support' THEN packets END) / nullif(sum(packets), 0), 0D) AS packets_pct_support,
       coalesce(sum(CASE WHEN party = 'Support' THEN bytes END) / nullif(sum(bytes), 0), 0D) AS bytes_pct_support,
       coalesce(sum(CASE WHEN party = 'Support' THEN tx_packets END) / nullif(sum(tx_packets), 0), 0D) AS tx_packets_pct_support,
       coalesce(sum(CASE WHEN party = 'Support' THEN tx_bytes END) / nullif(sum(tx_bytes), 0), 0D) AS tx_bytes_pct_support,
       coalesce(sum(CASE WHEN party = 'Support' THEN rx_packets END) / nullif(sum(rx_packets), 0), 0D) AS rx_packets_pct_support,
       coalesce(sum(CASE WHEN party = 'Support' THEN rx_bytes END) / nullif(sum(rx_bytes), 0), 0D) AS rx_bytes_pct_support,
       coalesce(sum(CASE WHEN party = 'Third' THEN packets END) / nullif(sum(packets), 0), 0D) AS packets_pct_third,
       coalesce(sum(CASE WHEN party = 'Third' THEN bytes END) / nullif(sum(bytes), 0), 0D) AS bytes_pct_third,
       coalesce(sum(CASE WHEN party = 'Third' THEN tx_packets END) / nullif(sum(tx_packets), 0), 0D) AS tx_packets_pct_third,
       coalesce(sum(CASE WHEN party = 'Third' THEN tx_bytes END) / nullif(sum(tx_bytes), 0), 0D) AS tx_bytes_pct_third,
       coalesce(sum(CASE WHEN party = 'Third' THEN rx_packets END) / nullif(sum(rx_packets), 0), 0D) AS rx_packets_pct_third,
       coalesce(sum(CASE WHEN party = 'Third' THEN rx_bytes END) / nullif(sum(rx_bytes), 0), 0D) AS rx_bytes_pct_third,
       coalesce(sum(CASE WHEN party = 'Local' THEN packets END) / nullif(sum(packets), 0), 0D) AS packets_pct_local,
       coalesce(sum(CASE WHEN party = 'Local' THEN bytes END) / nullif(sum(bytes), 0), 0D) AS bytes_pct_local,
       coalesce(sum(CASE WHEN party = 'Local' THEN tx_packets END) / nullif(sum(tx_packets), 0), 0D) AS tx_packets_pct_local,
       coalesce(sum(CASE WHEN party = 'Local' THEN tx_bytes END) / nullif(sum(tx_bytes), 0), 0D) AS tx_bytes_pct_local,
       coalesce(sum(CASE WHEN party = 'Local' THEN rx_packets END) / nullif(sum(rx_packets), 0), 0D) AS rx_packets_pct_local,
       coalesce(sum(CASE WHEN party = 'Local' THEN rx_bytes END) / nullif(sum(rx_bytes), 0), 0D) AS rx_bytes_pct_local
FROM counted
GROUP BY GROUPING SETS ((dataset, site, device, profile, semantics, category, capture),
                        (dataset, site, device, profile, semantics, category))
