-- endpoint_type_distribution: per summary device (display name): its endpoint traffic from the device's side and the share of each party class (First, Support, Third, Local) — the published endpoint_type_distribution.csv.
-- grain: Device
-- partition:
-- sources: iotlake.endpoint_usage (source imported), pms_devices, pms_captures (session views of iotlake.imports.reproduce)
-- Reference §4.7, §7.3, with per-capture semantics: each (device, capture) endpoint keeps its own Type (one
-- address may be First in one capture and Third in the other) and the counts are summed per device; every
-- Type containing "Local" is Local; other Types are left out as the earlier script skipped them. Each share
-- is over the same metric's overall, 0 when that is 0.
WITH endpoints AS (
  SELECT e.site, e.capture, e.device, d.display, e.remote_ip, e.class,
         CASE WHEN e.class LIKE '%Local%' THEN 'Local' ELSE e.class END AS party,
         e.packets, e.bytes, e.tx_packets, e.tx_bytes, e.rx_packets, e.rx_bytes
  FROM iotlake.endpoint_usage e
  JOIN pms_captures c ON c.site = e.site AND c.capture = e.capture
  JOIN pms_devices d ON d.site = e.site AND d.device = e.device
  WHERE e.dataset = :dataset AND e.source = 'imported'
    AND (e.class IN ('First', 'Support', 'Third') OR e.class LIKE '%Local%')
)
SELECT display AS Device,
       sum(packets) AS PacketsOverall,
       sum(bytes) AS BytesOverall,
       sum(tx_packets) AS TxPacketsOverall,
       sum(tx_bytes) AS TxBytesOverall,
       sum(rx_packets) AS RxPacketsOverall,
       sum(rx_bytes) AS RxBytesOverall,
       coalesce(try_divide(sum(CASE WHEN party = 'First' THEN packets END), sum(packets)), 0D) AS PacketsPctFirst,
       coalesce(try_divide(sum(CASE WHEN party = 'First' THEN bytes END), sum(bytes)), 0D) AS BytesPctFirst,
       coalesce(try_divide(sum(CASE WHEN party = 'First' THEN tx_packets END), sum(tx_packets)), 0D) AS TxPacketsPctFirst,
       coalesce(try_divide(sum(CASE WHEN party = 'First' THEN tx_bytes END), sum(tx_bytes)), 0D) AS TxBytesPctFirst,
       coalesce(try_divide(sum(CASE WHEN party = 'First' THEN rx_packets END), sum(rx_packets)), 0D) AS RxPacketsPctFirst,
       coalesce(try_divide(sum(CASE WHEN party = 'First' THEN rx_bytes END), sum(rx_bytes)), 0D) AS RxBytesPctFirst,
       coalesce(try_divide(sum(CASE WHEN party = 'Support' THEN packets END), sum(packets)), 0D) AS PacketsPctSupport,
       coalesce(try_divide(sum(CASE WHEN party = 'Support' THEN bytes END), sum(bytes)), 0D) AS BytesPctSupport,
       coalesce(try_divide(sum(CASE WHEN party = 'Support' THEN tx_packets END), sum(tx_packets)), 0D) AS TxPacketsPctSupport,
       coalesce(try_divide(sum(CASE WHEN party = 'Support' THEN tx_bytes END), sum(tx_bytes)), 0D) AS TxBytesPctSupport,
       coalesce(try_divide(sum(CASE WHEN party = 'Support' THEN rx_packets END), sum(rx_packets)), 0D) AS RxPacketsPctSupport,
       coalesce(try_divide(sum(CASE WHEN party = 'Support' THEN rx_bytes END), sum(rx_bytes)), 0D) AS RxBytesPctSupport,
       coalesce(try_divide(sum(CASE WHEN party = 'Third' THEN packets END), sum(packets)), 0D) AS PacketsPctThird,
       coalesce(try_divide(sum(CASE WHEN party = 'Third' THEN bytes END), sum(bytes)), 0D) AS BytesPctThird,
       coalesce(try_divide(sum(CASE WHEN party = 'Third' THEN tx_packets END), sum(tx_packets)), 0D) AS TxPacketsPctThird,
       coalesce(try_divide(sum(CASE WHEN party = 'Third' THEN tx_bytes END), sum(tx_bytes)), 0D) AS TxBytesPctThird,
       coalesce(try_divide(sum(CASE WHEN party = 'Third' THEN rx_packets END), sum(rx_packets)), 0D) AS RxPacketsPctThird,
       coalesce(try_divide(sum(CASE WHEN party = 'Third' THEN rx_bytes END), sum(rx_bytes)), 0D) AS RxBytesPctThird,
       coalesce(try_divide(sum(CASE WHEN party = 'Local' THEN packets END), sum(packets)), 0D) AS PacketsPctLocal,
       coalesce(try_divide(sum(CASE WHEN party = 'Local' THEN bytes END), sum(bytes)), 0D) AS BytesPctLocal,
       coalesce(try_divide(sum(CASE WHEN party = 'Local' THEN tx_packets END), sum(tx_packets)), 0D) AS TxPacketsPctLocal,
       coalesce(try_divide(sum(CASE WHEN party = 'Local' THEN tx_bytes END), sum(tx_bytes)), 0D) AS TxBytesPctLocal,
       coalesce(try_divide(sum(CASE WHEN party = 'Local' THEN rx_packets END), sum(rx_packets)), 0D) AS RxPacketsPctLocal,
       coalesce(try_divide(sum(CASE WHEN party = 'Local' THEN rx_bytes END), sum(rx_bytes)), 0D) AS RxBytesPctLocal
FROM endpoints
GROUP BY display
