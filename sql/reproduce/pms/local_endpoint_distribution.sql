-- local_endpoint_distribution: per summary device (display name) and local target label: the device's local traffic and the share that went to that target — the published local_endpoint_distribution.csv.
-- grain: SourceDevice, TargetDevice
-- partition:
-- sources: iotlake.endpoint_usage (source imported), pms_devices, pms_captures (session views of iotlake.imports.reproduce)
-- Reference §4.7, §7.3: endpoints whose Type contains "Local", per capture, grouped by the exact label after
-- the curators' merge of "Local (Google Home)" into "Local (Google Speaker)" (the same device, §4.6); the
-- Overall columns are the device's local totals and each share is over the same metric's local total.
WITH endpoints AS (
  SELECT e.site, e.capture, e.device, d.display, e.remote_ip, e.class,
         CASE WHEN e.class LIKE '%Local%' THEN 'Local' ELSE e.class END AS party,
         e.packets, e.bytes, e.tx_packets, e.tx_bytes, e.rx_packets, e.rx_bytes
  FROM iotlake.endpoint_usage e
  JOIN pms_captures c ON c.site = e.site AND c.capture = e.capture
  JOIN pms_devices d ON d.site = e.site AND d.device = e.device
  WHERE e.dataset = :dataset AND e.source = 'imported'
    AND (e.class IN ('First', 'Support', 'Third') OR e.class LIKE '%Local%')
),
local AS (
  SELECT display,
         CASE WHEN class = 'Local (Google Home)' THEN 'Local (Google Speaker)' ELSE class END AS target,
         packets, bytes, tx_packets, tx_bytes, rx_packets, rx_bytes,
         sum(packets) OVER (PARTITION BY display) AS packets_local,
         sum(bytes) OVER (PARTITION BY display) AS bytes_local,
         sum(tx_packets) OVER (PARTITION BY display) AS tx_packets_local,
         sum(tx_bytes) OVER (PARTITION BY display) AS tx_bytes_local,
         sum(rx_packets) OVER (PARTITION BY display) AS rx_packets_local,
         sum(rx_bytes) OVER (PARTITION BY display) AS rx_bytes_local
  FROM endpoints
  WHERE party = 'Local'
)
SELECT t.display AS SourceDevice,
       max(t.packets_local) AS PacketsOverall,
       max(t.bytes_local) AS BytesOverall,
       max(t.tx_packets_local) AS TxPacketsOverall,
       max(t.tx_bytes_local) AS TxBytesOverall,
       max(t.rx_packets_local) AS RxPacketsOverall,
       max(t.rx_bytes_local) AS RxBytesOverall,
       t.target AS TargetDevice,
       coalesce(try_divide(sum(t.packets), max(t.packets_local)), 0D) AS PacketsToTargetPct,
       coalesce(try_divide(sum(t.bytes), max(t.bytes_local)), 0D) AS BytesToTargetPct,
       coalesce(try_divide(sum(t.tx_packets), max(t.tx_packets_local)), 0D) AS TxPacketsToTargetPct,
       coalesce(try_divide(sum(t.tx_bytes), max(t.tx_bytes_local)), 0D) AS TxBytesToTargetPct,
       coalesce(try_divide(sum(t.rx_packets), max(t.rx_packets_local)), 0D) AS RxPacketsToTargetPct,
       coalesce(try_divide(sum(t.rx_bytes), max(t.rx_bytes_local)), 0D) AS RxBytesToTargetPct
FROM local t
GROUP BY t.display, t.target
