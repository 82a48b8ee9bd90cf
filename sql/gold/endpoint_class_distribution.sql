-- endpoint_class_distribution: per device and filter profile, over one capture or all its captures ('*'): the device's endpoint traffic and the share of each party class (First, Support, Third, Local) in it.
-- grain: dataset, site, capture, device, profile
-- partition: dataset
-- sources: iotlake.endpoint_usage
-- The columns of the earlier endpoint_type_distribution.csv: six overall totals from the device's side, then per
-- class the share of each metric over the same metric's overall (tx_bytes_pct_first = first-party tx bytes /
-- all tx bytes). Classes are decided per capture, so '*' sums per-capture classes (reference §7.3); every
-- Local (…) label counts as Local. A share is 0 when its overall is 0, as the earlier script wrote it.
WITH classed AS (
  SELECT *, CASE WHEN class LIKE 'Local%' THEN 'Local' ELSE class END AS party
  FROM iotlake.endpoint_usage
  WHERE dataset = :dataset
)
SELECT dataset, site, coalesce(capture, '*') AS capture, device, profile,
       count(DISTINCT remote_ip) AS endpoints,
       count(DISTINCT CASE WHEN class = 'Third' THEN remote_ip END) AS third_party_endpoints,
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
FROM classed
GROUP BY GROUPING SETS ((dataset, site, device, profile, capture), (dataset, site, device, profile))
