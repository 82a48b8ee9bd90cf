-- local_endpoint_distribution: per device, filter profile and local peer label (Local (<device>), Local Multicast, …), over one capture or all ('*'): the device's local traffic and the share that went to that peer.
-- grain: dataset, site, capture, device, profile, target
-- partition: dataset
-- sources: iotlake.endpoint_usage
-- The earlier local_endpoint_distribution.csv: `<metric>_local` are the device's local totals and each share is
-- over the same metric's local total (0 when that total is 0).
WITH local AS (
  SELECT dataset, site, capture, device, profile, class AS target,
         packets, bytes, tx_packets, tx_bytes, rx_packets, rx_bytes
  FROM iotlake.endpoint_usage
  WHERE dataset = :dataset AND class LIKE 'Local%'
),
grouped AS (
  SELECT dataset, site, coalesce(capture, '*') AS capture, device, profile, target,
         sum(packets) AS packets, sum(bytes) AS bytes, sum(tx_packets) AS tx_packets, sum(tx_bytes) AS tx_bytes,
         sum(rx_packets) AS rx_packets, sum(rx_bytes) AS rx_bytes
  FROM local
  GROUP BY GROUPING SETS ((dataset, site, device, profile, target, capture), (dataset, site, device, profile, target))
),
totals AS (
  SELECT *,
              sum(packets) OVER (PARTITION BY dataset, site, capture, device, profile) AS packets_local,
              sum(bytes) OVER (PARTITION BY dataset, site, capture, device, profile) AS bytes_local,
              sum(tx_packets) OVER (PARTITION BY dataset, site, capture, device, profile) AS tx_packets_local,
              sum(tx_bytes) OVER (PARTITION BY dataset, site, capture, device, profile) AS tx_bytes_local,
              sum(rx_packets) OVER (PARTITION BY dataset, site, capture, device, profile) AS rx_packets_local,
              sum(rx_bytes) OVER (PARTITION BY dataset, site, capture, device, profile) AS rx_bytes_local
  FROM grouped
)
SELECT dataset, site, capture, device, profile, target,
       max(packets_local) AS packets_local, max(bytes_local) AS bytes_local, max(tx_packets_local) AS tx_packets_local, max(tx_bytes_local) AS tx_bytes_local, max(rx_packets_local) AS rx_packets_local, max(rx_bytes_local) AS rx_bytes_local,
       coalesce(sum(packets) / nullif(max(packets_local), 0), 0D) AS packets_to_target_pct,
       coalesce(sum(bytes) / nullif(max(bytes_local), 0), 0D) AS bytes_to_target_pct,
       coalesce(sum(tx_packets) / nullif(max(tx_packets_local), 0), 0D) AS tx_packets_to_target_pct,
       coalesce(sum(tx_bytes) / nullif(max(tx_bytes_local), 0), 0D) AS tx_bytes_to_target_pct,
       coalesce(sum(rx_packets) / nullif(max(rx_packets_local), 0), 0D) AS rx_packets_to_target_pct,
       coalesce(sum(rx_bytes) / nullif(max(rx_bytes_local), 0), 0D) AS rx_bytes_to_target_pct
FROM totals
GROUP BY dataset, site, capture, device, profile, target
