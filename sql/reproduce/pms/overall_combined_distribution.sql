-- overall_combined_distribution: per summary device (display name): totals of each volume metric, overall, LAN and WAN, and their shares — the published overall-combined-distribution.csv.
-- grain: Device
-- partition:
-- sources: iotlake.interval_volumes (source imported), pms_devices, pms_captures (session views of iotlake.imports.reproduce)
-- Reference §4.1, §7.1: every packet share is over the device's overall packet total and every byte share
-- over its overall byte total (LanTxPacketPct = LanTxPacketTotal / PacketTotal).
WITH volumes AS (
  SELECT d.display, v.scope, v.frames, v.bytes, v.tx_frames, v.tx_bytes, v.rx_frames, v.rx_bytes
  FROM iotlake.interval_volumes v
  JOIN pms_captures c ON c.site = v.site AND c.capture = v.capture
  JOIN pms_devices d ON d.site = v.site AND d.device = v.device
  WHERE v.dataset = :dataset AND v.source = 'imported'
),
per_scope AS (
  SELECT display, scope,
         sum(frames) AS frames,
         sum(bytes) AS bytes,
         sum(tx_frames) AS tx_frames,
         sum(tx_bytes) AS tx_bytes,
         sum(rx_frames) AS rx_frames,
         sum(rx_bytes) AS rx_bytes
  FROM volumes
  GROUP BY display, scope
)
SELECT
       a.display AS Device,
       a.frames AS PacketTotal,
       a.bytes AS ByteTotal,
       a.tx_frames AS TxPacketTotal, a.tx_frames / a.frames AS TxPacketPct,
       a.tx_bytes AS TxByteTotal, a.tx_bytes / a.bytes AS TxBytePct,
       a.rx_frames AS RxPacketTotal, a.rx_frames / a.frames AS RxPacketPct,
       a.rx_bytes AS RxByteTotal, a.rx_bytes / a.bytes AS RxBytePct,
       l.frames AS LanPacketTotal, l.frames / a.frames AS LanPacketPct,
       l.bytes AS LanByteTotal, l.bytes / a.bytes AS LanBytePct,
       l.tx_frames AS LanTxPacketTotal, l.tx_frames / a.frames AS LanTxPacketPct,
       l.tx_bytes AS LanTxByteTotal, l.tx_bytes / a.bytes AS LanTxBytePct,
       l.rx_frames AS LanRxPacketTotal, l.rx_frames / a.frames AS LanRxPacketPct,
       l.rx_bytes AS LanRxByteTotal, l.rx_bytes / a.bytes AS LanRxBytePct,
       w.frames AS WanPacketTotal, w.frames / a.frames AS WanPacketPct,
       w.bytes AS WanByteTotal, w.bytes / a.bytes AS WanBytePct,
       w.tx_frames AS WanTxPacketTotal, w.tx_frames / a.frames AS WanTxPacketPct,
       w.tx_bytes AS WanTxByteTotal, w.tx_bytes / a.bytes AS WanTxBytePct,
       w.rx_frames AS WanRxPacketTotal, w.rx_frames / a.frames AS WanRxPacketPct,
       w.rx_bytes AS WanRxByteTotal, w.rx_bytes / a.bytes AS WanRxBytePct
FROM per_scope a
LEFT JOIN per_scope l ON l.display = a.display AND l.scope = 'LAN'
LEFT JOIN per_scope w ON w.display = a.display AND w.scope = 'WAN'
WHERE a.scope = 'ALL'
